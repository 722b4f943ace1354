//! Leader election over a coordination.k8s.io Lease, and the cluster-wide egress sequence.
//!
//! Only the Lease holder builds and accepts batches, so two replicas never send different batches
//! under one seq. Each replica keeps its own ledger and queue; the Lease carries the next seq of
//! the cluster's stream (annotation `egress.causely.io/next-seq`), and a replica reserves a seq in
//! the Lease (a compare-and-swap on its resourceVersion) before it accepts a batch under it. A
//! deposed leader's reservation fails on the conflict, so it cannot accept; a new leader resumes at
//! the reserved seq + 1. A seq reserved by a replica that died in the milliseconds between the
//! reservation and accepting the batch is never used by another replica: the receiver sees a gap,
//! never a duplicate, and the new leader's first batch is a full snapshot, so no state is lost. The
//! same replica coming back while the Lease is still its own resumes from its own store, so a
//! restart leaves no gap.
//! Batches a replica accepted stay in its queue and are delivered when it runs again (the Pod
//! keeps its volume), whoever leads.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// The annotation holding the next seq of the cluster's egress stream.
pub const NEXT_SEQ_ANNOTATION: &str = "egress.causely.io/next-seq";

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease {0}: {1}")]
    Api(String, kube::Error),
    #[error("lost the lease {0} to {1}")]
    Lost(String, String),
}

/// What the holder decided after looking at the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `continued` is true when the Lease was already ours: every seq reserved since was
    /// reserved by this replica, so it resumes from its own store rather than the Lease.
    /// `previous` is the identity that held it before, if any.
    Leader {
        next_seq: u64,
        continued: bool,
        previous: Option<String>,
    },
    Follower {
        holder: String,
    },
}

/// Timing of the election.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    pub duration: Duration,
    pub renew_every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming { duration: Duration::from_secs(15), renew_every: Duration::from_secs(5) }
    }
}

/// One replica's view of the Lease; every write is a compare-and-swap on the last version read.
#[derive(Debug)]
pub struct LeaseKeeper {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    last: Option<Lease>,
}

fn now_micro() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Whether the Lease is held by someone whose renewal is still within its duration.
pub fn held_by_other(spec: &LeaseSpec, identity: &str, now: Timestamp) -> Option<String> {
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty() && *h != identity)?;
    let renewed = spec.renew_time.as_ref().map(|t| t.0)?;
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let expires = renewed.as_second().saturating_add(duration);
    (now.as_second() < expires).then(|| holder.to_owned())
}

/// The next seq recorded in a Lease (1 when none was ever reserved).
pub fn next_seq_of(lease: &Lease) -> u64 {
    lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NEXT_SEQ_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Where a replica that just became leader continues the cluster's sequence, from the Lease's next
/// seq and its own store's. A replica that already held the Lease and has a ledger reuses a seq it
/// reserved but never accepted (no gap); anything else continues at the later of the two, so a
/// replica whose state directory was lost never reuses a seq the cluster already sent.
pub fn resume_seq(lease_next: u64, store_next: u64, continued: bool, store_has_history: bool) -> u64 {
    if continued && store_has_history && lease_next <= store_next.saturating_add(1) {
        store_next
    } else {
        lease_next.max(store_next)
    }
}

impl LeaseKeeper {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: LeaseTiming) -> Self {
        LeaseKeeper { api, name: name.into(), identity: identity.into(), timing, last: None }
    }

    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    /// Acquires or renews the Lease if it is free, expired or ours; otherwise reports the holder.
    pub async fn campaign(&mut self) -> Result<Role, LeaseError> {
        let err = |e| LeaseError::Api(self.name.clone(), e);
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(err)? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(self.spec_for_us(None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.last = Some(created);
                    Ok(Role::Leader { next_seq: 1, continued: false, previous: None })
                }
                Err(kube::Error::Api(status)) if status.is_already_exists() => {
                    Ok(Role::Follower { holder: "(just created by another replica)".into() })
                }
                Err(e) => Err(LeaseError::Api(self.name.clone(), e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if let Some(holder) = held_by_other(&spec, &self.identity, Timestamp::now()) {
            self.last = None;
            return Ok(Role::Follower { holder });
        }
        let continued = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        lease.spec = Some(self.spec_for_us(Some(&spec)));
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(updated) => {
                let next_seq = next_seq_of(&updated);
                self.last = Some(updated);
                Ok(Role::Leader { next_seq, continued, previous: spec.holder_identity.clone() })
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                self.last = None;
                Ok(Role::Follower { holder: "(changed while renewing)".into() })
            }
            Err(e) => Err(LeaseError::Api(self.name.clone(), e)),
        }
    }

    fn spec_for_us(&self, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let ours = previous.and_then(|p| p.holder_identity.as_deref()) == Some(self.identity.as_str());
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.timing.duration.as_secs()).unwrap_or(15)),
            acquire_time: if ours { previous.and_then(|p| p.acquire_time.clone()) } else { Some(now_micro()) },
            renew_time: Some(now_micro()),
            lease_transitions: Some(if ours || previous.is_none() { transitions } else { transitions + 1 }),
            ..LeaseSpec::default()
        }
    }

    /// Gives the Lease up (on a clean shutdown), so a standby takes over at once instead of
    /// waiting for it to expire. The reserved seq stays in the annotation.
    pub async fn release(&mut self) -> Result<(), LeaseError> {
        let Some(mut lease) = self.last.take() else { return Ok(()) };
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = None;
            spec.acquire_time = None;
        }
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(()),
            Err(e) => Err(LeaseError::Api(self.name.clone(), e)),
        }
    }

    /// Reserves `seq` for a batch this replica is about to accept: records `seq + 1` as the
    /// stream's next seq, renewing the Lease in the same write. Fails if the Lease changed hands.
    pub async fn reserve(&mut self, seq: u64) -> Result<(), LeaseError> {
        let Some(mut lease) = self.last.clone() else {
            return Err(LeaseError::Lost(self.name.clone(), "(not held)".into()));
        };
        lease.metadata.annotations.get_or_insert_default().insert(NEXT_SEQ_ANNOTATION.into(), (seq + 1).to_string());
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(now_micro());
        }
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(updated) => {
                self.last = Some(updated);
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                self.last = None;
                Err(LeaseError::Lost(self.name.clone(), "another replica".into()))
            }
            Err(e) => Err(LeaseError::Api(self.name.clone(), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64) -> LeaseSpec {
        let renewed = Timestamp::now().as_second() - renewed_secs_ago;
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Timestamp::from_second(renewed).ok().map(MicroTime),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_renewed_recently_by_another_replica_is_held() {
        assert_eq!(held_by_other(&spec("b", 3), "a", Timestamp::now()), Some("b".into()));
    }

    #[test]
    fn an_expired_lease_or_our_own_is_free_to_take() {
        assert_eq!(held_by_other(&spec("b", 60), "a", Timestamp::now()), None);
        assert_eq!(held_by_other(&spec("a", 1), "a", Timestamp::now()), None);
        assert_eq!(held_by_other(&LeaseSpec::default(), "a", Timestamp::now()), None);
    }

    #[test]
    fn a_restarted_holder_reuses_the_seq_it_reserved_but_never_accepted() {
        assert_eq!(resume_seq(8, 7, true, true), 7);
        assert_eq!(resume_seq(7, 7, true, true), 7);
    }

    #[test]
    fn a_takeover_or_a_lost_state_directory_continues_after_the_lease() {
        assert_eq!(resume_seq(8, 3, false, true), 8, "another replica sent up to 7");
        assert_eq!(resume_seq(42, 1, true, false), 42, "our state directory is new; the cluster sent 41");
        assert_eq!(resume_seq(1, 5, false, true), 5, "a recreated Lease never moves us backwards");
    }

    #[test]
    fn the_next_seq_defaults_to_one_and_reads_the_annotation() {
        let mut lease = Lease::default();
        assert_eq!(next_seq_of(&lease), 1);
        lease.metadata.annotations = Some([(NEXT_SEQ_ANNOTATION.to_owned(), "42".to_owned())].into());
        assert_eq!(next_seq_of(&lease), 42);
    }
}
