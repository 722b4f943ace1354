//! What the mediator's tasks share: the core behind one lock, the egress store, metrics, the
//! change stream, and the intake's token verifier.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use causely_model::UnixMillis;
use causely_model::api::{EgressStatus, StreamEvent};
use causely_model::guard::EgressGuard;
use prometheus_client::registry::Registry;
use tokio::sync::broadcast;

use crate::actions::ActionStore;
use crate::core::Core;
use crate::egress::store::EgressStore;
use crate::index::{ClusterObject, ObjectKind};
use crate::intake::auth::TokenVerifier;
use crate::metrics::{KindLabel, Metrics};

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_report_bytes: usize,
}

/// What delivery last reported.
#[derive(Debug, Clone, Default)]
pub struct DeliveryState {
    pub last_error: Option<String>,
    pub last_delivery: Option<UnixMillis>,
}

#[derive(Debug)]
pub struct Shared {
    core: Mutex<Core>,
    pub store: Arc<Mutex<EgressStore>>,
    pub guard: EgressGuard,
    pub metrics: Metrics,
    pub registry: Registry,
    pub stream: broadcast::Sender<StreamEvent>,
    pub verifier: TokenVerifier,
    /// Checks the executor's token on action pulls and results.
    pub executor_verifier: TokenVerifier,
    actions: Mutex<ActionStore>,
    pub limits: Limits,
    pub cluster_id: String,
    pub upstream: String,
    synced: Mutex<BTreeSet<ObjectKind>>,
    pub leader: std::sync::atomic::AtomicBool,
    pub delivery: Mutex<DeliveryState>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain values behind; carry on with them.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        core: Core,
        store: EgressStore,
        guard: EgressGuard,
        verifier: TokenVerifier,
        executor_verifier: TokenVerifier,
        actions: ActionStore,
        limits: Limits,
        cluster_id: String,
        upstream: String,
    ) -> Arc<Shared> {
        let metrics = Metrics::default();
        let registry = metrics.register();
        let (stream, _) = broadcast::channel(4096);
        Arc::new(Shared {
            core: Mutex::new(core),
            store: Arc::new(Mutex::new(store)),
            guard,
            metrics,
            registry,
            stream,
            verifier,
            executor_verifier,
            actions: Mutex::new(actions),
            limits,
            cluster_id,
            upstream,
            synced: Mutex::new(BTreeSet::new()),
            leader: std::sync::atomic::AtomicBool::new(false),
            delivery: Mutex::new(DeliveryState::default()),
        })
    }

    pub fn core(&self) -> MutexGuard<'_, Core> {
        lock(&self.core)
    }

    pub fn actions(&self) -> MutexGuard<'_, ActionStore> {
        lock(&self.actions)
    }

    pub fn store(&self) -> MutexGuard<'_, EgressStore> {
        lock(&self.store)
    }

    pub fn publish(&self, events: Vec<StreamEvent>) {
        for event in events {
            // No receiver is fine: nobody is watching.
            let _ = self.stream.send(event);
        }
    }

    pub fn apply_object(&self, object: &ClusterObject) {
        self.core().apply(object);
    }

    pub fn delete_object(&self, object: &ClusterObject) {
        self.core().delete(object);
    }

    pub fn replace_kind(&self, kind: ObjectKind, objects: Vec<ClusterObject>) {
        self.core().replace(kind, &objects);
        lock(&self.synced).insert(kind);
        tracing::info!(kind = ?kind, objects = objects.len(), "listed");
    }

    pub fn watch_error(&self, kind: ObjectKind, error: &str) {
        self.metrics.watch_errors.get_or_create(&KindLabel { kind: format!("{kind:?}") }).inc();
        tracing::warn!(kind = ?kind, error, "watch failed; retrying with backoff");
    }

    /// True once every kind has been listed at least once.
    pub fn synced(&self) -> bool {
        lock(&self.synced).len() == ObjectKind::ALL.len()
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn egress_status(&self) -> EgressStatus {
        let stats = self.store().stats();
        let delivery = lock(&self.delivery).clone();
        EgressStatus {
            cluster_id: self.cluster_id.clone(),
            upstream: self.upstream.clone(),
            leader: self.is_leader(),
            ledger_entries: stats.ledger_entries,
            batches_accepted: stats.accepted,
            bytes_accepted: stats.accepted_bytes,
            batches_rejected: stats.rejected,
            batches_dropped: stats.dropped,
            delivered_seq: stats.delivered_seq,
            next_seq: stats.next_seq,
            pending_batches: stats.pending_batches,
            pending_bytes: stats.pending_bytes,
            last_error: delivery.last_error,
            last_delivery: delivery.last_delivery,
        }
    }

    pub fn set_delivery(&self, update: impl FnOnce(&mut DeliveryState)) {
        update(&mut lock(&self.delivery));
    }
}
