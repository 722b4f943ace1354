//! The executor's command line; every flag can also be set by environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Causely executor: carries out remediation actions the mediator hands it, each checked against
/// its policy, dry-run first, recorded as an Event and in its audit log, and run at most once.
#[derive(Debug, Clone, Parser)]
#[command(name = "causely-executor", version, about, long_about = None)]
pub struct Cli {
    /// Base URL of the mediator whose action queue the executor works through.
    #[arg(long, env = "CAUSELY_MEDIATOR_URL")]
    pub mediator_url: String,
    /// Kubeconfig to use; in-cluster configuration when absent.
    #[arg(long, env = "CAUSELY_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Directory of the run record (which ids ran) and the audit log.
    #[arg(long, env = "CAUSELY_STATE_DIR", default_value = "/var/lib/causely-executor")]
    pub state_dir: PathBuf,
    /// Policy file (YAML or JSON; unknown keys rejected); the built-in default policy when absent.
    #[arg(long, env = "CAUSELY_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The projected ServiceAccount token presented to the mediator; re-read on every request.
    #[arg(long, env = "CAUSELY_TOKEN_FILE", default_value = "/var/run/secrets/causely/token")]
    pub token_file: PathBuf,
    /// Address of /healthz and /metrics.
    #[arg(long, env = "CAUSELY_LISTEN", default_value = "0.0.0.0:9091")]
    pub listen: SocketAddr,
    /// Only ever run the API server's dry run; nothing in the cluster changes.
    #[arg(long, env = "CAUSELY_DRY_RUN_ONLY")]
    pub dry_run_only: bool,
    /// How often the mediator is asked for pending actions.
    #[arg(long, env = "CAUSELY_POLL_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// This executor's name in the Events it records (the pod name in the cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_mediator_url_is_required_and_the_rest_have_defaults() {
        assert!(Cli::try_parse_from(["causely-executor"]).is_err());
        let cli = Cli::try_parse_from(["causely-executor", "--mediator-url", "http://m:8080"]).unwrap();
        assert_eq!(cli.poll_interval, Duration::from_secs(5));
        assert!(!cli.dry_run_only);
        assert!(Cli::try_parse_from(["causely-executor", "--mediator-url", "x", "--poll-interval", "soon"]).is_err());
    }
}
