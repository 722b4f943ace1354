//! `kubectl causely remediate ACTION TARGET`: submits a remediation action to the mediator's queue
//! and, with `--wait`, waits for the executor's result. Exit 1 when the executor rejected the
//! action or it failed; 2 for bad input or an unreachable mediator.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use causely_model::api::{ActionState, ActionView};
use causely_model::{Action, ActionId, ActionKind, ActionOutcome, EntityId, UnixMillis};

use crate::cli::{OutputFormat, RemediateAction, RemediateArgs};
use crate::exit::{Failure, Outcome};
use crate::mediator_api::{ApiError, MediatorApi};
use crate::outln;

/// How often `--wait` asks for the result.
const WAIT_POLL: Duration = Duration::from_millis(500);
/// How long `--wait` waits past the action's expiry: the executor refuses an expired action on
/// its next poll, so a result normally arrives within this.
const WAIT_GRACE: Duration = Duration::from_secs(30);

/// A fresh id: the time and a random part, so two submissions never share one.
fn fresh_id(now: UnixMillis) -> ActionId {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now.0);
    hasher.write_u32(std::process::id());
    ActionId(format!("cli-{}-{:08x}", now.0, hasher.finish() as u32))
}

/// Who asked, as far as the plugin can tell: the local user. The mediator cannot verify it (the
/// API server's proxy does not pass the caller's identity on), so it is a statement, not proof.
fn requester() -> String {
    let user = std::env::var("USER").ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| "unknown".to_owned());
    format!("kubectl-causely:{user}")
}

/// Turns the command line into a well-formed action (pure apart from the values passed in).
pub fn build_action(args: &RemediateArgs, id: ActionId, requester: String, now: UnixMillis) -> Result<Action, Failure> {
    let kind = match (args.action, args.replicas) {
        (RemediateAction::Scale, Some(replicas)) => ActionKind::Scale { replicas },
        (RemediateAction::Scale, None) => return Err(Failure::Usage("scale needs --replicas N".to_owned())),
        (_, Some(_)) => return Err(Failure::Usage("--replicas is only for scale".to_owned())),
        (RemediateAction::Restart, None) => ActionKind::Restart {},
        (RemediateAction::DeletePod, None) => ActionKind::DeletePod {},
        (RemediateAction::Cordon, None) => ActionKind::Cordon {},
        (RemediateAction::Uncordon, None) => ActionKind::Uncordon {},
        (RemediateAction::Rollback, None) => ActionKind::Rollback {},
    };
    let target: EntityId = args.target.parse().map_err(|e| Failure::Usage(format!("TARGET: {e}")))?;
    if args.expires_in.is_zero() {
        return Err(Failure::Usage("--expires-in must be longer than 0".to_owned()));
    }
    let expires_in = u64::try_from(args.expires_in.as_millis()).unwrap_or(u64::MAX);
    let reason = args.reason.clone().unwrap_or_else(|| "requested with kubectl causely remediate".to_owned());
    let action = Action {
        id,
        kind,
        target,
        reason,
        requester,
        expires: UnixMillis(now.0.saturating_add(expires_in)),
        dry_run: args.dry_run,
    };
    action.validate().map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(action)
}

/// One line about where the action stands.
pub fn describe(view: &ActionView) -> String {
    let a = &view.action;
    let dry = if a.dry_run || view.result.as_ref().is_some_and(|r| r.dry_run) { " (dry run)" } else { "" };
    let head = format!("action {}: {} {}{dry}", a.id, a.kind.name(), a.target);
    match &view.result {
        None => format!("{head}: pending"),
        Some(result) => match &result.outcome {
            ActionOutcome::Applied {} => format!("{head}: applied"),
            ActionOutcome::Rejected { reason } => format!("{head}: rejected: {reason}"),
            ActionOutcome::Failed { reason } => format!("{head}: failed: {reason}"),
        },
    }
}

/// Exit 1 for a refusal or a failure (or no result in time, with `--wait`).
pub fn outcome(view: &ActionView, waited: bool) -> Outcome {
    match view.result.as_ref().map(|r| &r.outcome) {
        Some(ActionOutcome::Applied {}) => Outcome::Clean,
        Some(_) => Outcome::Problem,
        None if waited => Outcome::Problem,
        None => Outcome::Clean,
    }
}

fn submit_failure(err: ApiError) -> Failure {
    match err.status() {
        Some(409 | 422 | 400) => Failure::Usage(err.to_string()),
        _ => err.into(),
    }
}

pub async fn run(args: RemediateArgs) -> Result<Outcome, Failure> {
    let at = UnixMillis::now();
    let id = match &args.id {
        Some(id) => ActionId(id.clone()),
        None => fresh_id(at),
    };
    let action = build_action(&args, id, requester(), at)?;
    let api = MediatorApi::from_flags(&args.mediator, &args.namespace.namespace, &args.cluster).await?;
    let mut view: ActionView = api.post_json("/v1/actions", &action).await.map_err(submit_failure)?;
    if args.wait {
        let deadline = tokio::time::Instant::now() + args.expires_in + WAIT_GRACE;
        let path = format!("/v1/actions/{}", action.id);
        while view.state == ActionState::Pending && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(WAIT_POLL).await;
            view = api.get_json(&path).await?;
        }
    }
    match args.output {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&view).unwrap_or_default()),
        OutputFormat::Text => {
            outln!("{}", describe(&view));
            if args.wait && view.state == ActionState::Pending {
                eprintln!("no executor took action {} before it expired; is the executor installed?", action.id);
            }
        }
    }
    Ok(outcome(&view, args.wait))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use causely_model::ActionResult;
    use clap::Parser;

    fn args(line: &[&str]) -> RemediateArgs {
        let mut argv = vec!["kubectl-causely", "remediate"];
        argv.extend_from_slice(line);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Remediate(args) => args,
            _ => panic!("not remediate"),
        }
    }

    fn build(line: &[&str]) -> Result<Action, Failure> {
        build_action(&args(line), ActionId("t-1".into()), "kubectl-causely:alice".into(), UnixMillis(1_000))
    }

    #[test]
    fn a_scale_carries_its_replicas_and_expires_after_the_given_time() {
        let a = build(&["scale", "workload/deployment/shop/web", "--replicas", "3", "--expires-in", "2m"]).unwrap();
        assert_eq!(a.kind, ActionKind::Scale { replicas: 3 });
        assert_eq!(a.expires, UnixMillis(1_000 + 120_000));
        assert_eq!(a.requester, "kubectl-causely:alice");
        assert!(!a.dry_run);
        assert!(build(&["cordon", "node/n1", "--dry-run"]).unwrap().dry_run);
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for line in [
            &["scale", "workload/deployment/shop/web"][..],
            &["restart", "workload/deployment/shop/web", "--replicas", "2"],
            &["restart", "deployment/shop/web"],
            &["cordon", "pod/shop/web-1"],
            &["restart", "workload/deployment/shop/web", "--reason", " "],
            &["restart", "workload/deployment/shop/web", "--expires-in", "0s"],
        ] {
            assert!(matches!(build(line), Err(Failure::Usage(_))), "{line:?}");
        }
        let line = ["restart", "workload/deployment/shop/web", "--id", "has space"];
        assert!(matches!(
            build_action(&args(&line), ActionId("has space".into()), "x".into(), UnixMillis(1)),
            Err(Failure::Usage(_))
        ));
    }

    #[test]
    fn fresh_ids_are_valid_and_differ() {
        let a = fresh_id(UnixMillis(5));
        let b = fresh_id(UnixMillis(5));
        assert_ne!(a, b);
        assert!(a.0.starts_with("cli-5-"));
    }

    #[test]
    fn results_read_as_one_line_and_only_applied_exits_zero() {
        let action = build(&["cordon", "node/n1"]).unwrap();
        let mut view = ActionView { action, state: ActionState::Pending, submitted: UnixMillis(1), result: None };
        assert_eq!(describe(&view), "action t-1: cordon node/n1: pending");
        assert_eq!(outcome(&view, false), Outcome::Clean);
        assert_eq!(outcome(&view, true), Outcome::Problem);
        view.state = ActionState::Done;
        view.result = Some(ActionResult {
            id: ActionId("t-1".into()),
            outcome: ActionOutcome::Rejected { reason: "action cordon is not enabled".into() },
            dry_run: false,
            finished: UnixMillis(2),
        });
        assert_eq!(describe(&view), "action t-1: cordon node/n1: rejected: action cordon is not enabled");
        assert_eq!(outcome(&view, true), Outcome::Problem);
        view.result = Some(ActionResult {
            id: ActionId("t-1".into()),
            outcome: ActionOutcome::Applied {},
            dry_run: true,
            finished: UnixMillis(2),
        });
        assert_eq!(describe(&view), "action t-1: cordon node/n1 (dry run): applied");
        assert_eq!(outcome(&view, true), Outcome::Clean);
    }
}
