//! The command-line surface, as clap derive types. Flag groups shared by several commands are
//! flattened into each, as kubectl does.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Work with the Causely mediation layer of a Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "kubectl-causely", bin_name = "kubectl causely", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the mediation layer (or print what would be installed, with --dry-run).
    Install(InstallArgs),
    /// Print the plugin's version and the API server's version.
    Version(VersionArgs),
}

/// Where `install` applies its objects, or that it only prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Render locally and print; the cluster is not contacted.
    Client,
    /// Send every object to the API server as a dry run (admission runs; nothing is stored).
    Server,
}

/// Formats of rendered objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ManifestFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Namespace to install into.
    #[arg(short = 'n', long, default_value = crate::render::settings::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The agent's pod posture.
    #[arg(long, value_enum, default_value = "least-privilege")]
    pub agent_mode: crate::render::settings::AgentMode,
    /// Install the optional executor.
    #[arg(long)]
    pub executor: bool,
    /// What the executor is bound to (only with --executor).
    #[arg(long, value_enum, default_value = "scoped", requires = "executor")]
    pub executor_rbac: crate::render::settings::ExecutorRbac,
    /// Where the mediator keeps its ledger and queue.
    #[arg(long, value_enum, default_value = "persistent")]
    pub mediator_storage: crate::render::settings::MediatorStorage,
    /// `in-cluster` to install VictoriaMetrics, or `external:URL` to use an existing one.
    #[arg(long, default_value = "in-cluster", value_name = "in-cluster|external:URL")]
    pub victoria_metrics: String,
    /// Registry every image is pulled from.
    #[arg(long, default_value = crate::render::settings::DEFAULT_REGISTRY)]
    pub registry: String,
    /// Print (client) or server-validate (server) instead of applying.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<DryRun>,
    /// Output format of --dry-run.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: ManifestFormat,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// How to reach the cluster; the same flags and meanings as kubectl's.
#[derive(Debug, Clone, Args)]
pub struct ClusterFlags {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "PATH", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME", global = true)]
    pub context: Option<String>,
    /// How long to wait for one API request before giving up, e.g. 10s, 1m.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, global = true)]
    pub request_timeout: Duration,
}

/// Output format for commands that print a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// One JSON document on stdout.
    Json,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print only the plugin's own version; do not contact the cluster.
    #[arg(long)]
    pub client: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// Parses durations as kubectl writes them: a number followed by `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 30s, 5m or 1h"))?;
    let millis = match unit {
        "ms" => Some(value),
        "s" | "" => value.checked_mul(1_000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        _ => return Err(format!("{text:?} has unknown unit {unit:?}; use ms, s, m or h")),
    };
    millis.map(Duration::from_millis).ok_or_else(|| format!("{text:?} is too long"))
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
    fn durations_parse_in_kubectl_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
    }

    #[test]
    fn malformed_durations_are_refused_with_the_reason() {
        assert!(parse_duration("ten").unwrap_err().contains("not a duration"));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn install_dry_run_defaults_to_client() {
        let cli = Cli::try_parse_from(["kubectl-causely", "install", "--dry-run"]).unwrap();
        let Command::Install(args) = cli.command else { panic!("not install") };
        assert_eq!(args.dry_run, Some(DryRun::Client));
        let cli = Cli::try_parse_from(["kubectl-causely", "install", "--dry-run=server"]).unwrap();
        let Command::Install(args) = cli.command else { panic!("not install") };
        assert_eq!(args.dry_run, Some(DryRun::Server));
    }

    #[test]
    fn executor_rbac_requires_the_executor() {
        assert!(Cli::try_parse_from(["kubectl-causely", "install", "--executor-rbac", "cluster-admin"]).is_err());
        assert!(Cli::try_parse_from(["kubectl-causely", "install", "--executor", "--executor-rbac", "cluster-admin"]).is_ok());
    }

    #[test]
    fn version_flags_parse() {
        let cli = Cli::try_parse_from(["kubectl-causely", "version", "--client", "-o", "json"]).unwrap();
        let Command::Version(args) = cli.command else { panic!("not version") };
        assert!(args.client);
        assert_eq!(args.output, OutputFormat::Json);
    }
}
