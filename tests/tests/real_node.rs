//! The local cluster's real node behaves like a node of a real cluster: it registered with its own
//! identity, which the Node authorizer and NodeRestriction confine to its own objects; pods pull
//! our image from the local registry, run in containerd with an address of the node's pod CIDR,
//! reach a Service by its DNS name through CoreDNS and kube-proxy, and serve `kubectl logs` and
//! `kubectl exec` through the API server and the kubelet.

use std::time::Duration;

use anyhow::{Context, ensure};
use causely_tests::cluster::Cluster;
use causely_tests::poll;
use causely_tests::registry;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;

const NS: &str = "e2e-real-node";
const CONVERGE: Duration = Duration::from_secs(120);

/// A client authenticated as the real node (its kubelet's kubeconfig).
async fn as_node(cluster: &Cluster) -> anyhow::Result<Client> {
    let path = cluster.kubeconfig.with_file_name(format!("{}.kubeconfig", cluster.real_node));
    let config =
        kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(&path)?, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

#[tokio::test]
async fn the_real_node_is_ready_untainted_and_runs_containerd() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let node = Api::<Node>::all(cluster.client().await?).get(&cluster.real_node).await?;
    let status = node.status.context("no status")?;
    let ready = status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
    ensure!(ready, "{} is not Ready", cluster.real_node);
    let info = status.node_info.context("no nodeInfo")?;
    ensure!(info.container_runtime_version.starts_with("containerd://"), "runtime {}", info.container_runtime_version);
    let addresses = status.addresses.unwrap_or_default();
    ensure!(addresses.iter().any(|a| a.type_ == "InternalIP"), "no InternalIP in {addresses:?}");
    let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
    ensure!(taints.is_empty(), "the real node is tainted: {taints:?}");
    Ok(())
}

#[tokio::test]
async fn the_node_identity_may_not_touch_another_node_or_read_secrets_its_pods_do_not_use() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let admin = cluster.client().await?;
    let node = as_node(&cluster).await?;
    // Its own Node object: allowed (the kubelet updates it all the time).
    Api::<Node>::all(node.clone()).get(&cluster.real_node).await.context("the node cannot read itself")?;
    // Another node: NodeRestriction refuses the change.
    let other = causely_tests::cluster::fake_node_names(&admin).await?.into_iter().next().context("no fake node")?;
    let patch = json!({"metadata": {"labels": {"causely-test/hijacked": "true"}}});
    let err = Api::<Node>::all(node.clone())
        .patch(&other, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("a node must not modify another node");
    ensure!(err.to_string().contains("forbidden"), "not a refusal: {err}");
    // A Secret no pod on the node uses: the Node authorizer refuses it.
    let err = Api::<Secret>::namespaced(node, "kube-system")
        .list(&ListParams::default())
        .await
        .expect_err("a node must not list secrets");
    ensure!(err.to_string().contains("forbidden"), "not a refusal: {err}");
    Ok(())
}

#[tokio::test]
async fn a_pod_pulls_from_the_registry_reaches_a_service_by_name_and_serves_logs_and_exec() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    let image = registry::reference(&cluster, "demo")?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(NS, &DeleteParams::default()).await;
    poll::until("the previous namespace is gone", CONVERGE, || async {
        Ok(namespaces.get_opt(NS).await?.is_none().then_some(()))
    })
    .await?;
    namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NS}}))?).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), NS);
    let restricted = json!({"allowPrivilegeEscalation": false, "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}, "readOnlyRootFilesystem": true});
    let pod = |name: &str, args: serde_json::Value| {
        json!({"metadata": {"name": name, "labels": {"app": name}},
               "spec": {"containers": [{"name": name, "image": image, "args": args, "securityContext": restricted}]}})
    };
    let created = async {
        poll::until("the namespace's default ServiceAccount", CONVERGE, || async {
            Ok(pods.create(&PostParams::default(), &serde_json::from_value(pod("web", json!(["serve"])))?).await.ok())
        })
        .await?;
        services
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "web"},
                    "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080}]}}))?,
            )
            .await?;
        let url = format!("http://web.{NS}.svc:8080/");
        let caller = pod("client", json!(["call", url, "--interval", "200ms", "--report-every", "1s"]));
        pods.create(&PostParams::default(), &serde_json::from_value(caller)?).await?;
        anyhow::Ok(())
    };
    let result = async {
        created.await?;
        let web = poll::until("web is Running and Ready on the real node", CONVERGE, || async {
            let p = pods.get("web").await?;
            Ok(causely_tests::pods::is_ready(&p).then_some(p))
        })
        .await?;
        ensure!(causely_tests::pods::node(&web) == Some(cluster.real_node.as_str()));
        let status = web.status.context("no status")?;
        let ip = status.pod_ip.clone().unwrap_or_default();
        ensure!(ip.starts_with("10.244.200."), "pod IP {ip} is not from the real node's pod CIDR");
        let container = &status.container_statuses.unwrap_or_default()[0];
        let id = container.container_id.clone().unwrap_or_default();
        ensure!(id.starts_with("containerd://"), "container id {id}");
        ensure!(container.image_id.contains("sha256:"), "image id {}", container.image_id);

        // The client resolved web.<ns>.svc through CoreDNS and reached it through the Service's
        // ClusterIP (kube-proxy): it reports successful calls in its log, read through the kubelet.
        let log = poll::until("the client reports successful calls", CONVERGE, || async {
            let log = pods.logs("client", &LogParams::default()).await.unwrap_or_default();
            let ok = |l: &str| l.split(": ").nth(1).and_then(|r| r.split(' ').next()?.parse::<u64>().ok());
            Ok(log.lines().any(|l| ok(l).is_some_and(|n| n > 0)).then_some(log))
        })
        .await?;
        ensure!(!log.is_empty());

        // exec, through the API server, the kubelet and containerd's streaming server.
        let out = cluster
            .kubectl()
            .args(["-n", NS, "exec", "web", "--", "/usr/local/bin/causely-demo", "--version"])
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success() && stdout.contains("causely-demo"),
            "exec: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
    .await;
    namespaces.delete(NS, &DeleteParams::default()).await?;
    result
}
