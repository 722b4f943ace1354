//! The local control plane of `tests/cluster/up`, started once per test process and reused.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::workspace::repo_root;

/// A running local cluster: its admin kubeconfig, the matching kubectl, its image registry and
/// its real node.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    /// `host:port` of the local registry our images are pushed to (`--registry` of installs).
    pub registry: String,
    /// The cluster CA: it signs the API server's, the kubelet's and the registry's certificates.
    pub ca: PathBuf,
    /// The node where pods run for real (containerd, the kubelet).
    pub real_node: String,
    /// The real node's containerd (`ctr --address`), to act on its containers as a node's owner would.
    pub containerd_socket: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

impl Cluster {
    /// Brings the cluster up (or finds it already up) and returns it. `up` is idempotent and
    /// serialises concurrent callers with a lock, so every test may call this.
    pub fn get() -> anyhow::Result<Cluster> {
        CLUSTER.get_or_init(|| start().map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
    }

    /// An admin client for the cluster.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let file = Kubeconfig::read_from(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// The built kubectl, pointed at this cluster.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }
}

impl Cluster {
    /// A kubeconfig for the cluster that authenticates as a new ServiceAccount `name` in
    /// `namespace` with a token the API server issues: RBAC grants it nothing.
    pub async fn service_account_kubeconfig(
        &self,
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Kubeconfig> {
        use k8s_openapi::api::authentication::v1::TokenRequest;
        use k8s_openapi::api::core::v1::ServiceAccount;
        use kube::api::{Api, PostParams};
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
        if accounts.get_opt(name).await?.is_none() {
            let account = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
            accounts.create(&PostParams::default(), &account).await?;
        }
        let request: TokenRequest =
            serde_json::from_value(serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 600}}))?;
        let issued = accounts.create_token_request(name, &PostParams::default(), &request).await?;
        let token = issued.status.context("token request has no status")?.token;
        // The same server and CA as the admin kubeconfig, authenticated by the token alone.
        let admin = std::fs::read_to_string(&self.kubeconfig)?;
        let mut doc = serde_json::to_value(Kubeconfig::from_yaml(&admin)?)?;
        doc["users"] = serde_json::json!([{"name": name, "user": {"token": token}}]);
        doc["contexts"][0]["context"]["user"] = serde_json::json!(name);
        Ok(serde_json::from_value(doc)?)
    }
}

/// The names of the cluster's nodes.
pub async fn node_names(client: &kube::Client) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let nodes = kube::Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .list(&kube::api::ListParams::default())
        .await?;
    Ok(nodes.items.into_iter().filter_map(|n| n.metadata.name).collect())
}

/// The names of the cluster's fake (kwok) nodes.
pub async fn fake_node_names(client: &kube::Client) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let (key, value) = crate::kwok::NODE_LABEL;
    let nodes = kube::Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .list(&kube::api::ListParams::default().labels(&format!("{key}={value}")))
        .await?;
    Ok(nodes.items.into_iter().filter_map(|n| n.metadata.name).collect())
}

/// GET `path` of a Service's port (`name:port`) through the API server's service proxy, as
/// `kubectl get --raw` and `kubectl causely` reach in-cluster endpoints.
pub async fn service_get(client: &kube::Client, namespace: &str, service: &str, path: &str) -> anyhow::Result<String> {
    let url = format!("/api/v1/namespaces/{namespace}/services/{service}/proxy{path}");
    let request = http::Request::get(&url).body(Vec::new())?;
    client.request_text(request).await.with_context(|| format!("GET {url}"))
}

/// `path?k=v&...` with the query's keys and values percent-encoded (PromQL selectors carry `{`,
/// `"` and `[`, which a URI may not).
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse("http://query.invalid/")?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(format!("{path}?{}", url.query().unwrap_or_default()))
}

/// A dynamic API for the kind and namespace of a rendered object (a JSON value).
pub fn api_for(client: &kube::Client, object: &serde_json::Value) -> kube::Api<kube::api::DynamicObject> {
    use kube::api::{ApiResource, GroupVersionKind};
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => kube::Api::namespaced_with(client.clone(), ns, &resource),
        None => kube::Api::all_with(client.clone(), &resource),
    }
}

fn start() -> anyhow::Result<Cluster> {
    let root = repo_root();
    let state = std::env::var_os("CAUSELY_CLUSTER_DIR").map_or_else(|| root.join("target/cluster"), PathBuf::from);
    let up = root.join("tests/cluster/up");
    let output = Command::new(&up).output().with_context(|| format!("running {}", up.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{} failed ({}): {}", up.display(), output.status, stderr.trim());
    }
    // tests/cluster/up writes what it set up as KEY=VALUE lines.
    let env_file = state.join("cluster.env");
    let text = std::fs::read_to_string(&env_file).with_context(|| format!("reading {}", env_file.display()))?;
    let env: std::collections::BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let value = |key: &str| {
        env.get(key).map(|v| (*v).to_owned()).with_context(|| format!("{key} not in {}", env_file.display()))
    };
    Ok(Cluster {
        kubeconfig: PathBuf::from(value("KUBECONFIG")?),
        kubectl: state.join("bin/kubectl"),
        registry: value("REGISTRY")?,
        ca: PathBuf::from(value("CA")?),
        real_node: value("REAL_NODE")?,
        containerd_socket: PathBuf::from(value("CONTAINERD_SOCKET")?),
    })
}
