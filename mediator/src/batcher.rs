//! The leader's egress loop: every interval, gather topology and symptom changes into one batch,
//! reserve its seq in the Lease, and hand it to the store (which guards and ledgers it).

use causely_model::UnixMillis;
use std::sync::Arc;
use std::time::{Duration, Instant};

use causely_model::api::StreamEvent;
use tokio::sync::{Mutex, Notify};

use crate::egress::store::AcceptError;
use crate::leader::{LeaseKeeper, Role, resume_seq};
use crate::metrics::RuleLabel;
use crate::state::Shared;

/// Keeps this replica's leadership current; on becoming leader, resumes the cluster's sequence.
pub async fn campaign(shared: Arc<Shared>, keeper: Arc<Mutex<LeaseKeeper>>) {
    let every = keeper.lock().await.timing().renew_every;
    loop {
        let role = keeper.lock().await.campaign().await;
        match role {
            Ok(Role::Leader { next_seq, continued, previous }) => {
                if !shared.is_leader() {
                    let resumed = {
                        let mut store = shared.store();
                        let stats = store.stats();
                        let seq = resume_seq(next_seq, stats.next_seq, continued, stats.ledger_entries > 0);
                        store.resume_at(seq, previous.as_deref().unwrap_or("(unknown)"), UnixMillis::now())
                    };
                    match resumed {
                        Ok(seq) => tracing::info!(next_seq = seq, "leading: this replica sends"),
                        Err(err) => tracing::error!(error = %err, "cannot resume the sequence"),
                    }
                    // Whatever the receiver knows, it learns the full state first.
                    shared.core().batch_failed();
                }
                shared.leader.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Role::Follower { holder }) => {
                if shared.is_leader() {
                    tracing::warn!(holder, "lost the lease; standing by");
                }
                shared.leader.store(false, std::sync::atomic::Ordering::Relaxed);
            }
            Err(err) => {
                // Unable to renew: stop sending before the lease could expire under us.
                tracing::warn!(error = %err, "lease unavailable; standing by");
                shared.leader.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// One batch, if there is anything to send and this replica leads.
pub async fn batch_once(shared: &Shared, keeper: &Mutex<LeaseKeeper>, wake: &Notify) {
    if !shared.is_leader() {
        return;
    }
    let (seq, snapshot) = {
        let store = shared.store();
        (store.next_seq(), store.needs_snapshot())
    };
    let Some(prepared) = shared.core().prepare_batch(&shared.cluster_id, seq, UnixMillis::now(), snapshot) else {
        return;
    };
    if let Err(err) = keeper.lock().await.reserve(seq).await {
        tracing::warn!(seq, error = %err, "could not reserve the seq; not sending");
        shared.leader.store(false, std::sync::atomic::Ordering::Relaxed);
        shared.core().batch_failed();
        return;
    }
    let accepted = shared.store().accept(&prepared.batch, &shared.guard, UnixMillis::now());
    match accepted {
        Ok(accepted) => {
            if shared.upstream == crate::config::NO_UPSTREAM {
                // Nothing leaves: the batch is settled once it is ledgered and kept.
                if let Err(err) = shared.store().mark_delivered(accepted.seq) {
                    tracing::error!(seq, error = %err, "could not settle a local-only batch");
                }
            }
            shared.core().batch_accepted(prepared.topology);
            shared.metrics.egress_batches.inc();
            shared.metrics.egress_bytes.inc_by(accepted.bytes);
            wake.notify_one();
            shared.publish(vec![StreamEvent::Egress { status: shared.egress_status() }]);
        }
        Err(AcceptError::Rejected(rejection)) => {
            shared.core().batch_failed();
            shared.metrics.egress_rejected.get_or_create(&RuleLabel { rule: rejection.rule.to_string() }).inc();
            tracing::error!(seq, rejection = %rejection, "egress guard refused a batch; nothing was sent");
            shared.publish(vec![StreamEvent::Egress { status: shared.egress_status() }]);
        }
        Err(err) => {
            shared.core().batch_failed();
            tracing::error!(seq, error = %err, "could not store a batch; retrying with a snapshot");
        }
    }
}

/// How often delivered payloads past their retention are deleted.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);

/// Batches every `interval` until the process ends.
pub async fn run(shared: Arc<Shared>, keeper: Arc<Mutex<LeaseKeeper>>, wake: Arc<Notify>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut expired_at = Instant::now();
    loop {
        ticker.tick().await;
        batch_once(&shared, &keeper, &wake).await;
        if expired_at.elapsed() >= EXPIRE_EVERY {
            expired_at = Instant::now();
            if let Err(err) = shared.store().expire(UnixMillis::now()) {
                tracing::warn!(error = %err, "could not delete expired payloads");
            }
        }
    }
}

/// Re-evaluates symptoms and the topology every `interval`, publishing what changed. A pass
/// that takes long (a very large cluster) stretches the wait to four times its duration, so the
/// lock it holds never starves intake and the read API.
pub async fn tick(shared: Arc<Shared>, interval: Duration) {
    loop {
        let started = Instant::now();
        let listed = shared.synced();
        let events = shared.core().tick(UnixMillis::now(), listed);
        shared.publish(events);
        tokio::time::sleep(interval.max(started.elapsed() * 4)).await;
    }
}
