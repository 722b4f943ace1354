//! What the component binaries (agent, mediator, executor) and the plugin share around their
//! cores: an error and its causes as one line, the entry point's exit code, logs, waiting for
//! SIGTERM, the retry schedule, the Kubernetes client from `--kubeconfig`, and a replica's identity.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use backon::ExponentialBuilder;

/// `text` with every run of whitespace (newlines included) folded into one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error and its sources, joined with `": "` (HTTP client errors say little more than "error
/// sending request" at the top).
pub fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The error and its causes on one line, skipping a cause whose text the line already holds
/// (many errors repeat their source in their own message).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = one_line(&cause.to_string());
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The exit code of a component's run: 0, or the error on one line of stderr and 2.
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_line(&err));
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr at `info`, or as `RUST_LOG` says; coloured only on a terminal, so that a pod's
/// log (what `kubectl logs` shows, what a log collector ships) holds no escape codes.
pub fn init_logs() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Returns on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
pub async fn shutdown() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping");
}

/// Delay between attempts: doubling from `min` up to `max`, jitter included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { min: Duration::from_millis(200), max: Duration::from_secs(30) }
    }
}

impl Backoff {
    /// The schedule as backon's builder, without a limit on attempts.
    pub fn builder(self) -> ExponentialBuilder {
        // backon's jitter adds up to one more delay, so the base is capped at half of `max`.
        ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay((self.max / 2).max(self.min))
            .with_jitter()
            .without_max_times()
    }
}

/// A client from the kubeconfig at `path`, or from the pod's service account when there is none.
pub async fn kube_client(path: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match path {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => kube::Config::incluster().context("no --kubeconfig and not running in a cluster")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// A replica's name in a Lease or a log: `given`, else the host name (the pod name in a
/// cluster), else `fallback`.
pub fn identity(given: Option<&str>, fallback: &str) -> String {
    given.map(str::to_owned).unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| fallback.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_and_its_causes_fit_one_line_without_repeating_themselves() {
        let inner = anyhow::anyhow!("connection refused");
        let err = inner.context("sending report 7:\nconnection refused").context("the mediator");
        assert_eq!(error_line(&err), "the mediator: sending report 7: connection refused");
    }

    #[test]
    fn causes_are_joined_in_order() {
        let io = std::io::Error::other("refused");
        let err = std::io::Error::other(Wrapped(io));
        assert_eq!(with_causes(&err), "wrapped: refused");
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_given_identity_wins_over_the_host_name() {
        assert_eq!(identity(Some("mediator-0"), "fallback"), "mediator-0");
        assert!(!identity(None, "fallback").is_empty());
    }
}
