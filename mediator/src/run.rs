//! Wires the mediator together: configuration, the kube client, the egress store, the HTTP server,
//! the watches, leader election, batching and delivery.

use causely_model::UnixMillis;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Mutex, Notify};

use crate::actions::ActionStore;
use crate::config::{Cli, ServiceAccountRef, UpstreamTarget, validate_cluster_id};
use crate::core::Core;
use crate::egress::deliver::{self, Backoff, DeliveryStatus, Upstream};
use crate::egress::store::{EgressStore, StoreLimits};
use crate::intake::auth::{IssuerSource, TokenVerifier};
use crate::leader::{LeaseKeeper, LeaseTiming};
use crate::state::{Limits, Shared};
use crate::symptoms::ClusterRules;
use crate::{batcher, server, watch};

/// How often symptoms are re-evaluated and the topology rebuilt for the change stream.
const TICK: Duration = Duration::from_secs(1);

/// Validates the configuration, then runs until SIGTERM or Ctrl-C.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    validate_cluster_id(&cli.cluster_id).map_err(anyhow::Error::msg)?;
    let account = ServiceAccountRef::parse(&cli.agent_service_account, &cli.namespace).map_err(anyhow::Error::msg)?;
    let executor =
        ServiceAccountRef::parse_flag("--executor-service-account", &cli.executor_service_account, &cli.namespace)
            .map_err(anyhow::Error::msg)?;
    let upstream = UpstreamTarget::parse(&cli.upstream_url).map_err(anyhow::Error::msg)?;
    let rules = load_rules(cli.rules.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(serve(cli, [account, executor], upstream, rules))
}

/// The cluster symptom rules: the defaults, with what the file (JSON) changes.
fn load_rules(path: Option<&std::path::Path>) -> anyhow::Result<ClusterRules> {
    let Some(path) = path else { return Ok(ClusterRules::default()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading rules {}", path.display()))?;
    let rules: ClusterRules = serde_json::from_str(&text).with_context(|| format!("rules {}", path.display()))?;
    rules.validate().with_context(|| format!("rules {}", path.display()))?;
    Ok(rules)
}

async fn serve(
    cli: Cli,
    [account, executor]: [ServiceAccountRef; 2],
    upstream: UpstreamTarget,
    rules: ClusterRules,
) -> anyhow::Result<()> {
    causely_runtime::init_logs();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let client = causely_runtime::kube_client(cli.kubeconfig.as_deref()).await?;
    let limits = StoreLimits { max_pending_bytes: cli.max_pending_bytes, retention: cli.payload_retention };
    let guard = causely_model::guard::EgressGuard::new();
    let store = EgressStore::open(&cli.state_dir, limits, &guard)
        .with_context(|| format!("opening the egress state in {}", cli.state_dir.display()))?;
    let verifier = TokenVerifier::new(IssuerSource::new(client.clone()), &cli.token_audience, account);
    let executor_verifier = TokenVerifier::new(IssuerSource::new(client.clone()), &cli.token_audience, executor);
    let actions = ActionStore::open(&cli.state_dir, UnixMillis::now())
        .with_context(|| format!("opening the action queue in {}", cli.state_dir.display()))?;
    let upstream_name = match &upstream {
        UpstreamTarget::None => crate::config::NO_UPSTREAM.to_owned(),
        UpstreamTarget::Url(url) => url.to_string(),
    };
    let shared = Shared::new(
        Core::new(rules, cli.call_ttl),
        store,
        guard,
        verifier,
        executor_verifier,
        actions,
        Limits { max_report_bytes: cli.max_report_bytes },
        cli.cluster_id.clone(),
        upstream_name,
    );
    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("listening on {}", cli.listen))?;

    watch::spawn_all(&client, &shared);
    let leases = kube::Api::namespaced(client.clone(), &cli.namespace);
    let keeper = Arc::new(Mutex::new(LeaseKeeper::new(
        leases,
        &cli.lease_name,
        &causely_runtime::identity(cli.identity.as_deref(), "causely-mediator"),
        LeaseTiming::default(),
    )));
    let wake = Arc::new(Notify::new());
    tokio::spawn(batcher::campaign(shared.clone(), keeper.clone()));
    tokio::spawn(batcher::tick(shared.clone(), TICK));
    tokio::spawn(batcher::run(shared.clone(), keeper.clone(), wake.clone(), cli.batch_interval));
    if let UpstreamTarget::Url(url) = upstream {
        let target = Upstream {
            url,
            cluster_id: cli.cluster_id.clone(),
            ca_file: cli.upstream_ca.clone(),
            token_file: cli.upstream_token_file.clone(),
            timeout: cli.upstream_timeout,
            backoff: Backoff::default(),
        };
        // Fail at start, with one line, on an unreadable CA rather than retrying forever.
        deliver::client(&target).context("--upstream-ca")?;
        let (status, updates) = tokio::sync::watch::channel(DeliveryStatus::default());
        tokio::spawn(follow_delivery(shared.clone(), updates));
        let store = shared.store.clone();
        let (asked, replies) = tokio::sync::mpsc::channel(16);
        tokio::spawn(crate::server::actions::from_upstream(shared.clone(), replies));
        tokio::spawn(async move {
            if let Err(err) = deliver::run(store, target, wake, status, asked).await {
                tracing::error!(error = %err, "delivery stopped");
            }
        });
    }
    let served = tokio::select! {
        served = server::serve(listener, shared.clone()) => served.context("serving"),
        () = causely_runtime::shutdown() => Ok(()),
    };
    shared.leader.store(false, std::sync::atomic::Ordering::Relaxed);
    if let Err(err) = keeper.lock().await.release().await {
        tracing::warn!(error = %err, "could not release the lease; a standby takes over when it expires");
    }
    served
}

/// Mirrors delivery progress into the status the API serves and the metrics.
async fn follow_delivery(shared: Arc<Shared>, mut updates: tokio::sync::watch::Receiver<DeliveryStatus>) {
    let mut seen = DeliveryStatus::default();
    while updates.changed().await.is_ok() {
        let now = updates.borrow_and_update().clone();
        let attempts = &shared.metrics.upstream_attempts;
        let acked = now.delivered.saturating_sub(seen.delivered);
        let failed = now.failed_attempts.saturating_sub(seen.failed_attempts);
        attempts.get_or_create(&crate::metrics::ResultLabel { result: "acknowledged" }).inc_by(acked);
        attempts.get_or_create(&crate::metrics::ResultLabel { result: "failed" }).inc_by(failed);
        let unreadable = now.unreadable_replies.saturating_sub(seen.unreadable_replies);
        attempts.get_or_create(&crate::metrics::ResultLabel { result: "unreadable-reply" }).inc_by(unreadable);
        shared.set_delivery(|d| {
            d.last_error = now.last_error.clone();
            if acked > 0 {
                d.last_delivery = Some(UnixMillis::now());
                d.last_error = None;
            }
        });
        seen = now;
    }
}
