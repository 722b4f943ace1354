//! With a rule taken out of its scoped ClusterRole, the executor's action fails with the API
//! server's refusal as the reason, the target is unchanged, and the executor carries on with the
//! next action: a clear failure, not a crash.

use causely_tests::cluster::Cluster;
use causely_tests::executor::{Executor, ExecutorOptions, action, mediator_token_file, run_action, scoped_kubeconfig};
use causely_tests::kwok::on_fake_nodes;
use causely_tests::mediator::{Mediator, MediatorOptions, ensure_namespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const NS: &str = "exec-perms";
const NODE: &str = "exec-perms-node";

#[tokio::test(flavor = "multi_thread")]
async fn an_action_outside_the_role_fails_with_the_reason_and_the_executor_carries_on() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    let dir = tempfile::tempdir()?;
    let nodes: Api<Node> = Api::all(client.clone());
    let _ = nodes.delete(NODE, &DeleteParams::default()).await;
    causely_tests::poll::until("the old node is gone", std::time::Duration::from_secs(30), || async {
        Ok(nodes.get_opt(NODE).await?.is_none().then_some(()))
    })
    .await?;
    nodes.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NODE}}))?).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let _ = deployments.delete("web", &DeleteParams::default()).await;
    causely_tests::poll::until("the old deployment is gone", std::time::Duration::from_secs(60), || async {
        Ok(deployments.get_opt("web").await?.is_none().then_some(()))
    })
    .await?;
    let web = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": on_fake_nodes(json!({"containers": [{"name": "web", "image": "registry.example/web:1"}]}))}}});
    deployments.create(&PostParams::default(), &serde_json::from_value(web)?).await?;

    // The scoped role without its rule for nodes (cordon, uncordon).
    let without_nodes = |rule: &k8s_openapi::api::rbac::v1::PolicyRule| {
        !rule.resources.as_ref().is_some_and(|r| r.iter().any(|r| r == "nodes"))
    };
    let kubeconfig = scoped_kubeconfig(&cluster, &client, NS, "exec-perms-scoped", without_nodes, dir.path()).await?;
    let token_file = mediator_token_file(&client, NS, dir.path()).await?;
    let mediator = Mediator::start(&cluster, &dir.path().join("mediator"), MediatorOptions::new(NS)).await?;
    let options = ExecutorOptions { kubeconfig, token_file, policy: None, extra_args: vec![] };
    let mut executor = Executor::start(&mediator, &dir.path().join("executor"), options).await?;

    let result =
        run_action(&mediator, &action("cordon-forbidden", json!({"type": "cordon"}), &format!("node/{NODE}"))).await?;
    assert_eq!(result["outcome"]["status"], "failed", "{result}");
    let reason = result["outcome"]["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("dry run: the API server refused: 403 Forbidden"), "{reason}");
    assert!(reason.contains("cannot patch resource \"nodes\""), "{reason}");
    assert_ne!(nodes.get(NODE).await?.spec.and_then(|s| s.unschedulable), Some(true));
    let audit = executor.audit()?;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["result"]["outcome"]["status"], "failed");

    // Still running, and what the role does grant still works.
    assert!(executor.is_running());
    let scale =
        action("scale-allowed", json!({"type": "scale", "replicas": 2}), &format!("workload/deployment/{NS}/web"));
    assert_eq!(run_action(&mediator, &scale).await?["outcome"]["status"], "applied");
    assert_eq!(deployments.get("web").await?.spec.and_then(|s| s.replicas), Some(2));

    nodes.delete(NODE, &DeleteParams::default()).await?;
    Ok(())
}
