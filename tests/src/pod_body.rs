//! Gives a kwok pod a real body through `tests/cluster/pod-body`: its IP in a network namespace,
//! kubelet-style cgroups, and a command running in both. Removed again on drop.

use std::process::Command;

use anyhow::{Context, bail};

use crate::cluster::Cluster;
use crate::workspace::repo_root;

/// A pod with a running body.
#[derive(Debug)]
pub struct PodBody {
    pub namespace: String,
    pub pod: String,
    pub pid: u32,
    pub container_id: String,
    pub netns: String,
    pub ip: String,
    cluster: Cluster,
}

/// Creates `name` afresh (deleting an earlier one) as a one-container pod bound to `node`, and
/// waits until kwok has given it an IP.
pub async fn fresh_pod(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
    node: &str,
) -> anyhow::Result<k8s_openapi::api::core::v1::Pod> {
    use kube::api::{DeleteParams, PostParams};
    let _ = pods.delete(name, &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }).await;
    crate::poll::until("the old pod is gone", std::time::Duration::from_secs(30), || async {
        Ok(pods.get_opt(name).await?.is_none().then_some(()))
    })
    .await?;
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry.example/app:1"}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    crate::poll::until("the pod has an IP", std::time::Duration::from_secs(30), || async {
        Ok(pods.get(name).await?.status.and_then(|s| s.pod_ip).is_some().then_some(()))
    })
    .await?;
    Ok(pods.get(name).await?)
}

fn script() -> std::path::PathBuf {
    repo_root().join("tests/cluster/pod-body")
}

impl PodBody {
    /// Runs `command` in the body of `namespace/pod` (which must have an IP), optionally with a CPU
    /// quota (µs per 100 ms period).
    pub fn run(
        cluster: &Cluster,
        namespace: &str,
        pod: &str,
        cpu_quota: Option<u32>,
        command: &[&str],
    ) -> anyhow::Result<PodBody> {
        let mut cmd = Command::new(script());
        cmd.env("CAUSELY_CLUSTER_DIR", cluster.kubeconfig.parent().unwrap_or(std::path::Path::new(".")));
        cmd.args(["run", namespace, pod]);
        if let Some(quota) = cpu_quota {
            cmd.args(["--cpu-quota", &quota.to_string()]);
        }
        let output = cmd.arg("--").args(command).output().context("running tests/cluster/pod-body")?;
        if !output.status.success() {
            bail!("pod-body run {namespace}/{pod}: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let value = |key: &str| {
            text.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .map(str::to_owned)
                .with_context(|| format!("pod-body printed no {key}: {text}"))
        };
        Ok(PodBody {
            namespace: namespace.into(),
            pod: pod.into(),
            pid: value("pid")?.parse()?,
            container_id: value("container")?,
            netns: value("netns")?,
            ip: value("ip")?,
            cluster: cluster.clone(),
        })
    }
}

impl Drop for PodBody {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .env("CAUSELY_CLUSTER_DIR", self.cluster.kubeconfig.parent().unwrap_or(std::path::Path::new(".")))
            .args(["delete", &self.namespace, &self.pod])
            .output();
    }
}
