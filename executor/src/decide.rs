//! The decision on one pulled action, before anything touches the cluster: run it (dry run
//! first), refuse it with a reason, or send again a result the mediator has not acknowledged.

use causely_model::{Action, ActionOutcome, ActionResult, UnixMillis};

use crate::policy::Policy;
use crate::runs::RunState;

/// What to do with one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it: a server-side dry run, then, unless `dry_run_only`, for real.
    Run { dry_run_only: bool },
    /// Refuse it without touching the target.
    Reject { reason: String },
    /// The executor started it earlier and stopped before it finished: whether it took effect is
    /// unknown, and it is not tried again (at most once).
    Interrupted,
    /// Finished earlier, result not acknowledged: send that result again, run nothing.
    Resend(ActionResult),
}

/// Decides on `action` given what this executor already did with its id, the policy, the time
/// and whether the executor only ever dry-runs.
pub fn decide(
    action: &Action,
    previous: Option<&RunState>,
    policy: &Policy,
    now: UnixMillis,
    dry_run_only: bool,
) -> Decision {
    match previous {
        Some(RunState::Started) => return Decision::Interrupted,
        Some(RunState::Finished(result)) => return Decision::Resend(result.clone()),
        Some(RunState::Reported(result)) => {
            return Decision::Reject {
                reason: format!(
                    "action id {} was already run ({}); an id runs at most once",
                    action.id,
                    outcome_word(&result.outcome)
                ),
            };
        }
        None => {}
    }
    if let Err(err) = action.validate() {
        return Decision::Reject { reason: err.to_string() };
    }
    if action.is_expired(now) {
        return Decision::Reject {
            reason: format!(
                "action {} expired {} s before the executor took it",
                action.id,
                now.saturating_since(action.expires) / 1000
            ),
        };
    }
    if let Err(reason) = policy.check(action) {
        return Decision::Reject { reason };
    }
    Decision::Run { dry_run_only: dry_run_only || action.dry_run }
}

/// "applied", "rejected" or "failed".
pub fn outcome_word(outcome: &ActionOutcome) -> &'static str {
    match outcome {
        ActionOutcome::Applied {} => "applied",
        ActionOutcome::Rejected { .. } => "rejected",
        ActionOutcome::Failed { .. } => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causely_model::{ActionId, ActionKind};

    fn action(kind: ActionKind, target: &str, expires: u64) -> Action {
        Action {
            id: ActionId("a-1".into()),
            kind,
            target: target.parse().unwrap(),
            reason: "crash loop".into(),
            requester: "cli:alice".into(),
            expires: UnixMillis(expires),
            dry_run: false,
        }
    }

    fn restart() -> Action {
        action(ActionKind::Restart {}, "workload/deployment/shop/web", 10_000)
    }

    #[test]
    fn an_allowed_unexpired_new_action_runs() {
        let d = decide(&restart(), None, &Policy::default(), UnixMillis(5_000), false);
        assert_eq!(d, Decision::Run { dry_run_only: false });
    }

    #[test]
    fn dry_run_only_mode_or_a_dry_run_action_never_runs_for_real() {
        let d = decide(&restart(), None, &Policy::default(), UnixMillis(5_000), true);
        assert_eq!(d, Decision::Run { dry_run_only: true });
        let mut dry = restart();
        dry.dry_run = true;
        assert_eq!(
            decide(&dry, None, &Policy::default(), UnixMillis(5_000), false),
            Decision::Run { dry_run_only: true }
        );
    }

    #[test]
    fn an_expired_action_is_refused_with_how_long_ago_it_expired() {
        let d = decide(&restart(), None, &Policy::default(), UnixMillis(13_000), false);
        assert_eq!(d, Decision::Reject { reason: "action a-1 expired 3 s before the executor took it".into() });
        // The deadline itself is already too late.
        let d = decide(&restart(), None, &Policy::default(), UnixMillis(10_000), false);
        assert!(matches!(d, Decision::Reject { .. }));
    }

    #[test]
    fn policy_refusals_carry_the_policys_reason() {
        let a = action(ActionKind::Scale { replicas: 50 }, "workload/deployment/shop/web", 10_000);
        let d = decide(&a, None, &Policy::default(), UnixMillis(1), false);
        assert_eq!(
            d,
            Decision::Reject { reason: "scale to 50 replicas is outside the policy's bounds (1 to 10)".into() }
        );
    }

    #[test]
    fn a_malformed_action_is_refused_before_the_policy_is_asked() {
        let a = action(ActionKind::Cordon {}, "pod/kube-system/x", 10_000);
        let d = decide(&a, None, &Policy::default(), UnixMillis(1), false);
        assert_eq!(d, Decision::Reject { reason: "action cordon cannot target pod/kube-system/x".into() });
    }

    #[test]
    fn an_id_already_run_and_reported_is_refused_as_a_repeat_even_if_now_expired() {
        let done = ActionResult {
            id: ActionId("a-1".into()),
            outcome: ActionOutcome::Applied {},
            dry_run: false,
            finished: UnixMillis(2),
        };
        let d = decide(&restart(), Some(&RunState::Reported(done)), &Policy::default(), UnixMillis(99_999), false);
        assert_eq!(
            d,
            Decision::Reject { reason: "action id a-1 was already run (applied); an id runs at most once".into() }
        );
    }

    #[test]
    fn an_unacknowledged_result_is_sent_again_and_nothing_runs() {
        let done = ActionResult {
            id: ActionId("a-1".into()),
            outcome: ActionOutcome::Failed { reason: "forbidden".into() },
            dry_run: false,
            finished: UnixMillis(2),
        };
        let d = decide(&restart(), Some(&RunState::Finished(done.clone())), &Policy::default(), UnixMillis(1), false);
        assert_eq!(d, Decision::Resend(done));
    }

    #[test]
    fn an_action_interrupted_by_a_restart_is_not_run_again() {
        let d = decide(&restart(), Some(&RunState::Started), &Policy::default(), UnixMillis(1), false);
        assert_eq!(d, Decision::Interrupted);
    }
}
