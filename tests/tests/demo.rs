//! The README's demo in its scripted form, `scripts/demo --no-tui`, and what it must leave behind:
//! Causely installed from the local registry and running as pods on the real node (containerd
//! containers, Ready, never restarted, the agent with only the capabilities the docs list), the
//! demo client's call to the web Service in the topology, the burner's symptoms (which resolve once
//! it stops), raw series of the real kubelet and of the agent's eBPF programs in the in-cluster
//! VictoriaMetrics and in no egress payload, and `egress verify` proving it. Needs root, as CI runs.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use causely_tests::cluster::{Cluster, service_get, with_query};
use causely_tests::plugin::expect;
use causely_tests::workspace::repo_root;
use causely_tests::{pods, poll};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

const NS: &str = "causely";
const DEMO_NS: &str = "causely-demo";

fn pod_of(pods: &[Pod], component: &str) -> anyhow::Result<String> {
    pods.iter()
        .find(|p| pods::component(p) == Some(component))
        .and_then(|p| p.metadata.name.clone())
        .with_context(|| format!("no {component} pod"))
}

fn check_pods_run_for_real(pods: &[Pod], node: &str) -> anyhow::Result<()> {
    for component in ["agent", "mediator", "victoria-metrics"] {
        let on_node: Vec<&Pod> =
            pods.iter().filter(|p| pods::component(p) == Some(component) && pods::node(p) == Some(node)).collect();
        ensure!(on_node.len() == 1, "{} {component} pods on {node}", on_node.len());
        let status = on_node[0].status.as_ref().context("no status")?;
        ensure!(status.phase.as_deref() == Some("Running"), "{component}: phase {:?}", status.phase);
        ensure!(pods::is_ready(on_node[0]), "{component} is not Ready");
        for container in status.container_statuses.iter().flatten() {
            let id = container.container_id.as_deref().unwrap_or_default();
            ensure!(id.starts_with("containerd://"), "{component}/{}: container id {id:?}", container.name);
            ensure!(
                container.restart_count == 0,
                "{component}/{} restarted {} times",
                container.name,
                container.restart_count
            );
        }
    }
    Ok(())
}

/// The agent's container adds exactly the capabilities docs/install.md names for the default
/// posture, drops every other one, and is not privileged.
fn check_agent_capabilities(pods: &[Pod]) -> anyhow::Result<()> {
    let docs = std::fs::read_to_string(repo_root().join("docs/install.md"))?;
    let agent = pods.iter().find(|p| pods::component(p) == Some("agent")).context("no agent pod")?;
    let spec = agent.spec.as_ref().context("no spec")?;
    ensure!(!spec.host_pid.unwrap_or(false) && !spec.host_network.unwrap_or(false), "the agent shares host namespaces");
    for container in &spec.containers {
        let context = container.security_context.as_ref().context("no securityContext")?;
        ensure!(!context.privileged.unwrap_or(false), "the agent is privileged");
        let caps = context.capabilities.as_ref().context("no capabilities")?;
        ensure!(caps.drop.as_deref() == Some(&["ALL".to_owned()][..]), "drops {:?}", caps.drop);
        let mut added = caps.add.clone().unwrap_or_default();
        added.sort();
        ensure!(added == ["BPF", "PERFMON"], "the agent adds {added:?}");
        for cap in &added {
            ensure!(docs.contains(&format!("CAP_{cap}")), "docs/install.md does not list CAP_{cap}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_scripted_demo_runs_causely_as_real_pods_and_proves_what_left() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let out = Command::new(repo_root().join("scripts/demo"))
        .arg("--no-tui")
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let client = cluster.client().await?;
    let result = async {
        ensure!(out.status.success(), "the demo exited {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status.code());
        ensure!(
            stdout.lines().any(|l| l.contains("--calls :8080/tcp-->") && l.contains("client") && l.contains("web")),
            "no client → web call in:\n{stdout}"
        );
        ensure!(
            stdout.lines().any(|l| l.contains("high-cpu-utilization") && l.contains("burner")),
            "no burner symptom in:\n{stdout}"
        );
        // egress verify went through the API server's service proxy to the mediator pod.
        ensure!(stdout.contains("egress verify: PROVEN"), "{stdout}");
        ensure!(stdout.contains("through the API server's proxy"), "{stdout}");

        let pods = Api::<Pod>::namespaced(client.clone(), NS).list(&ListParams::default()).await?.items;
        check_pods_run_for_real(&pods, &cluster.real_node)?;
        check_agent_capabilities(&pods)?;
        expect(&cluster, &["status"], 0)?;
        // A pod's log is plain text (no terminal colours): what `kubectl logs` and collectors read.
        let log = Api::<Pod>::namespaced(client.clone(), NS)
            .logs(&pod_of(&pods, "mediator")?, &kube::api::LogParams::default())
            .await?;
        ensure!(log.contains("leading") && !log.contains('\u{1b}'), "the mediator's log:\n{log}");

        // The real kubelet's series (its own /metrics and cAdvisor's), stored in the in-cluster
        // VictoriaMetrics by the agent, labelled with the node...
        let vm = "causely-victoria-metrics:http";
        let _ = service_get(&client, NS, vm, "/internal/force_flush").await;
        for series in ["kubelet_running_pods", "container_cpu_usage_seconds_total"] {
            let selector = format!("{series}{{node=\"{}\"}}", cluster.real_node);
            let query = with_query("/api/v1/series", &[("match[]", &selector)])?;
            let found: serde_json::Value = serde_json::from_str(&service_get(&client, NS, vm, &query).await?)?;
            let n = found["data"].as_array().map_or(0, Vec::len);
            ensure!(n > 0, "no {series} of {} in VictoriaMetrics: {found}", cluster.real_node);
            // ...and in no payload that left the mediator.
            let payloads = service_get(&client, NS, "causely-mediator:api", "/v1/payloads?from=1&limit=10000").await?;
            ensure!(!payloads.is_empty(), "no egress payloads");
            ensure!(!payloads.contains(series), "{series} is in an egress payload");
        }

        // The client's connections, counted by the agent's eBPF program and labelled with the
        // pod's UID, are raw samples: in VictoriaMetrics, in no payload.
        let demo_pods = Api::<Pod>::namespaced(client.clone(), DEMO_NS).list(&ListParams::default()).await?.items;
        let uid = demo_pods
            .iter()
            .find(|p| p.metadata.name.as_deref().is_some_and(|n| n.starts_with("client-")))
            .and_then(|p| p.metadata.uid.clone())
            .context("no client pod")?;
        let selector = format!("causely_tcp_established{{pod_uid=\"{uid}\"}}");
        let found = service_get(&client, NS, vm, &with_query("/api/v1/export", &[("match[]", &selector)])?).await?;
        ensure!(found.contains("\"values\""), "no connection counters of the client pod: {found}");
        let payloads = service_get(&client, NS, "causely-mediator:api", "/v1/payloads?from=1&limit=10000").await?;
        ensure!(
            !payloads.contains("causely_tcp_established") && !payloads.contains(&uid),
            "raw series or UIDs in egress"
        );

        // The burner stops: each of its symptoms resolves, once.
        let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), DEMO_NS);
        deployments.delete("burner", &Default::default()).await?;
        poll::until("the burner's symptoms resolve once each", Duration::from_secs(120), || async {
            let symptoms: serde_json::Value =
                serde_json::from_str(&service_get(&client, NS, "causely-mediator:api", "/v1/symptoms").await?)?;
            let count = |list: &str, kind: &str| {
                symptoms[list].as_array().map_or(0, |items| {
                    items
                        .iter()
                        .filter(|s| s["kind"] == kind && s["entity"].as_str().is_some_and(|e| e.contains("/burner-")))
                        .count()
                })
            };
            let kinds = ["high-cpu-utilization", "cpu-throttling"];
            Ok(kinds.iter().all(|k| count("open", k) == 0 && count("recent", k) == 1).then_some(()))
        })
        .await?;
        Ok(())
    }
    .await;
    // The demo leaves Causely and its workload installed, as a user would want; the other tests
    // expect a clean cluster.
    expect(&cluster, &["uninstall", "--purge"], 0)?;
    let _ = cluster.kubectl().args(["delete", "namespace", DEMO_NS, "--wait=true"]).output();
    result
}
