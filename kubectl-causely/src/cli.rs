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
    /// Install the mediation layer, or print (--dry-run) or server-validate (--dry-run=server) it.
    Install(InstallArgs),
    /// Upgrade an install to this release, keeping its recorded settings unless overridden.
    Upgrade(UpgradeArgs),
    /// Remove everything an install created; PersistentVolumeClaims stay unless --purge.
    Uninstall(UninstallArgs),
    /// Show each component's desired and ready counts, version and age; exit 1 when unhealthy.
    Status(StatusArgs),
    /// Check that the cluster can take an install (--pre), or that an install is healthy.
    Check(CheckArgs),
    /// Audit the permissions and pod security of Causely's components against a baseline.
    AuditPermissions(AuditArgs),
    /// Show the RBAC differences between two of: installed, seed, release, or a file.
    RbacDiff(RbacDiffArgs),
    /// Ask the executor, through the mediator, to restart, scale, roll back, delete a pod, or cordon a node.
    Remediate(RemediateArgs),
    /// Watch the topology, symptoms and egress live in the terminal (through the API server, or --mediator-url).
    Top(TopArgs),
    /// Prove, with evidence, that only topology and symptoms left the cluster; or watch batches leave.
    Egress(EgressArgs),
    /// Print a shell completion script.
    Completion(CompletionArgs),
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

/// The namespace an install lives in.
#[derive(Debug, Clone, Args)]
pub struct NamespaceFlag {
    /// Namespace of the install.
    #[arg(short = 'n', long, default_value = crate::render::settings::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// Settings of an install. `install` fills what is not given with this release's defaults;
/// `upgrade` with what the install recorded.
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsFlags {
    /// The agent's pod posture [default: least-privilege].
    #[arg(long, value_enum)]
    pub agent_mode: Option<crate::render::settings::AgentMode>,
    /// Install the optional executor.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub executor: Option<bool>,
    /// What the executor is bound to [default: scoped].
    #[arg(long, value_enum)]
    pub executor_rbac: Option<crate::render::settings::ExecutorRbac>,
    /// Where the mediator keeps its ledger and queue [default: persistent].
    #[arg(long, value_enum)]
    pub mediator_storage: Option<crate::render::settings::MediatorStorage>,
    /// `in-cluster` to install VictoriaMetrics, or `external:URL` to use an existing one [default: in-cluster].
    #[arg(long, value_name = "in-cluster|external:URL")]
    pub victoria_metrics: Option<String>,
    /// Registry every image is pulled from.
    #[arg(long, value_name = "HOST[/PATH]")]
    pub registry: Option<String>,
    /// Override one value, e.g. image.agent=REF (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// A values file: per-component nodeSelector, tolerations and resources, and the upstream URL.
    #[arg(short = 'f', long = "values", value_name = "PATH")]
    pub values: Option<PathBuf>,
}

/// Waiting for a rollout.
#[derive(Debug, Clone, Args)]
pub struct WaitFlags {
    /// Wait until every component is ready, showing progress.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 90s, 5m.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub namespace: NamespaceFlag,
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// Print (client) or server-validate (server) instead of applying.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<DryRun>,
    /// Output format of --dry-run.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: ManifestFormat,
    #[command(flatten)]
    pub wait: WaitFlags,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub namespace: NamespaceFlag,
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// Show what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Whether a failed rollout is rolled back to the recorded previous release.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub rollback_on_failure: bool,
    /// How long to wait for the rollout, e.g. 90s, 5m.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub namespace: NamespaceFlag,
    /// Also delete the PersistentVolumeClaims (the mediator's ledger, VictoriaMetrics' data) and the namespace.
    #[arg(long)]
    pub purge: bool,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub namespace: NamespaceFlag,
    #[command(flatten)]
    pub wait: WaitFlags,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub namespace: NamespaceFlag,
    /// Check that the cluster can take an install, instead of checking an install.
    #[arg(long)]
    pub pre: bool,
    /// With --pre: the settings of the planned install.
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// With --pre: how long the agent's check pods may take on the nodes (image pull, start, run).
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub node_timeout: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// Formats of the audit report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// Grouped by component; colour only on a terminal.
    Table,
    Json,
    /// For a pull-request comment.
    Markdown,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

/// The lowest severity that fails an audit (exit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    None,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub namespace: NamespaceFlag,
    /// What to compare with: `seed` (the published permissions), `release` (what this plugin
    /// renders for the recorded install settings) or the path of a YAML file of rendered objects.
    #[arg(long, default_value = "release", value_name = "seed|release|PATH")]
    pub baseline: String,
    /// Audit rendered YAML files instead of the cluster (for CI before a deploy).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub from_file: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: AuditFormat,
    /// Exit 1 when a finding is at least this severe.
    #[arg(long, value_enum, default_value = "high")]
    pub fail_on: FailOn,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

#[derive(Debug, Args)]
pub struct RbacDiffArgs {
    /// `installed` (the cluster now), `seed` (the published permissions), `release` (this
    /// plugin's rendering), or a path of rendered objects.
    #[arg(default_value = "installed", value_name = "FROM")]
    pub from: String,
    #[arg(default_value = "release", value_name = "TO")]
    pub to: String,
    #[command(flatten)]
    pub namespace: NamespaceFlag,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// The remediation actions, as `remediate` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RemediateAction {
    /// Rollout restart of a Deployment, StatefulSet or DaemonSet.
    Restart,
    /// Delete one pod; its controller replaces it.
    DeletePod,
    /// Set the replicas of a Deployment or StatefulSet (--replicas).
    Scale,
    /// Mark a node unschedulable.
    Cordon,
    /// Mark a node schedulable again.
    Uncordon,
    /// Roll a Deployment back to its previous revision.
    Rollback,
}

#[derive(Debug, Args)]
pub struct RemediateArgs {
    /// What to do.
    #[arg(value_enum)]
    pub action: RemediateAction,
    /// The target's entity id: workload/<deployment|statefulset|daemonset>/NS/NAME, pod/NS/NAME or node/NAME.
    pub target: String,
    /// Why; recorded in the Event and the executor's audit log.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Only the API server's dry run: checked and admitted, nothing changes.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait for the executor's result (until the action expires).
    #[arg(long)]
    pub wait: bool,
    /// The replica count of a scale.
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,
    /// How long the action stays valid; the executor refuses it afterwards.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub expires_in: Duration,
    /// The action's id (default: a fresh one); an id is used once.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Namespace of the install (where the mediator runs), not of the target.
    #[command(flatten)]
    pub namespace: NamespaceFlag,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub mediator: MediatorFlags,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub namespace: NamespaceFlag,
    #[command(flatten)]
    pub mediator: MediatorFlags,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

#[derive(Debug, Args)]
pub struct EgressArgs {
    #[command(subcommand)]
    pub command: EgressCommand,
}

#[derive(Debug, Subcommand)]
pub enum EgressCommand {
    /// Verify the ledger's hash chain, every kept payload against the egress guard, the mediator's
    /// counters and the NetworkPolicies; print the verdict with its evidence. Exit 0 proven,
    /// 1 violation, 2 could not verify.
    Verify(EgressVerifyArgs),
    /// Print each batch as the mediator accepts it (one line, or one JSON object per line with -o json).
    Tail(EgressTailArgs),
}

#[derive(Debug, Args)]
pub struct EgressVerifyArgs {
    #[command(flatten)]
    pub namespace: NamespaceFlag,
    #[command(flatten)]
    pub mediator: MediatorFlags,
    /// Audit a mediator state directory (a copy of its volume) instead of asking the mediator.
    #[arg(long, value_name = "DIR", conflicts_with = "mediator_url")]
    pub state_dir: Option<PathBuf>,
    /// Only entries this recent are evidence and have their payloads checked, e.g. 1h, 30m; the
    /// chain is still verified from the first entry.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Do not check the NetworkPolicies (e.g. auditing a copied state directory away from the cluster).
    #[arg(long)]
    pub skip_network_policies: bool,
    /// VictoriaMetrics to compare the egress with (default: the install's, through the API server's proxy).
    #[arg(long, value_name = "URL")]
    pub victoria_metrics_url: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

#[derive(Debug, Args)]
pub struct EgressTailArgs {
    #[command(flatten)]
    pub namespace: NamespaceFlag,
    #[command(flatten)]
    pub mediator: MediatorFlags,
    /// Start with the first ledger entry instead of the next batch.
    #[arg(long)]
    pub from_start: bool,
    /// Output format: one line per batch, or one JSON object per line (JSON Lines) with the decoded batch.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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

/// How to reach the mediator's read API.
#[derive(Debug, Clone, Default, Args)]
pub struct MediatorFlags {
    /// Reach the mediator at this URL instead of through the API server's service proxy.
    #[arg(long, value_name = "URL", env = "CAUSELY_MEDIATOR_URL")]
    pub mediator_url: Option<String>,
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
        _ => {
            return Err(format!("{text:?} has unknown unit {unit:?}; use ms, s, m or h"));
        }
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
    fn settings_flags_left_out_stay_unset_so_upgrade_can_keep_recorded_ones() {
        let cli = Cli::try_parse_from(["kubectl-causely", "upgrade", "--registry", "r.io"]).unwrap();
        let Command::Upgrade(args) = cli.command else { panic!("not upgrade") };
        assert_eq!(args.settings.registry.as_deref(), Some("r.io"));
        assert_eq!(args.settings.agent_mode, None);
        assert_eq!(args.settings.executor, None);
        let cli = Cli::try_parse_from(["kubectl-causely", "install", "--executor"]).unwrap();
        let Command::Install(args) = cli.command else { panic!("not install") };
        assert_eq!(args.settings.executor, Some(true));
        let cli = Cli::try_parse_from(["kubectl-causely", "upgrade", "--executor=false"]).unwrap();
        let Command::Upgrade(args) = cli.command else { panic!("not upgrade") };
        assert_eq!(args.settings.executor, Some(false));
    }

    #[test]
    fn top_takes_the_namespace_and_a_mediator_url() {
        let cli =
            Cli::try_parse_from(["kubectl-causely", "top", "-n", "obs", "--mediator-url", "http://m:8080"]).unwrap();
        let Command::Top(args) = cli.command else { panic!("not top") };
        assert_eq!(args.namespace.namespace, "obs");
        assert_eq!(args.mediator.mediator_url.as_deref(), Some("http://m:8080"));
    }

    #[test]
    fn egress_verify_takes_a_window_and_either_a_mediator_url_or_a_state_directory() {
        let cli = Cli::try_parse_from(["kubectl-causely", "egress", "verify", "--since", "1h", "-o", "json"]).unwrap();
        let Command::Egress(EgressArgs { command: EgressCommand::Verify(args) }) = cli.command else {
            panic!("not egress verify")
        };
        assert_eq!(args.since, Some(Duration::from_secs(3_600)));
        assert_eq!(args.output, OutputFormat::Json);
        let both = ["kubectl-causely", "egress", "verify", "--mediator-url", "http://m:8080", "--state-dir", "/x"];
        assert!(Cli::try_parse_from(both).is_err());
        assert!(Cli::try_parse_from(["kubectl-causely", "egress", "verify", "--since", "soon"]).is_err());
    }

    #[test]
    fn version_flags_parse() {
        let cli = Cli::try_parse_from(["kubectl-causely", "version", "--client", "-o", "json"]).unwrap();
        let Command::Version(args) = cli.command else { panic!("not version") };
        assert!(args.client);
        assert_eq!(args.output, OutputFormat::Json);
    }
}
