//! Every remediation action takes effect in a real cluster, carried out by a real executor under
//! the installer's scoped ClusterRole, pulled from a real mediator; each is recorded as an Event
//! and in the audit log; a dry run changes nothing; `kubectl causely remediate --wait` prints the
//! result and exits 0, 1 or 2.

use std::time::Duration;

use causely_tests::cluster::Cluster;
use causely_tests::executor::{Executor, ExecutorOptions, action, mediator_token_file, run_action, scoped_kubeconfig};
use causely_tests::kwok::on_fake_nodes;
use causely_tests::mediator::{Mediator, MediatorOptions, ensure_namespace};
use causely_tests::{plugin, poll};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "exec-actions";
const NODE: &str = "exec-actions-node";

async fn create<K>(api: &Api<K>, object: serde_json::Value) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object)?;
    let name = object.meta().name.clone().unwrap_or_default();
    let _ = api.delete(&name, &DeleteParams::default().grace_period(0)).await;
    poll::until(&format!("{name} is gone"), Duration::from_secs(60), || async {
        Ok(api.get_opt(&name).await?.is_none().then_some(()))
    })
    .await?;
    api.create(&PostParams::default(), &object).await?;
    Ok(())
}

fn template(image: &str) -> serde_json::Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": on_fake_nodes(json!({"containers": [{"name": "web", "image": image}]}))})
}

fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers[0].image.clone())
        .unwrap_or_default()
}

fn restarted_at(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("kubectl.kubernetes.io/restartedAt").cloned())
}

async fn replica_sets(client: &kube::Client) -> anyhow::Result<Vec<ReplicaSet>> {
    let list = Api::<ReplicaSet>::namespaced(client.clone(), NS).list(&ListParams::default().labels("app=web")).await?;
    Ok(list.items)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_action_takes_effect_and_is_recorded() -> anyhow::Result<()> {
    let started = causely_tests::executor::now_millis();
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    let dir = tempfile::tempdir()?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    create(
        &deployments,
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 1,
        "selector": {"matchLabels": {"app": "web"}}, "template": template("registry.example/web:1")}}),
    )
    .await?;
    create(
        &statefulsets,
        json!({"metadata": {"name": "db"}, "spec": {"replicas": 1, "serviceName": "db",
        "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}},
                     "spec": on_fake_nodes(json!({"containers": [{"name": "db", "image": "registry.example/db:1"}]}))}}}),
    )
    .await?;
    // A node of our own (kwok does not manage it): cordoning it disturbs no one else's test.
    create(&nodes, json!({"metadata": {"name": NODE, "labels": {"causely-test": "executor"}}})).await?;
    create(
        &pods,
        json!({"metadata": {"name": "lonely"}, "spec": {"nodeName": "kwok-node-1",
        "containers": [{"name": "c", "image": "registry.example/c:1"}]}}),
    )
    .await?;
    poll::until("the first ReplicaSet", Duration::from_secs(60), || async {
        Ok((replica_sets(&client).await?.len() == 1).then_some(()))
    })
    .await?;

    let kubeconfig = scoped_kubeconfig(&cluster, &client, NS, "exec-actions-scoped", |_| true, dir.path()).await?;
    let token_file = mediator_token_file(&client, NS, dir.path()).await?;
    let mediator = Mediator::start(&cluster, &dir.path().join("mediator"), MediatorOptions::new(NS)).await?;
    let options = ExecutorOptions { kubeconfig, token_file, policy: None, extra_args: vec![] };
    let executor = Executor::start(&mediator, &dir.path().join("executor"), options).await?;
    let applied = json!({"status": "applied"});

    // A dry run is checked by the API server and changes nothing.
    let mut dry = action("restart-dry", json!({"type": "restart"}), &format!("workload/deployment/{NS}/web"));
    dry["dryRun"] = json!(true);
    let result = run_action(&mediator, &dry).await?;
    assert_eq!(result["outcome"], applied, "{result}");
    assert_eq!(result["dryRun"], true);
    assert_eq!(restarted_at(&deployments.get("web").await?), None);

    // restart: the template annotation is set and the controller makes a new ReplicaSet.
    let restart = action("restart-web", json!({"type": "restart"}), &format!("workload/deployment/{NS}/web"));
    let result = run_action(&mediator, &restart).await?;
    assert_eq!(result["outcome"], applied, "{result}");
    assert!(restarted_at(&deployments.get("web").await?).is_some());
    poll::until("a second ReplicaSet after the restart", Duration::from_secs(60), || async {
        Ok((replica_sets(&client).await?.len() == 2).then_some(()))
    })
    .await?;
    let result = run_action(
        &mediator,
        &action("restart-db", json!({"type": "restart"}), &format!("workload/statefulset/{NS}/db")),
    )
    .await?;
    assert_eq!(result["outcome"], applied, "{result}");

    // scale, of a Deployment and a StatefulSet.
    let result = run_action(
        &mediator,
        &action("scale-web", json!({"type": "scale", "replicas": 3}), &format!("workload/deployment/{NS}/web")),
    )
    .await?;
    assert_eq!(result["outcome"], applied, "{result}");
    assert_eq!(deployments.get("web").await?.spec.and_then(|s| s.replicas), Some(3));
    let result = run_action(
        &mediator,
        &action("scale-db", json!({"type": "scale", "replicas": 2}), &format!("workload/statefulset/{NS}/db")),
    )
    .await?;
    assert_eq!(result["outcome"], applied, "{result}");
    assert_eq!(statefulsets.get("db").await?.spec.and_then(|s| s.replicas), Some(2));

    // cordon and uncordon.
    let unschedulable = || async { Ok::<_, anyhow::Error>(nodes.get(NODE).await?.spec.and_then(|s| s.unschedulable)) };
    let result = run_action(&mediator, &action("cordon", json!({"type": "cordon"}), &format!("node/{NODE}"))).await?;
    assert_eq!(result["outcome"], applied, "{result}");
    assert_eq!(unschedulable().await?, Some(true));
    let result =
        run_action(&mediator, &action("uncordon", json!({"type": "uncordon"}), &format!("node/{NODE}"))).await?;
    assert_eq!(result["outcome"], applied, "{result}");
    assert_ne!(unschedulable().await?, Some(true));

    // delete-pod.
    let result =
        run_action(&mediator, &action("delete-lonely", json!({"type": "delete-pod"}), &format!("pod/{NS}/lonely")))
            .await?;
    assert_eq!(result["outcome"], applied, "{result}");
    let pod = pods.get_opt("lonely").await?;
    assert!(pod.is_none_or(|p| p.metadata.deletion_timestamp.is_some()), "the pod is still there");

    // rollback: a new image, then back to the previous revision's template.
    let before = deployments.get("web").await?;
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "registry.example/web:2"}]}}}});
    deployments.patch("web", &PatchParams::default(), &Patch::Strategic(patch)).await?;
    poll::until("a ReplicaSet for the new image", Duration::from_secs(60), || async {
        Ok((replica_sets(&client).await?.len() == 3).then_some(()))
    })
    .await?;
    let result = run_action(
        &mediator,
        &action("rollback-web", json!({"type": "rollback"}), &format!("workload/deployment/{NS}/web")),
    )
    .await?;
    assert_eq!(result["outcome"], applied, "{result}");
    let after = deployments.get("web").await?;
    assert_eq!(image(&after), "registry.example/web:1");
    assert_eq!(restarted_at(&after), restarted_at(&before), "the template of the previous revision is back");

    // Each decision is an Event on its target and a line of the audit log.
    let events = Api::<Event>::namespaced(client.clone(), NS).list(&ListParams::default()).await?;
    // Only this run's: the namespace keeps the Events of earlier runs.
    let ours: Vec<&Event> = events
        .items
        .iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("causely.io/executor"))
        .filter(|e| e.event_time.as_ref().is_some_and(|t| t.0.as_millisecond() >= started as i64))
        .collect();
    let on =
        |name: &str| ours.iter().filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)).count();
    assert_eq!((on("web"), on("db"), on("lonely")), (4, 2, 1), "{ours:#?}");
    assert!(ours.iter().all(|e| e.reason.as_deref() == Some("RemediationApplied")), "{ours:#?}");
    let audit = executor.audit()?;
    assert_eq!(audit.len(), 9, "{audit:#?}");
    assert!(audit.iter().all(|l| l["event"] == "recorded"), "{audit:#?}");

    // kubectl causely remediate: applied exits 0, a refusal 1, bad input and no mediator 2.
    let url = mediator.url.clone();
    let target = format!("workload/deployment/{NS}/web");
    let run = plugin::expect(
        &cluster,
        &["remediate", "scale", &target, "--replicas", "2", "--wait", "--mediator-url", &url, "-o", "json"],
        0,
    )?;
    let view: serde_json::Value = serde_json::from_str(&run.stdout)?;
    assert_eq!(view["result"]["outcome"], applied, "{}", run.stdout);
    assert_eq!(deployments.get("web").await?.spec.and_then(|s| s.replicas), Some(2));
    let run = plugin::expect(
        &cluster,
        &["remediate", "scale", &target, "--replicas", "50", "--wait", "--reason", "load", "--mediator-url", &url],
        1,
    )?;
    assert!(run.stdout.contains("rejected: scale to 50 replicas is outside the policy's bounds"), "{}", run.stdout);
    let run = plugin::expect(&cluster, &["remediate", "cordon", &target, "--mediator-url", &url], 2)?;
    assert!(run.stderr.contains("cannot target"), "{}", run.stderr);
    let run = plugin::expect(&cluster, &["remediate", "cordon", "node/x", "--mediator-url", "http://127.0.0.1:9"], 2)?;
    assert!(run.stderr.contains("cannot reach the mediator"), "{}", run.stderr);

    nodes.delete(NODE, &DeleteParams::default()).await?;
    Ok(())
}
