//! Runs `causely-executor` as a host process against the local cluster and a test's mediator,
//! under a ServiceAccount bound to the installer's scoped ClusterRole (optionally minus rules),
//! and submits actions to the mediator as the CLI would.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::mediator::{Mediator, agent_token, reqwest_client};
use crate::poll;
use crate::workspace::workspace_bin;

/// The ServiceAccount the executor runs as in tests, as in an install.
pub const ACCOUNT: &str = "causely-executor";

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    causely_model::UnixMillis::now().0
}

/// Binds `namespace/causely-executor` to a ClusterRole `role_name` holding the scoped executor
/// rules, minus those `keep` refuses, and returns a kubeconfig file authenticating as it.
pub async fn scoped_kubeconfig(
    cluster: &Cluster,
    client: &kube::Client,
    namespace: &str,
    role_name: &str,
    keep: impl Fn(&PolicyRule) -> bool,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    let rules: Vec<PolicyRule> =
        kubectl_causely::render::rbac::scoped_executor_rules().into_iter().filter(|r| keep(r)).collect();
    let role: ClusterRole = serde_json::from_value(json!({"metadata": {"name": role_name}, "rules": rules}))?;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}]
    }))?;
    let apply = PatchParams::apply("causely-tests").force();
    Api::<ClusterRole>::all(client.clone()).patch(role_name, &apply, &Patch::Apply(&role)).await?;
    Api::<ClusterRoleBinding>::all(client.clone()).patch(role_name, &apply, &Patch::Apply(&binding)).await?;
    let kubeconfig = cluster.service_account_kubeconfig(client, namespace, ACCOUNT).await?;
    let path = dir.join("executor.kubeconfig");
    std::fs::write(&path, serde_json::to_string(&kubeconfig)?)?;
    Ok(path)
}

/// A file holding the token the executor presents to the mediator.
pub async fn mediator_token_file(client: &kube::Client, namespace: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let token = agent_token(client, namespace, ACCOUNT, "causely-mediator", None).await?;
    let path = dir.join("executor.token");
    std::fs::write(&path, token)?;
    Ok(path)
}

/// How to start an executor.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub kubeconfig: PathBuf,
    pub token_file: PathBuf,
    pub policy: Option<PathBuf>,
    pub extra_args: Vec<String>,
}

/// An executor process; killed when dropped.
#[derive(Debug)]
pub struct Executor {
    child: Option<Child>,
    pub state_dir: PathBuf,
    pub url: String,
    mediator_url: String,
    options: ExecutorOptions,
    port: u16,
}

impl Executor {
    pub async fn start(mediator: &Mediator, state_dir: &Path, options: ExecutorOptions) -> anyhow::Result<Executor> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut executor = Executor {
            child: None,
            state_dir: state_dir.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
            mediator_url: mediator.url.clone(),
            options,
            port,
        };
        executor.spawn().await?;
        Ok(executor)
    }

    pub fn options(&self) -> &ExecutorOptions {
        &self.options
    }

    /// The executor's log file.
    pub fn log(&self) -> PathBuf {
        self.state_dir.with_extension("log")
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log())?;
        let o = &self.options;
        let mut command = Command::new(workspace_bin("causely-executor")?);
        command
            .args(["--mediator-url", &self.mediator_url, "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--kubeconfig")
            .arg(&o.kubeconfig)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--token-file")
            .arg(&o.token_file)
            .args(["--poll-interval", "300ms"])
            .args(&o.extra_args)
            .env("POD_NAME", "executor-under-test")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(policy) = &o.policy {
            command.arg("--policy").arg(policy);
        }
        self.child = Some(command.spawn().context("starting causely-executor")?);
        let url = format!("{}/healthz", self.url);
        let http = reqwest_client()?;
        poll::until("the executor answers /healthz", Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move { Ok(http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())) }
        })
        .await
        .with_context(|| format!("see {}", self.log().display()))
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn().await
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The lines of the audit log, parsed.
    pub fn audit(&self) -> anyhow::Result<Vec<Value>> {
        let text = std::fs::read_to_string(self.state_dir.join("audit.jsonl")).unwrap_or_default();
        text.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An action as the CLI submits it, expiring in 5 minutes.
pub fn action(id: &str, kind: Value, target: &str) -> Value {
    json!({
        "id": id, "kind": kind, "target": target, "reason": "test", "requester": "causely-tests",
        "expires": now_millis() + 300_000
    })
}

/// Posts an action to the mediator; returns the HTTP status and body.
pub async fn submit(mediator: &Mediator, action: &Value) -> anyhow::Result<(u16, Value)> {
    let response = reqwest_client()?.post(format!("{}/v1/actions", mediator.url)).json(action).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Submits an action (which must be accepted) and waits for its result.
pub async fn run_action(mediator: &Mediator, action: &Value) -> anyhow::Result<Value> {
    let (status, body) = submit(mediator, action).await?;
    if status != 201 {
        bail!("submitting {action}: {status} {body}");
    }
    wait_result(mediator, action["id"].as_str().unwrap_or_default()).await
}

/// Waits until the mediator has a result for `id`; returns the result.
pub async fn wait_result(mediator: &Mediator, id: &str) -> anyhow::Result<Value> {
    poll::until(&format!("a result for action {id}"), Duration::from_secs(60), || async move {
        let view = mediator.get_json(&format!("/v1/actions/{id}")).await?;
        Ok((view["state"] == "done").then(|| view["result"].clone()))
    })
    .await
}
