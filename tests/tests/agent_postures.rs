//! The agent's two postures, installed from the local registry and running as a pod on the real
//! node: each loads and attaches its eBPF programs, reads the real kubelet with its
//! ServiceAccount token under the published RBAC, and reports to the mediator through its
//! Service. The least-privilege agent's process holds exactly CAP_BPF and CAP_PERFMON (read from
//! the kernel, /proc/PID/status of the container's process), the privileged one every capability.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use causely_tests::cluster::Cluster;
use causely_tests::mediator::{metric_value, reqwest_client};
use causely_tests::plugin::{expect, install};
use causely_tests::{pods, poll};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

const CONVERGE: Duration = Duration::from_secs(180);
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The agent pod on the real node, once Ready and running the posture asked for.
async fn agent_on(client: &kube::Client, node: &str, privileged: bool) -> anyhow::Result<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "causely");
    pods::ready_on(&pods, "agent", node, CONVERGE, |p| {
        let context = p.spec.as_ref().and_then(|s| s.containers[0].security_context.as_ref());
        context.and_then(|c| c.privileged).unwrap_or(false) == privileged
    })
    .await
}

/// The effective capability set of the container's main process, as the kernel reports it.
fn effective_capabilities(cluster: &Cluster, pod: &Pod) -> anyhow::Result<u64> {
    let id = pods::containerd_id(pod).context("no containerd container id")?;
    let out = Command::new("ctr")
        .arg("--address")
        .arg(&cluster.containerd_socket)
        .args(["--namespace", "k8s.io", "tasks", "ls"])
        .output()?;
    let tasks = String::from_utf8(out.stdout)?;
    let pid = tasks
        .lines()
        .find_map(|l| {
            let mut fields = l.split_whitespace();
            (fields.next() == Some(id)).then(|| fields.next()).flatten()
        })
        .with_context(|| format!("container {id} not in ctr's tasks:\n{tasks}"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:")).context("no CapEff")?.trim();
    Ok(u64::from_str_radix(hex, 16)?)
}

async fn check_agent_works(http: &reqwest::Client, pod: &Pod) -> anyhow::Result<()> {
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).context("no pod IP")?;
    let url = format!("http://{ip}:9090/metrics");
    poll::until("the agent has loaded eBPF, read the kubelet and reported to the mediator", CONVERGE, || async {
        let text = http.get(&url).send().await?.text().await?;
        let value = |name: &str| metric_value(&text, name).unwrap_or(0.0);
        let done = value("causely_agent_ebpf_loaded") == 1.0
            && value("causely_agent_kubelet_scrapes_total{endpoint=\"metrics\",result=\"ok\"}") >= 1.0
            && value("causely_agent_kubelet_scrapes_total{endpoint=\"cadvisor\",result=\"ok\"}") >= 1.0
            && value("causely_agent_mediator_sent_reports_total") >= 1.0
            && value("causely_agent_victoria_sent_samples_total") >= 1.0;
        Ok(done.then_some(()))
    })
    .await?;
    let text = http.get(&url).send().await?.text().await?;
    for refused in [
        "causely_agent_kubelet_scrapes_total{endpoint=\"metrics\",result=\"error\"}",
        "causely_agent_kubelet_scrapes_total{endpoint=\"cadvisor\",result=\"error\"}",
        "causely_agent_mediator_refused_reports_total",
    ] {
        ensure!(metric_value(&text, refused)? == 0.0, "{refused} is not 0:\n{text}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn both_postures_load_ebpf_read_the_kubelet_and_report_with_the_capabilities_they_claim() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    let http = reqwest_client()?;
    expect(&cluster, &["uninstall", "--purge"], 0)?;

    install(&cluster, &["--wait", "--timeout", "3m"], 0)?;
    let agent = agent_on(&client, &cluster.real_node, false).await?;
    check_agent_works(&http, &agent).await?;
    let caps = effective_capabilities(&cluster, &agent)?;
    ensure!(caps == (1 << CAP_BPF) | (1 << CAP_PERFMON), "the least-privilege agent holds capabilities {caps:#x}");

    // The published posture, as an upgrade of the same install.
    expect(&cluster, &["upgrade", "--agent-mode", "privileged", "--timeout", "3m"], 0)?;
    let agent = agent_on(&client, &cluster.real_node, true).await?;
    check_agent_works(&http, &agent).await?;
    let caps = effective_capabilities(&cluster, &agent)?;
    ensure!(caps & (1 << 21) != 0, "the privileged agent lacks CAP_SYS_ADMIN: {caps:#x}");

    expect(&cluster, &["uninstall", "--purge"], 0)?;
    Ok(())
}
