//! The local control plane behaves like a real cluster: the pinned API server with TLS, RBAC,
//! service-account tokens and PodSecurity admission; three Ready, tainted kwok nodes; workloads
//! placed on them that get scheduled and reach Running; and `kubectl causely` found as a kubectl
//! plugin. The real node is tested in `real_node.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use causely_tests::cluster::Cluster;
use causely_tests::kwok::{self, on_fake_nodes};
use causely_tests::poll;
use causely_tests::workspace::{pinned, workspace_bin};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::KubeConfigOptions;
use kube::{Api, Client};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(90);

/// A namespace for one test, deleted (and waited for) when the test body is done.
async fn with_namespace<F, Fut>(client: &Client, name: &str, labels: serde_json::Value, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))?;
    namespaces.create(&PostParams::default(), &ns).await.with_context(|| format!("creating namespace {name}"))?;
    let result = body(client.clone(), name.to_owned()).await;
    namespaces.delete(name, &DeleteParams::default()).await.with_context(|| format!("deleting namespace {name}"))?;
    poll::until(&format!("namespace {name} is gone"), CONVERGE, || async {
        Ok(namespaces.get_opt(name).await?.is_none().then_some(()))
    })
    .await?;
    result
}

/// A unique, valid namespace name for this run.
fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A container spec that passes the "restricted" Pod Security profile.
fn restricted_container(name: &str) -> serde_json::Value {
    json!({
        "name": name,
        "image": "registry.k8s.io/pause:3.10",
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        }
    })
}

#[tokio::test]
async fn the_api_server_reports_the_pinned_release() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let info = cluster.client().await?.apiserver_version().await?;
    assert_eq!(info.git_version, pinned("K8S_VERSION")?);
    Ok(())
}

#[tokio::test]
async fn three_fake_nodes_are_ready_and_report_kernel_os_image_and_pod_cidr() -> anyhow::Result<()> {
    let client = Cluster::get()?.client().await?;
    let (key, value) = kwok::NODE_LABEL;
    let nodes = Api::<Node>::all(client).list(&ListParams::default().labels(&format!("{key}={value}"))).await?;
    assert_eq!(nodes.items.len(), 3, "expected 3 fake nodes");
    for node in &nodes.items {
        let name = node.metadata.name.clone().unwrap_or_default();
        let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        assert!(
            taints.iter().any(|t| t.key == kwok::TAINT_KEY && t.effect == "NoSchedule"),
            "fake node {name} is not tainted: {taints:?}"
        );
        let status = node.status.clone().context("node has no status")?;
        let ready = status.conditions.unwrap_or_default().into_iter().any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(ready, "node {name} is not Ready");
        let info = status.node_info.context("node has no nodeInfo")?;
        assert!(!info.kernel_version.is_empty(), "node {name} reports no kernel version");
        assert!(!info.os_image.is_empty(), "node {name} reports no OS image");
        let cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.clone()).unwrap_or_default();
        assert!(cidr.starts_with("10.244."), "node {name} has pod CIDR {cidr:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_daemonset_runs_one_pod_per_node_and_a_deployment_becomes_available() -> anyhow::Result<()> {
    let client = Cluster::get()?.client().await?;
    let name = unique("e2e-workloads");
    with_namespace(&client, &name, json!({}), |client, ns| async move {
        let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let template = |app: &str| {
            json!({"metadata": {"labels": {"app": app}},
                   "spec": on_fake_nodes(json!({"containers": [restricted_container("main")]}))})
        };
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "per-node"},
            "spec": {"selector": {"matchLabels": {"app": "per-node"}}, "template": template("per-node")}
        }))?;
        let deploy: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template("web")}
        }))?;
        daemonsets.create(&PostParams::default(), &ds).await?;
        deployments.create(&PostParams::default(), &deploy).await?;

        let node_names = causely_tests::cluster::fake_node_names(&client).await?;
        let placed = poll::until("the DaemonSet has a Running pod with an IP on every fake node", CONVERGE, || async {
            let list = pods.list(&ListParams::default().labels("app=per-node")).await?;
            let running: Vec<(String, String)> = list
                .items
                .iter()
                .filter_map(|p| {
                    let status = p.status.as_ref()?;
                    (status.phase.as_deref() == Some("Running")).then_some(())?;
                    Some((p.spec.as_ref()?.node_name.clone()?, status.pod_ip.clone()?))
                })
                .collect();
            Ok((running.len() == node_names.len()).then_some(running))
        })
        .await?;
        let on_nodes: BTreeSet<String> = placed.iter().map(|(node, _)| node.clone()).collect();
        assert_eq!(on_nodes, node_names, "one DaemonSet pod per fake node");
        let ips: BTreeSet<&String> = placed.iter().map(|(_, ip)| ip).collect();
        assert_eq!(ips.len(), placed.len(), "pod IPs are distinct: {placed:?}");

        let ds_status = daemonsets.get_status("per-node").await?.status.context("no DaemonSet status")?;
        poll::until("the DaemonSet reports 3 of 3 ready", CONVERGE, || async {
            let status = daemonsets.get_status("per-node").await?.status.context("no status")?;
            Ok((status.desired_number_scheduled == 3 && status.number_ready == 3).then_some(()))
        })
        .await
        .with_context(|| format!("last status {ds_status:?}"))?;

        poll::until("the Deployment is Available with 2 replicas", CONVERGE, || async {
            let status = deployments.get_status("web").await?.status.context("no status")?;
            let available =
                status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Available" && c.status == "True");
            Ok((available && status.available_replicas == Some(2)).then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn pod_security_admission_enforces_the_restricted_profile() -> anyhow::Result<()> {
    let client = Cluster::get()?.client().await?;
    let name = unique("e2e-restricted");
    let labels = json!({"pod-security.kubernetes.io/enforce": "restricted"});
    with_namespace(&client, &name, labels, |client, ns| async move {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let privileged: Pod = serde_json::from_value(json!({
            "metadata": {"name": "privileged"},
            "spec": {"containers": [{"name": "main", "image": "busybox", "securityContext": {"privileged": true}}]}
        }))?;
        let err = pods.create(&PostParams::default(), &privileged).await.expect_err("a privileged pod must be refused");
        let text = err.to_string();
        assert!(text.contains("violates PodSecurity \"restricted"), "unexpected refusal: {text}");

        let compliant: Pod = serde_json::from_value(json!({
            "metadata": {"name": "compliant"},
            "spec": on_fake_nodes(json!({"containers": [restricted_container("main")]}))
        }))?;
        // The namespace's default ServiceAccount appears asynchronously (controller-manager).
        poll::until("a restricted-compliant pod is admitted", CONVERGE, || async {
            Ok(pods.create(&PostParams::default(), &compliant).await.ok().map(|_| ()))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_service_account_token_is_issued_and_rbac_denies_what_it_was_not_granted() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    let name = unique("e2e-rbac");
    with_namespace(&client, &name, json!({}), |client, ns| async move {
        let kubeconfig = cluster.service_account_kubeconfig(&client, &ns, "nobody").await?;
        let written = serde_json::to_value(&kubeconfig)?;
        let token = written["users"][0]["user"]["token"].as_str().context("no token")?;
        ensure!(token.split('.').count() == 3, "the issued token is not a JWT");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let as_nobody = Client::try_from(config)?;

        let err =
            Api::<Pod>::namespaced(as_nobody, &ns).list(&ListParams::default()).await.expect_err("RBAC must deny");
        let text = err.to_string();
        assert!(text.contains(&format!("system:serviceaccount:{ns}:nobody")), "denied for another identity: {text}");
        assert!(text.contains("forbidden"), "not an RBAC denial: {text}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn kubectl_finds_the_plugin_and_the_plugin_reaches_the_cluster() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let plugin = workspace_bin("kubectl-causely")?;
    let plugin_dir = plugin.parent().context("plugin path has no directory")?;
    let path = std::env::join_paths([plugin_dir.to_path_buf(), "/usr/bin".into(), "/bin".into()])?;

    let help = cluster.kubectl().env("PATH", &path).args(["causely", "--help"]).output()?;
    assert!(help.status.success(), "kubectl causely --help failed: {}", String::from_utf8_lossy(&help.stderr));
    let text = String::from_utf8(help.stdout)?;
    assert!(text.contains("Usage: kubectl causely"), "{text}");
    assert!(text.contains("version"), "{text}");

    let list = cluster.kubectl().env("PATH", &path).args(["plugin", "list"]).output()?;
    let listed = String::from_utf8(list.stdout)?;
    assert!(listed.contains(&plugin.display().to_string()), "kubectl plugin list: {listed}");

    let version = cluster.kubectl().env("PATH", &path).args(["causely", "version", "-o", "json"]).output()?;
    assert!(version.status.success(), "{}", String::from_utf8_lossy(&version.stderr));
    let report: serde_json::Value = serde_json::from_slice(&version.stdout)?;
    assert_eq!(report["serverVersion"], json!(pinned("K8S_VERSION")?));
    assert_eq!(report["clientVersion"], json!(env!("CARGO_PKG_VERSION")));
    Ok(())
}
