//! What the executor refuses, it refuses with the reason and without touching the target: a
//! denied namespace, a scale outside the bounds, an expired action, an id already run (even after
//! the executor restarts and the mediator forgets it). Only the executor's ServiceAccount may pull
//! actions or report results.

use std::time::Duration;

use causely_tests::cluster::Cluster;
use causely_tests::executor::{
    Executor, ExecutorOptions, action, mediator_token_file, now_millis, run_action, scoped_kubeconfig, submit,
    wait_result,
};
use causely_tests::kwok::on_fake_nodes;
use causely_tests::mediator::{Mediator, MediatorOptions, agent_token, ensure_namespace, reqwest_client};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "exec-refuse";
const DENIED: &str = "exec-refuse-denied";

fn deployment() -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": on_fake_nodes(json!({"containers": [{"name": "web", "image": "registry.example/web:1"}]}))}}}))?)
}

async fn fresh(api: &Api<Deployment>) -> anyhow::Result<()> {
    let _ = api.delete("web", &DeleteParams::default()).await;
    causely_tests::poll::until("the old deployment is gone", Duration::from_secs(60), || async {
        Ok(api.get_opt("web").await?.is_none().then_some(()))
    })
    .await?;
    api.create(&PostParams::default(), &deployment()?).await?;
    Ok(())
}

fn rejected_reason(result: &serde_json::Value) -> String {
    assert_eq!(result["outcome"]["status"], "rejected", "{result}");
    result["outcome"]["reason"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_carry_the_reason_and_change_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    ensure_namespace(&client, DENIED).await?;
    let dir = tempfile::tempdir()?;
    let here: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let denied: Api<Deployment> = Api::namespaced(client.clone(), DENIED);
    fresh(&here).await?;
    fresh(&denied).await?;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, format!("deniedNamespaces: [{DENIED}]\nminReplicas: 1\nmaxReplicas: 3\n"))?;

    let kubeconfig = scoped_kubeconfig(&cluster, &client, NS, "exec-refuse-scoped", |_| true, dir.path()).await?;
    let token_file = mediator_token_file(&client, NS, dir.path()).await?;
    let mut mediator = Mediator::start(&cluster, &dir.path().join("mediator"), MediatorOptions::new(NS)).await?;

    // Only the executor's token may pull: none, or an agent's, is refused.
    let http = reqwest_client()?;
    let pending = format!("{}/v1/actions?state=pending", mediator.url);
    assert_eq!(http.get(&pending).send().await?.status().as_u16(), 401);
    let agent = agent_token(&client, NS, "causely-agent", "causely-mediator", None).await?;
    assert_eq!(http.get(&pending).bearer_auth(&agent).send().await?.status().as_u16(), 401);
    let report = format!("{}/v1/actions/x/result", mediator.url);
    let forged = json!({"id": "x", "outcome": {"status": "applied"}, "dryRun": false, "finished": 1});
    assert_eq!(http.post(&report).bearer_auth(&agent).json(&forged).send().await?.status().as_u16(), 401);

    // An action that expires before any executor runs.
    let mut expiring =
        action("expiring", json!({"type": "scale", "replicas": 2}), &format!("workload/deployment/{NS}/web"));
    expiring["expires"] = json!(now_millis() + 1_000);
    assert_eq!(submit(&mediator, &expiring).await?.0, 201);
    // An action that has already expired is refused at once by the mediator.
    let mut expired = action("expired", json!({"type": "cordon"}), "node/kwok-node-1");
    expired["expires"] = json!(now_millis() - 1);
    let (status, body) = submit(&mediator, &expired).await?;
    assert_eq!(status, 422, "{body}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let state = dir.path().join("executor");
    let options = ExecutorOptions { kubeconfig, token_file, policy: Some(policy), extra_args: vec![] };
    let mut executor = Executor::start(&mediator, &state, options).await?;
    let reason = rejected_reason(&wait_result(&mediator, "expiring").await?);
    assert!(reason.contains("expired"), "{reason}");
    assert_eq!(here.get("web").await?.spec.and_then(|s| s.replicas), Some(1));

    // A denied namespace.
    let restart = action("restart-denied", json!({"type": "restart"}), &format!("workload/deployment/{DENIED}/web"));
    let reason = rejected_reason(&run_action(&mediator, &restart).await?);
    assert_eq!(reason, format!("namespace {DENIED} is denied by the executor's policy"));
    let template = denied.get("web").await?.spec.and_then(|s| s.template.metadata).and_then(|m| m.annotations);
    assert_eq!(template, None, "the denied deployment's template changed");

    // A scale outside the bounds.
    let scale =
        action("scale-too-far", json!({"type": "scale", "replicas": 4}), &format!("workload/deployment/{NS}/web"));
    let reason = rejected_reason(&run_action(&mediator, &scale).await?);
    assert_eq!(reason, "scale to 4 replicas is outside the policy's bounds (1 to 3)");
    assert_eq!(here.get("web").await?.spec.and_then(|s| s.replicas), Some(1));

    // An id is taken once by the mediator...
    let scale = action("scale-once", json!({"type": "scale", "replicas": 2}), &format!("workload/deployment/{NS}/web"));
    assert_eq!(run_action(&mediator, &scale).await?["outcome"]["status"], "applied");
    assert_eq!(here.get("web").await?.spec.and_then(|s| s.replicas), Some(2));
    let (status, body) = submit(&mediator, &scale).await?;
    assert_eq!(status, 409, "{body}");
    assert!(body["reason"].as_str().unwrap_or_default().contains("already submitted"), "{body}");

    // ...and run once by the executor, even after it restarts and the mediator has lost its queue.
    let patch = Patch::Merge(json!({"spec": {"replicas": 1}}));
    here.patch("web", &PatchParams::default(), &patch).await?;
    executor.kill();
    mediator.kill();
    let forgetful = Mediator::start(&cluster, &dir.path().join("mediator-2"), MediatorOptions::new(NS)).await?;
    let lines_before = executor.audit()?.len();
    let mut executor = Executor::start(&forgetful, &state, executor_options(&executor)).await?;
    let reason = rejected_reason(&run_action(&forgetful, &scale).await?);
    assert_eq!(reason, "action id scale-once was already run (applied); an id runs at most once");
    assert_eq!(here.get("web").await?.spec.and_then(|s| s.replicas), Some(1), "a repeated id changed the target");
    assert_eq!(executor.audit()?.len(), lines_before + 1);
    assert!(executor.is_running());
    Ok(())
}

/// The options an executor was started with, to start another on the same state.
fn executor_options(executor: &Executor) -> ExecutorOptions {
    executor.options().clone()
}
