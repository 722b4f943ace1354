//! The backend asks for remediation in its reply to a delivered batch (`{"actions": [...]}`): the
//! mediator queues each action under the same checks as the CLI's, marked as the upstream's, and
//! the executor carries it out. An action the mediator refuses (already expired) and a reply that
//! is not a list of actions change nothing, and the batches are still acknowledged.

use std::time::Duration;

use causely_tests::cluster::Cluster;
use causely_tests::executor::{
    Executor, ExecutorOptions, action, mediator_token_file, now_millis, scoped_kubeconfig, wait_result,
};
use causely_tests::kwok::on_fake_nodes;
use causely_tests::mediator::{Mediator, MediatorOptions, ensure_namespace};
use causely_tests::poll;
use causely_tests::upstream::Upstream;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const NS: &str = "exec-upstream";

async fn fresh_deployment(api: &Api<Deployment>) -> anyhow::Result<()> {
    let _ = api.delete("web", &DeleteParams::default()).await;
    poll::until("the old deployment is gone", Duration::from_secs(60), || async {
        Ok(api.get_opt("web").await?.is_none().then_some(()))
    })
    .await?;
    let deployment = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": on_fake_nodes(json!({"containers": [{"name": "web", "image": "registry.example/web:1"}]}))}}}))?;
    api.create(&PostParams::default(), &deployment).await?;
    Ok(())
}

/// A new Service: a topology change, so the mediator delivers another batch.
async fn touch_topology(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let _ = services.delete(name, &DeleteParams::default()).await;
    let service = serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))?;
    services.create(&PostParams::default(), &service).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_in_the_upstreams_reply_are_queued_checked_and_carried_out() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    fresh_deployment(&deployments).await?;
    let dir = tempfile::tempdir()?;

    // The first acknowledgement asks for a scale and for an action that has already expired.
    let upstream = Upstream::start().await?;
    let target = format!("workload/deployment/{NS}/web");
    let mut scale = action("backend-scale-1", json!({"type": "scale", "replicas": 3}), &target);
    scale["requester"] = json!("causal-engine");
    let mut stale = action("backend-stale-1", json!({"type": "scale", "replicas": 5}), &target);
    stale["expires"] = json!(now_millis() - 1);
    upstream.reply_next(json!({"actions": [scale, stale]}).to_string());
    upstream.reply_next("not a list of actions");

    let kubeconfig = scoped_kubeconfig(&cluster, &client, NS, "exec-upstream-scoped", |_| true, dir.path()).await?;
    let token_file = mediator_token_file(&client, NS, dir.path()).await?;
    let mut options = MediatorOptions::new(NS);
    options.upstream = upstream.url();
    let mediator = Mediator::start(&cluster, &dir.path().join("mediator"), options).await?;
    let options = ExecutorOptions { kubeconfig, token_file, policy: None, extra_args: vec![] };
    let _executor = Executor::start(&mediator, &dir.path().join("executor"), options).await?;

    let result = wait_result(&mediator, "backend-scale-1").await?;
    assert_eq!(result["outcome"]["status"], "applied", "{result}");
    assert_eq!(deployments.get("web").await?.spec.and_then(|s| s.replicas), Some(3));
    let view = mediator.get_json("/v1/actions/backend-scale-1").await?;
    assert_eq!(view["action"]["requester"], "upstream:causal-engine", "{view}");
    assert!(mediator.get_json("/v1/actions/backend-stale-1").await.is_err(), "an expired action was queued");

    // The next batch's reply is not a list of actions: counted, ignored, the batch acknowledged.
    touch_topology(&client, "web-1").await?;
    poll::until("the unreadable reply is counted", Duration::from_secs(30), || async {
        let text = causely_tests::mediator::reqwest_client()?
            .get(format!("{}/metrics", mediator.url))
            .send()
            .await?
            .text()
            .await?;
        Ok(text.contains("causely_mediator_upstream_attempts_total{result=\"unreadable-reply\"} 1").then_some(()))
    })
    .await?;
    let delivered = upstream.received().len();
    assert!(delivered >= 2, "both batches were acknowledged: {delivered}");
    let refused = mediator.metric("causely_mediator_actions_total").await?;
    assert!(refused >= 1.0, "the expired action was counted");
    assert_eq!(deployments.get("web").await?.spec.and_then(|s| s.replicas), Some(3), "nothing else changed");
    Ok(())
}
