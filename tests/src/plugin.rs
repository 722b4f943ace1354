//! Running the built `kubectl-causely` against the local cluster, as a user would.

use std::process::{Command, Output};

use crate::cluster::Cluster;
use crate::workspace::workspace_bin;

/// What one run of the plugin did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `kubectl-causely ARGS` with the cluster's admin kubeconfig.
pub fn run(cluster: &Cluster, args: &[&str]) -> anyhow::Result<Run> {
    let binary = workspace_bin("kubectl-causely")?;
    let out = Command::new(binary).args(args).env("KUBECONFIG", &cluster.kubeconfig).output()?;
    Ok(out.into())
}

/// Runs the plugin and fails unless it exits with `code`.
pub fn expect(cluster: &Cluster, args: &[&str], code: i32) -> anyhow::Result<Run> {
    let run = run(cluster, args)?;
    anyhow::ensure!(
        run.code == Some(code),
        "kubectl-causely {} exited {:?}, expected {code}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    Ok(run)
}

/// Runs `kubectl-causely install --registry <the local registry> ARGS` and fails unless it exits
/// with `code`: installs in the tests pull our images from the local registry, as a user's from
/// theirs.
pub fn install(cluster: &Cluster, args: &[&str], code: i32) -> anyhow::Result<Run> {
    let mut all = vec!["install", "--registry", cluster.registry.as_str()];
    all.extend_from_slice(args);
    expect(cluster, &all, code)
}
