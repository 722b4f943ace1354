//! `kubectl causely check --pre` runs the agent's own `causely-agent check` on the nodes, as a pod of
//! the agent DaemonSet's posture pulled from the local registry: the real node passes BTF, every eBPF
//! program and the cgroup checks; kwok's fake nodes are skipped; an image that cannot be pulled is one
//! failed check naming it; so is a caller who may not create the check's namespace; and the temporary
//! namespace is gone afterwards.

use anyhow::{Context, ensure};
use causely_tests::cluster::Cluster;
use causely_tests::plugin::expect;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

/// Every program of the agent (agent/src/ebpf/tcp.rs and sched.rs).
const PROGRAMS: [&str; 5] = ["tcp_set_state", "tcp_retransmit", "sched_wakeup", "sched_wakeup_new", "sched_switch"];

/// The namespaces the node check creates, found by the label it gives them.
async fn check_namespaces(cluster: &Cluster) -> anyhow::Result<Vec<String>> {
    let namespaces = Api::<Namespace>::all(cluster.client().await?)
        .list(&ListParams::default().labels("app.kubernetes.io/name=causely-node-check"))
        .await?;
    Ok(namespaces.items.into_iter().filter_map(|n| n.metadata.name).collect())
}

#[tokio::test]
async fn check_pre_runs_the_agents_check_on_each_kind_of_node_and_cleans_up() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let registry = cluster.registry.as_str();

    let run = expect(&cluster, &["check", "--pre", "--registry", registry, "-o", "json"], 0)?;
    let doc: Value = serde_json::from_str(&run.stdout).context("-o json is one JSON document")?;
    ensure!(doc["success"] == Value::Bool(true), "{doc:#}");
    let checks = doc["checks"].as_array().context("checks")?;
    let real_category = format!("node-check: {}", cluster.real_node);
    let real: Vec<&Value> = checks.iter().filter(|c| c["category"] == real_category.as_str()).collect();
    let line = |prefix: &str| real.iter().find(|c| c["description"].as_str().is_some_and(|d| d.starts_with(prefix)));
    let passed = |prefix: &str| line(prefix).is_some_and(|c| c["status"] == "ok");
    ensure!(passed(&format!("causely-agent {} checked {}", env!("CARGO_PKG_VERSION"), cluster.real_node)), "{real:#?}");
    ensure!(passed("kernel BTF is present"), "{real:#?}");
    for program in PROGRAMS {
        ensure!(passed(&format!("eBPF program {program} loads and attaches")), "{program}: {real:#?}");
    }
    ensure!(passed("cgroup hybrid") || passed("cgroup v2"), "cgroup layout: {real:#?}");
    ensure!(passed("maps its own container: pod "), "{real:#?}");
    ensure!(passed("reads the node's CPU and memory"), "{real:#?}");
    ensure!(real.iter().all(|c| c["status"] != "error"), "{real:#?}");

    let kwok: Vec<&Value> =
        checks.iter().filter(|c| c["category"].as_str().is_some_and(|k| k.contains("kwok-node-1"))).collect();
    ensure!(kwok.len() == 1, "{kwok:#?}");
    ensure!(kwok[0]["status"] == "skipped", "{kwok:#?}");
    ensure!(
        kwok[0]["description"].as_str().is_some_and(|d| d.contains("\"kwok\" is not a container runtime")),
        "{kwok:#?}"
    );
    let left = check_namespaces(&cluster).await?;
    ensure!(left.is_empty(), "the node check left namespaces behind: {left:?}");

    // An agent image that does not exist: one failed check naming the image and the node, exit 1.
    let missing = format!("{registry}/does-not-exist:1");
    let set = format!("image.agent={missing}");
    let run = expect(&cluster, &["check", "--pre", "--registry", registry, "--set", &set, "--node-timeout", "90s"], 1)?;
    let failure = format!("× {} cannot pull the agent image {missing}: ", cluster.real_node);
    ensure!(run.stdout.contains(&failure), "no line {failure:?} in:\n{}", run.stdout);
    ensure!(run.stdout.contains("- skipped (kernel "), "{}", run.stdout);
    ensure!(run.stdout.ends_with("Status check results are ×\n"), "{}", run.stdout);
    let left = check_namespaces(&cluster).await?;
    ensure!(left.is_empty(), "the failed node check left namespaces behind: {left:?}");
    Ok(())
}

#[tokio::test]
async fn a_caller_who_may_not_create_namespaces_gets_one_failed_node_check_not_an_error() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    // Enough for the rest of check --pre (nodes, the install's namespace), nothing to create.
    let name = format!("e2e-node-check-reader-{}", std::process::id());
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": ["nodes", "namespaces"], "verbs": ["get", "list"]}]
    }))?;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}]
    }))?;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    roles.create(&PostParams::default(), &role).await?;
    bindings.create(&PostParams::default(), &binding).await?;
    let outcome: anyhow::Result<()> = async {
        let kubeconfig = cluster.service_account_kubeconfig(&client, "default", &name).await?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("reader.kubeconfig");
        std::fs::write(&path, serde_json::to_string(&kubeconfig)?)?;
        let path = path.to_str().context("a UTF-8 path")?;
        let args = ["check", "--pre", "--kubeconfig", path, "--registry", cluster.registry.as_str()];
        let run = expect(&cluster, &args, 1)?;
        let failure = format!("× cannot check {}: cannot create a namespace for the check pods: ", cluster.real_node);
        let line = run.stdout.lines().find(|l| l.starts_with(&failure)).with_context(|| run.stdout.clone())?;
        ensure!(line.contains("forbidden"), "{line}");
        ensure!(run.stdout.contains("- skipped (kernel "), "{}", run.stdout);
        Ok(())
    }
    .await;
    bindings.delete(&name, &DeleteParams::default()).await?;
    roles.delete(&name, &DeleteParams::default()).await?;
    outcome
}
