//! The mediator's command line (every flag also settable by environment) and the validated
//! configuration it turns into.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Causely mediator: watches the cluster, joins the agents' observations into a service topology,
/// detects cluster symptoms, and sends only topology and symptoms upstream, through a fail-closed
/// guard and a tamper-evident ledger.
#[derive(Debug, Clone, Parser)]
#[command(name = "causely-mediator", version, about, long_about = None)]
pub struct Cli {
    /// Address for agent intake, the read API, /metrics and /healthz.
    #[arg(long, env = "CAUSELY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Where batches go: an https:// URL (http:// only to a loopback address), or `none` to keep
    /// everything in the cluster (batches are still guarded and ledgered).
    #[arg(long, env = "CAUSELY_UPSTREAM_URL", default_value = "none")]
    pub upstream_url: String,
    /// PEM bundle of extra CAs trusted for the upstream, added to the system roots.
    #[arg(long, env = "CAUSELY_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,
    /// File holding the bearer token sent upstream; re-read on every attempt so it can rotate.
    #[arg(long, env = "CAUSELY_UPSTREAM_TOKEN_FILE")]
    pub upstream_token_file: Option<PathBuf>,
    /// Directory of the ledger, the kept payloads and the delivery queue.
    #[arg(long, env = "CAUSELY_STATE_DIR", default_value = "/var/lib/causely")]
    pub state_dir: PathBuf,
    /// Kubeconfig to use; in-cluster configuration when absent.
    #[arg(long, env = "CAUSELY_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Name of this cluster in every batch sent upstream.
    #[arg(long, env = "CAUSELY_CLUSTER_ID", default_value = "default")]
    pub cluster_id: String,
    /// The ServiceAccount (`NAMESPACE/NAME`) whose tokens agents present; the namespace defaults
    /// to the mediator's own (`POD_NAMESPACE`).
    #[arg(long, env = "CAUSELY_AGENT_SERVICE_ACCOUNT", default_value = "causely-agent")]
    pub agent_service_account: String,
    /// The ServiceAccount (`NAMESPACE/NAME`) whose tokens the executor presents to pull actions
    /// and report results; the namespace defaults to the mediator's own.
    #[arg(long, env = "CAUSELY_EXECUTOR_SERVICE_ACCOUNT", default_value = "causely-executor")]
    pub executor_service_account: String,
    /// The audience agents' and the executor's projected tokens must be issued for.
    #[arg(long, env = "CAUSELY_TOKEN_AUDIENCE", default_value = "causely-mediator")]
    pub token_audience: String,
    /// Namespace of the mediator itself (set from the downward API in the cluster).
    #[arg(long, env = "POD_NAMESPACE", default_value = "causely")]
    pub namespace: String,
    /// How often topology changes and symptom changes are gathered into one batch.
    #[arg(long, env = "CAUSELY_BATCH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub batch_interval: Duration,
    /// Bound on batches accepted but not yet acknowledged upstream; at the bound the oldest are
    /// dropped (counted and ledgered) and the next batch is a full snapshot.
    #[arg(long, env = "CAUSELY_MAX_PENDING_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_pending_bytes: u64,
    /// How long the exact bytes of delivered batches are kept for re-checking.
    #[arg(long, env = "CAUSELY_PAYLOAD_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub payload_retention: Duration,
    /// Largest agent report accepted, in bytes.
    #[arg(long, env = "CAUSELY_MAX_REPORT_BYTES", default_value_t = 1024 * 1024)]
    pub max_report_bytes: usize,
    /// How long an observed call stays in the topology after it was last seen.
    #[arg(long, env = "CAUSELY_CALL_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub call_ttl: Duration,
    /// Timeout of one delivery attempt upstream.
    #[arg(long, env = "CAUSELY_UPSTREAM_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,
    /// Cluster symptom rules (JSON; unknown keys rejected); the built-in defaults when absent.
    #[arg(long, env = "CAUSELY_RULES")]
    pub rules: Option<PathBuf>,
    /// Name of the Lease replicas compete for; only its holder sends upstream.
    #[arg(long, env = "CAUSELY_LEASE_NAME", default_value = "causely-mediator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (the pod name in the cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

/// The ServiceAccount agents authenticate as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccountRef {
    /// `NAME` or `NAMESPACE/NAME`.
    pub fn parse(text: &str, default_namespace: &str) -> Result<Self, String> {
        Self::parse_flag("--agent-service-account", text, default_namespace)
    }

    /// `NAME` or `NAMESPACE/NAME`, naming `flag` in the error.
    pub fn parse_flag(flag: &str, text: &str, default_namespace: &str) -> Result<Self, String> {
        let (namespace, name) = match text.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (default_namespace, text),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        if !valid(namespace) || !valid(name) {
            return Err(format!("{flag} {text:?} is not NAMESPACE/NAME"));
        }
        Ok(ServiceAccountRef { namespace: namespace.into(), name: name.into() })
    }

    /// The `sub` claim of this account's tokens.
    pub fn subject(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// The `--upstream-url` that keeps everything in the cluster.
pub const NO_UPSTREAM: &str = "none";

/// Where batches go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// Keep everything in the cluster.
    None,
    Url(reqwest::Url),
}

impl UpstreamTarget {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == NO_UPSTREAM {
            return Ok(UpstreamTarget::None);
        }
        let url = reqwest::Url::parse(text).map_err(|e| format!("--upstream-url {text:?}: {e}"))?;
        crate::egress::deliver::check_url(&url).map_err(|e| format!("--upstream-url {text:?}: {e}"))?;
        Ok(UpstreamTarget::Url(url))
    }
}

/// Cluster ids appear in every batch, so they follow the same rules as Kubernetes names.
pub fn validate_cluster_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if ok { Ok(()) } else { Err(format!("--cluster-id {id:?} must be a DNS label (a-z, 0-9, '-', at most 63)")) }
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
    fn a_bare_service_account_name_takes_the_mediators_namespace() {
        let sa = ServiceAccountRef::parse("causely-agent", "obs").unwrap();
        assert_eq!(sa.subject(), "system:serviceaccount:obs:causely-agent");
        let sa = ServiceAccountRef::parse("other/agent", "obs").unwrap();
        assert_eq!(sa.subject(), "system:serviceaccount:other:agent");
        assert!(ServiceAccountRef::parse("a/b/c", "obs").is_err());
        assert!(ServiceAccountRef::parse("/x", "obs").is_err());
    }

    #[test]
    fn upstreams_must_be_https_unless_on_loopback() {
        assert_eq!(UpstreamTarget::parse("none").unwrap(), UpstreamTarget::None);
        assert!(matches!(UpstreamTarget::parse("https://ingest.example.com/v1").unwrap(), UpstreamTarget::Url(_)));
        assert!(matches!(UpstreamTarget::parse("http://127.0.0.1:9000/").unwrap(), UpstreamTarget::Url(_)));
        assert!(UpstreamTarget::parse("http://ingest.example.com/").unwrap_err().contains("https"));
        assert!(UpstreamTarget::parse("ftp://x/").is_err());
        assert!(UpstreamTarget::parse("not a url").is_err());
    }

    #[test]
    fn cluster_ids_are_dns_labels() {
        assert!(validate_cluster_id("prod-eu-1").is_ok());
        assert!(validate_cluster_id("Prod").is_err());
        assert!(validate_cluster_id("").is_err());
        assert!(validate_cluster_id("-x").is_err());
        assert!(validate_cluster_id(&"a".repeat(64)).is_err());
    }
}
