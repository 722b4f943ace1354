//! Runs `causely-mediator` as a host process against the local cluster (this machine has no
//! container runtime), and mints the tokens agents would present to it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cluster::Cluster;
use crate::poll;
use crate::workspace::workspace_bin;

/// How to start a mediator.
#[derive(Debug, Clone)]
pub struct MediatorOptions {
    /// Namespace whose ServiceAccount `agent_account` agents use.
    pub namespace: String,
    pub agent_account: String,
    /// `none` or a URL.
    pub upstream: String,
    pub cluster_id: String,
    pub batch_interval: &'static str,
    pub extra_args: Vec<String>,
    /// Where it listens; a free loopback port when `None`.
    pub listen: Option<std::net::SocketAddr>,
}

impl MediatorOptions {
    pub fn new(namespace: &str) -> Self {
        MediatorOptions {
            namespace: namespace.into(),
            agent_account: "causely-agent".into(),
            upstream: "none".into(),
            cluster_id: "test".into(),
            batch_interval: "500ms",
            extra_args: Vec::new(),
            listen: None,
        }
    }
}

/// A mediator process; killed when dropped.
#[derive(Debug)]
pub struct Mediator {
    child: Option<Child>,
    pub url: String,
    pub state_dir: PathBuf,
    options: MediatorOptions,
    kubeconfig: PathBuf,
    listen: std::net::SocketAddr,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Mediator {
    /// Starts a mediator with its state in `state_dir` and waits until it answers `/healthz`.
    pub async fn start(cluster: &Cluster, state_dir: &Path, options: MediatorOptions) -> anyhow::Result<Mediator> {
        let listen = match options.listen {
            Some(addr) => addr,
            None => std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        };
        let mut mediator = Mediator {
            child: None,
            url: format!("http://{listen}"),
            state_dir: state_dir.to_owned(),
            options,
            kubeconfig: cluster.kubeconfig.clone(),
            listen,
        };
        mediator.spawn().await?;
        Ok(mediator)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let o = &self.options;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state_dir.with_extension("log"))
            .context("opening the mediator log")?;
        let child = Command::new(workspace_bin("causely-mediator")?)
            .args(["--listen", &self.listen.to_string()])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--upstream-url", &o.upstream, "--cluster-id", &o.cluster_id])
            .args(["--agent-service-account", &format!("{}/{}", o.namespace, o.agent_account)])
            .args(["--batch-interval", o.batch_interval])
            .args(["--upstream-timeout", "2s"])
            .args(&o.extra_args)
            .env("POD_NAMESPACE", &o.namespace)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting causely-mediator")?;
        self.child = Some(child);
        let url = format!("{}/healthz", self.url);
        let http = reqwest_client()?;
        poll::until("the mediator answers /healthz", Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move { Ok(http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
        })
        .await
        .with_context(|| format!("see {}", self.state_dir.with_extension("log").display()))
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills it if running and starts it again on the same port and state.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn().await
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// GET a JSON document from the mediator.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let response = reqwest_client()?.get(format!("{}{path}", self.url)).send().await?;
        if !response.status().is_success() {
            bail!("GET {path}: {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// The value of one un-labelled metric from `/metrics`, or the sum over its label sets.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest_client()?.get(format!("{}/metrics", self.url)).send().await?.text().await?;
        metric_value(&text, name)
    }
}

impl Drop for Mediator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sums the samples of `name` (any labels) in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> anyhow::Result<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next().unwrap_or("").parse().with_context(|| format!("line {line:?}"))?;
        *found.get_or_insert(0.0) += value;
    }
    found.with_context(|| format!("metric {name} not exposed"))
}

/// A plain HTTP client for loopback servers.
pub fn reqwest_client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?)
}

/// A token for `namespace/account` with the mediator's audience, as the kubelet would project it
/// into an agent pod (optionally bound to a pod, which names its node in the token).
pub async fn agent_token(
    client: &kube::Client,
    namespace: &str,
    account: &str,
    audience: &str,
    bound_pod: Option<(&str, &str)>,
) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, PostParams};
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    if accounts.get_opt(account).await?.is_none() {
        let sa = serde_json::from_value(serde_json::json!({"metadata": {"name": account}}))?;
        accounts.create(&PostParams::default(), &sa).await?;
    }
    let mut spec = serde_json::json!({"audiences": [audience], "expirationSeconds": 3600});
    if let Some((name, uid)) = bound_pod {
        spec["boundObjectRef"] = serde_json::json!({"kind": "Pod", "apiVersion": "v1", "name": name, "uid": uid});
    }
    let request: TokenRequest = serde_json::from_value(serde_json::json!({"spec": spec}))?;
    let response = accounts.create_token_request(account, &PostParams::default(), &request).await?;
    response.status.map(|s| s.token).context("the API server returned no token")
}

/// Deletes the mediators' Lease in `namespace`, so a test's mediators start a new stream at seq 1
/// instead of continuing the one an earlier run left in the Lease.
pub async fn forget_stream(client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, DeleteParams};
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    match leases.delete("causely-mediator", &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Ensures a namespace exists.
pub async fn ensure_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(name).await?.is_none() {
        let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
        namespaces.create(&PostParams::default(), &ns).await?;
    }
    Ok(())
}
