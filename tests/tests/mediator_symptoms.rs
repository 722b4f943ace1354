//! Cluster symptoms from real objects: a pod driven into CrashLoopBackOff and a node made NotReady
//! (their status patched as a kubelet would; kwok does not manage this node, so nothing patches it
//! back) each open one symptom and resolve it once.

use std::time::Duration;

use causely_tests::cluster::Cluster;
use causely_tests::mediator::{Mediator, MediatorOptions, ensure_namespace};
use causely_tests::poll;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "med-symptoms";
const NODE: &str = "med-unmanaged-node";

fn occurrences(symptoms: &Value, list: &str, kind: &str, entity: &str) -> usize {
    symptoms[list]
        .as_array()
        .map_or(0, |items| items.iter().filter(|s| s["kind"] == kind && s["entity"] == entity).count())
}

async fn wait_for(mediator: &Mediator, what: &str, check: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    poll::until(what, Duration::from_secs(30), || {
        let check = &check;
        async move {
            let s = mediator.get_json("/v1/symptoms").await?;
            Ok(check(&s).then_some(s))
        }
    })
    .await
}

/// A Ready condition with a fresh heartbeat, as a kubelet posts it (an old heartbeat would make the
/// node lifecycle controller mark the node Unknown on its own).
fn node_ready(status: &str) -> Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": "Test",
        "lastHeartbeatTime": now, "lastTransitionTime": now}]}})
}

fn container_state(state: Value) -> Value {
    json!({"status": {"phase": "Running", "containerStatuses": [{
        "name": "main", "ready": false, "restartCount": 4, "image": "registry.example/crasher:1",
        "imageID": "", "state": state
    }]}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loop_and_a_not_ready_node_each_open_once_and_resolve_once() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let _ = nodes.delete(NODE, &DeleteParams::default()).await;
    let _ = pods.delete("crasher", &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }).await;
    poll::until("leftovers are gone", Duration::from_secs(30), || {
        let (nodes, pods) = (nodes.clone(), pods.clone());
        async move { Ok((nodes.get_opt(NODE).await?.is_none() && pods.get_opt("crasher").await?.is_none()).then_some(())) }
    })
    .await?;
    nodes.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NODE}}))?).await?;
    let status = PatchParams::default();
    nodes.patch_status(NODE, &status, &Patch::Merge(node_ready("True"))).await?;
    let pod = json!({"metadata": {"name": "crasher"}, "spec": {"nodeName": NODE,
        "containers": [{"name": "main", "image": "registry.example/crasher:1"}]}});
    pods.create(&PostParams::default(), &serde_json::from_value(pod)?).await?;
    pods.patch_status("crasher", &status, &Patch::Merge(container_state(json!({"running": {}})))).await?;

    let state = tempfile::tempdir()?;
    let rules = state.path().join("rules.json");
    std::fs::write(&rules, json!({"resolveAfterSeconds": 2}).to_string())?;
    let mut options = MediatorOptions::new(NS);
    options.extra_args = vec!["--rules".into(), rules.display().to_string()];
    let mediator = Mediator::start(&cluster, &state.path().join("state"), options).await?;

    let container = format!("container/{NS}/crasher/main");
    let node = format!("node/{NODE}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calm = mediator.get_json("/v1/symptoms").await?;
    assert_eq!(occurrences(&calm, "open", "crash-loop", &container), 0, "{calm}");
    assert_eq!(occurrences(&calm, "open", "node-not-ready", &node), 0, "{calm}");

    // The change stream announces it as it opens.
    let http = causely_tests::mediator::reqwest_client()?;
    let mut stream = http.get(format!("{}/v1/stream", mediator.url)).timeout(Duration::from_secs(60)).send().await?;
    assert_eq!(
        stream.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream"),
        "the change stream is server-sent events"
    );

    // Crash loop: back-off, briefly running, back-off again: one symptom, then resolved once.
    let back_off = container_state(json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}));
    pods.patch_status("crasher", &status, &Patch::Merge(back_off.clone())).await?;
    wait_for(&mediator, "the crash loop opens", |s| occurrences(s, "open", "crash-loop", &container) == 1).await?;
    let mut seen = String::new();
    let announced = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.chunk().await? {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            let opened = seen.split("\n\n").any(|event| {
                event.contains("event: symptom") && event.contains("\"opened\"") && event.contains(&container)
            });
            if opened {
                return anyhow::Ok(true);
            }
        }
        Ok(false)
    })
    .await;
    assert!(matches!(announced, Ok(Ok(true))), "no symptom event for {container} in the stream: {seen}");
    drop(stream);
    pods.patch_status("crasher", &status, &Patch::Merge(container_state(json!({"running": {}})))).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    pods.patch_status("crasher", &status, &Patch::Merge(back_off)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let flapping = mediator.get_json("/v1/symptoms").await?;
    assert_eq!(occurrences(&flapping, "open", "crash-loop", &container), 1, "{flapping}");
    assert_eq!(occurrences(&flapping, "recent", "crash-loop", &container), 0, "a flap is not a resolution: {flapping}");
    pods.patch_status("crasher", &status, &Patch::Merge(container_state(json!({"running": {}})))).await?;
    let resolved =
        wait_for(&mediator, "the crash loop resolves", |s| occurrences(s, "recent", "crash-loop", &container) == 1)
            .await?;
    assert_eq!(occurrences(&resolved, "open", "crash-loop", &container), 0, "{resolved}");

    // Node NotReady, then Ready again.
    nodes.patch_status(NODE, &status, &Patch::Merge(node_ready("False"))).await?;
    wait_for(&mediator, "node not ready opens", |s| occurrences(s, "open", "node-not-ready", &node) == 1).await?;
    nodes.patch_status(NODE, &status, &Patch::Merge(node_ready("True"))).await?;
    let back =
        wait_for(&mediator, "node not ready resolves", |s| occurrences(s, "recent", "node-not-ready", &node) == 1)
            .await?;
    assert_eq!(occurrences(&back, "open", "node-not-ready", &node), 0, "{back}");

    let _ = pods.delete("crasher", &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }).await;
    let _ = nodes.delete(NODE, &DeleteParams::default()).await;
    Ok(())
}
