//! Causely installed as pods on the real node loses nothing when its containers die: the agent's
//! container is killed (SIGKILL through containerd) while VictoriaMetrics is down, and the samples
//! it had spooled survive in its volume and reach VictoriaMetrics once it is back; the mediator's
//! pod is deleted, and its replacement keeps the ledger byte for byte, carries on from it, and
//! `egress verify` still proves it.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use causely_tests::cluster::{Cluster, service_get, with_query};
use causely_tests::mediator::{metric_value, reqwest_client};
use causely_tests::plugin::{expect, install};
use causely_tests::poll;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

const NS: &str = "causely";
const CONVERGE: Duration = Duration::from_secs(180);

/// The pod of `component` on `node`, once it is Ready.
async fn ready_pod(pods: &Api<Pod>, component: &str, node: &str) -> anyhow::Result<Pod> {
    causely_tests::pods::ready_on(pods, component, node, CONVERGE, |_| true).await
}

async fn mediator(client: &Client, path: &str) -> anyhow::Result<String> {
    service_get(client, NS, "causely-mediator:api", path).await
}

async fn agent_metric(http: &reqwest::Client, url: &str, name: &str) -> anyhow::Result<f64> {
    metric_value(&http.get(url).send().await?.text().await?, name)
}

async fn scale_victoria_metrics(client: &Client, replicas: i32) -> anyhow::Result<()> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let patch = json!({"spec": {"replicas": replicas}});
    sets.patch_scale("causely-victoria-metrics", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    poll::until(&format!("VictoriaMetrics has {replicas} ready pods"), CONVERGE, || async {
        let list = pods.list(&ListParams::default().labels("app.kubernetes.io/name=victoria-metrics")).await?;
        let ready = list.items.iter().filter(|p| causely_tests::pods::is_ready(p)).count();
        Ok((list.items.len() == replicas as usize && ready == replicas as usize).then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_agent_and_mediator_containers_come_back_with_their_spool_and_ledger() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    expect(&cluster, &["uninstall", "--purge"], 0)?;
    install(&cluster, &["--wait", "--timeout", "3m"], 0)?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let http = reqwest_client()?;
    let node = cluster.real_node.as_str();

    let agent = ready_pod(&pods, "agent", node).await?;
    let agent_ip = agent.status.as_ref().and_then(|s| s.pod_ip.clone()).context("agent pod IP")?;
    let metrics = format!("http://{agent_ip}:9090/metrics");
    poll::until("the agent has shipped samples and the mediator accepted a batch", CONVERGE, || async {
        let sent = agent_metric(&http, &metrics, "causely_agent_victoria_sent_samples_total").await.unwrap_or(0.0);
        let egress: serde_json::Value = serde_json::from_str(&mediator(&client, "/v1/egress").await?)?;
        Ok((sent > 0.0 && egress["batchesAccepted"].as_u64().unwrap_or(0) > 0).then_some(()))
    })
    .await?;

    // VictoriaMetrics goes away: the agent spools what it collects, round after round.
    scale_victoria_metrics(&client, 0).await?;
    let down_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    // The spool's size after each round that added to it.
    let growth = std::sync::Mutex::new(Vec::<f64>::new());
    let spooled = poll::until("the agent spools three rounds of samples", CONVERGE, || async {
        let n = agent_metric(&http, &metrics, "causely_agent_victoria_spooled_samples").await?;
        let mut growth = growth.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        if n > growth.last().copied().unwrap_or(0.0) {
            growth.push(n);
        }
        Ok((growth.len() >= 3).then_some(n))
    })
    .await?;

    // Its container is killed; the kubelet restarts it in the same pod, with the same volume.
    let id = causely_tests::pods::containerd_id(&agent).context("the agent's containerd container id")?;
    let killed = Command::new("ctr")
        .arg("--address")
        .arg(&cluster.containerd_socket)
        .args(["--namespace", "k8s.io", "tasks", "kill", "--signal", "SIGKILL", id])
        .output()?;
    ensure!(killed.status.success(), "ctr tasks kill: {}", String::from_utf8_lossy(&killed.stderr));
    let agent_name = agent.metadata.name.clone().context("agent pod name")?;
    poll::until("the agent's container was restarted", CONVERGE, || async {
        let p = pods.get(&agent_name).await?;
        let restarts = p.status.and_then(|s| s.container_statuses).map_or(0, |c| c[0].restart_count);
        Ok((restarts == 1).then_some(()))
    })
    .await?;
    ready_pod(&pods, "agent", node).await?;
    let kept = agent_metric(&http, &metrics, "causely_agent_victoria_spooled_samples").await?;
    ensure!(
        kept >= spooled,
        "the restarted agent holds {kept} spooled samples, {spooled} were spooled before the kill"
    );

    // The mediator's pod is deleted; its replacement reads the same ledger from its volume.
    let ledger_before = mediator(&client, "/v1/ledger?from=0&limit=100000").await?;
    ensure!(!ledger_before.is_empty(), "empty ledger");
    let old = ready_pod(&pods, "mediator", node).await?;
    let old_uid = old.metadata.uid.clone().unwrap_or_default();
    pods.delete(&old.metadata.name.clone().unwrap_or_default(), &DeleteParams::default()).await?;
    poll::until("a new mediator pod is Ready", CONVERGE, || async {
        let new = ready_pod(&pods, "mediator", node).await?;
        Ok((new.metadata.uid.as_deref() != Some(old_uid.as_str())).then_some(()))
    })
    .await?;
    let ledger_after = poll::until("the new mediator adds to the ledger", CONVERGE, || async {
        let after = mediator(&client, "/v1/ledger?from=0&limit=100000").await?;
        Ok((after.len() > ledger_before.len()).then_some(after))
    })
    .await?;
    ensure!(
        ledger_after.starts_with(&ledger_before),
        "the ledger was not kept byte for byte across the pod's replacement"
    );

    // VictoriaMetrics comes back: the spool drains, nothing was dropped, and the samples taken
    // while it was down are stored with their own times.
    let up_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    scale_victoria_metrics(&client, 1).await?;
    poll::until("the agent's spool drains", CONVERGE, || async {
        Ok((agent_metric(&http, &metrics, "causely_agent_victoria_spooled_samples").await? == 0.0).then_some(()))
    })
    .await?;
    ensure!(agent_metric(&http, &metrics, "causely_agent_victoria_dropped_samples_total").await? == 0.0);
    let vm = "causely-victoria-metrics:http";
    let selector = format!("node_memory_total_bytes{{node=\"{node}\"}}");
    let (start, end) = (down_at.to_string(), up_at.to_string());
    let query = with_query("/api/v1/export", &[("match[]", &selector), ("start", &start), ("end", &end)])?;
    let exported = poll::until("the outage's samples are queryable", CONVERGE, || async {
        let _ = service_get(&client, NS, vm, "/internal/force_flush").await;
        let text = service_get(&client, NS, vm, &query).await?;
        Ok((!text.trim().is_empty()).then_some(text))
    })
    .await?;
    let samples: usize = exported
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|s| s["timestamps"].as_array().map_or(0, Vec::len))
        .sum();
    // One sample a round: three rounds spooled before the kill, more after it.
    ensure!(samples >= 3, "only {samples} samples from the outage ({down_at}..{up_at}) reached VictoriaMetrics");

    let verify = expect(&cluster, &["egress", "verify"], 0)?;
    ensure!(verify.stdout.contains("PROVEN"), "{}", verify.stdout);
    expect(&cluster, &["uninstall", "--purge"], 0)?;
    Ok(())
}
