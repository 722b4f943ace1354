//! The agent's command line: the run's flags (every one also settable by environment), and the
//! `check` subcommand, which needs none of them but where the host is mounted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Causely node agent: collects node and container metrics with eBPF and cgroups, keeps raw
/// samples in VictoriaMetrics, and reports only topology and symptoms to the mediator.
// The run's flags stay at the top level (the DaemonSet passes them by environment, scripts by
// flag); a subcommand excludes them, and their environment variables are then ignored, so a check
// pod may carry the DaemonSet's whole environment.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "causely-agent",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: Option<RunArgs>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Check what this node gives the agent, in the posture it runs with (kernel BTF, each eBPF
    /// program, the cgroup layout, the host's /proc), print one JSON report, and exit: 0 when
    /// everything the agent needs passed, 1 when something failed.
    Check(CheckArgs),
}

/// What to do, from a parsed command line.
#[derive(Debug, Clone)]
pub enum Action {
    Run(Box<RunArgs>),
    Check(CheckArgs),
}

impl Cli {
    /// The action the command line asks for.
    pub fn action(self) -> Action {
        match (self.command, self.run) {
            (Some(Command::Check(args)), _) => Action::Check(args),
            (None, Some(run)) => Action::Run(Box::new(run)),
            // clap fills `run` whenever no subcommand is given, or refuses the command line.
            (None, None) => {
                let message =
                    "give the run's flags (--node-name, --mediator-url, --victoria-metrics-url) or a subcommand";
                <Cli as clap::CommandFactory>::command()
                    .error(clap::error::ErrorKind::MissingRequiredArgument, message)
                    .exit()
            }
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Where the host's /proc and /sys/fs/cgroup are mounted (`/` when run on the host).
    #[arg(long, env = "CAUSELY_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,
    /// The report is also written here when the file exists: the kubelet creates it in a pod and
    /// copies it into the pod's status.
    #[arg(long, value_name = "PATH", default_value = "/dev/termination-log")]
    pub termination_log: PathBuf,
}

/// The flags of the agent's normal run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The node this agent runs on (the downward API's spec.nodeName in the cluster).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// The mediator's base URL; reports go to `<url>/v1/reports`.
    #[arg(long, env = "CAUSELY_MEDIATOR_URL")]
    pub mediator_url: String,
    /// VictoriaMetrics' base URL: the only place raw samples go.
    #[arg(long, env = "CAUSELY_VICTORIA_METRICS_URL")]
    pub victoria_metrics_url: String,
    /// Directory of the on-disk spool of samples VictoriaMetrics has not taken yet.
    #[arg(long, env = "CAUSELY_STATE_DIR", default_value = "/var/lib/causely-agent")]
    pub state_dir: PathBuf,
    /// The projected ServiceAccount token presented to the mediator; re-read on every attempt.
    #[arg(long, env = "CAUSELY_TOKEN_FILE", default_value = "/var/run/secrets/causely/token")]
    pub token_file: PathBuf,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "CAUSELY_LISTEN", default_value = "0.0.0.0:9090")]
    pub listen: SocketAddr,
    /// Where the host's /proc and /sys/fs/cgroup are mounted (`/` when run on the host).
    #[arg(long, env = "CAUSELY_HOST_ROOT", default_value = "/")]
    pub host_root: PathBuf,
    /// How often cgroups, /proc and the eBPF maps are read.
    #[arg(long, env = "CAUSELY_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Symptom rules (JSON, unknown keys rejected); the built-in defaults when absent.
    #[arg(long, env = "CAUSELY_RULES")]
    pub rules: Option<PathBuf>,
    /// This node's kubelet, e.g. `https://10.0.0.7:10250`: its `/metrics` and `/metrics/cadvisor`
    /// are read into VictoriaMetrics, and cAdvisor's labels help name containers. Off when absent.
    #[arg(long, env = "CAUSELY_KUBELET_URL")]
    pub kubelet_url: Option<String>,
    /// The token the kubelet authorizes (`nodes/metrics`); re-read on every scrape.
    #[arg(
        long,
        env = "CAUSELY_KUBELET_TOKEN_FILE",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )]
    pub kubelet_token_file: PathBuf,
    /// CA bundle that signed the kubelet's serving certificate (else the system roots).
    #[arg(long, env = "CAUSELY_KUBELET_CA_FILE")]
    pub kubelet_ca_file: Option<PathBuf>,
    /// Accept any kubelet serving certificate (self-signed ones, as metrics-server's --kubelet-insecure-tls).
    #[arg(long, env = "CAUSELY_KUBELET_INSECURE_SKIP_TLS_VERIFY")]
    pub kubelet_insecure_skip_tls_verify: bool,
    /// How often the kubelet is read.
    #[arg(long, env = "CAUSELY_KUBELET_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub kubelet_interval: Duration,
    /// Bound of the on-disk sample spool, in bytes; beyond it the oldest samples are dropped.
    #[arg(long, env = "CAUSELY_SPOOL_BYTES", default_value_t = 200 * 1024 * 1024)]
    pub spool_bytes: u64,
}
