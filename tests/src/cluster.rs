//! The local control plane of `tests/cluster/up`, started once per test process and reused.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::workspace::repo_root;

/// A running local cluster: its admin kubeconfig and the matching kubectl.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
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

fn start() -> anyhow::Result<Cluster> {
    let root = repo_root();
    let state = std::env::var_os("CAUSELY_CLUSTER_DIR").map_or_else(|| root.join("target/cluster"), PathBuf::from);
    let up = root.join("tests/cluster/up");
    let output = Command::new(&up).output().with_context(|| format!("running {}", up.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{} failed ({}): {}", up.display(), output.status, stderr.trim());
    }
    Ok(Cluster { kubeconfig: state.join("kubeconfig"), kubectl: state.join("bin/kubectl") })
}
