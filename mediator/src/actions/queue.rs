//! The action queue as plain values: submissions from the CLI, what the executor still has to do,
//! and the results it reports. Each id is taken once; a result is final.

use std::collections::BTreeMap;
use std::time::Duration;

use causely_model::api::{ActionState, ActionView};
use causely_model::{Action, ActionId, ActionResult, ActionTargetError, UnixMillis};

/// Bound on actions waiting for the executor, so a flood of submissions cannot grow without end.
pub const MAX_PENDING: usize = 1000;

/// Why the queue refused a submission or a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("action id {0} was already submitted; ids are used once")]
    Duplicate(ActionId),
    #[error(transparent)]
    Invalid(#[from] ActionTargetError),
    #[error("action {0} had already expired when it was submitted")]
    Expired(ActionId),
    #[error("{MAX_PENDING} actions are already waiting for the executor")]
    Full,
    #[error("no action {0}")]
    Unknown(ActionId),
    #[error("action {0} already has a different result; results are final")]
    AlreadyDone(ActionId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    action: Action,
    submitted: UnixMillis,
    result: Option<ActionResult>,
}

impl Entry {
    fn view(&self) -> ActionView {
        ActionView {
            action: self.action.clone(),
            state: if self.result.is_some() { ActionState::Done } else { ActionState::Pending },
            submitted: self.submitted,
            result: self.result.clone(),
        }
    }
}

/// Whether a reported result changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The first result for this action.
    Recorded,
    /// The same result again (the executor retried after a lost answer): nothing changes.
    Repeated,
}

/// Every action the mediator knows, by id.
#[derive(Debug, Default, Clone)]
pub struct ActionQueue {
    entries: BTreeMap<ActionId, Entry>,
}

impl ActionQueue {
    /// Takes a new action: well formed, not yet expired, an id never seen, and room in the queue.
    pub fn submit(&mut self, action: Action, now: UnixMillis) -> Result<ActionView, QueueError> {
        self.check_submit(&action, now)?;
        Ok(self.restore(action, now))
    }

    /// Whether [`Self::submit`] would take the action, changing nothing (so the journal is
    /// written before the queue changes).
    pub fn check_submit(&self, action: &Action, now: UnixMillis) -> Result<(), QueueError> {
        action.validate()?;
        if self.entries.contains_key(&action.id) {
            return Err(QueueError::Duplicate(action.id.clone()));
        }
        if action.is_expired(now) {
            return Err(QueueError::Expired(action.id.clone()));
        }
        if self.pending_count() >= MAX_PENDING {
            return Err(QueueError::Full);
        }
        Ok(())
    }

    /// Puts back an action read from the journal, without the checks of a new submission.
    pub fn restore(&mut self, action: Action, submitted: UnixMillis) -> ActionView {
        let entry = Entry { action, submitted, result: None };
        let view = entry.view();
        self.entries.insert(entry.action.id.clone(), entry);
        view
    }

    /// Records the executor's result for a pending action.
    pub fn report(&mut self, result: ActionResult) -> Result<Reported, QueueError> {
        let reported = self.check_report(&result)?;
        if let (Reported::Recorded, Some(entry)) = (reported, self.entries.get_mut(&result.id)) {
            entry.result = Some(result);
        }
        Ok(reported)
    }

    /// What [`Self::report`] would do, changing nothing.
    pub fn check_report(&self, result: &ActionResult) -> Result<Reported, QueueError> {
        let entry = self.entries.get(&result.id).ok_or_else(|| QueueError::Unknown(result.id.clone()))?;
        match &entry.result {
            Some(done) if done == result => Ok(Reported::Repeated),
            Some(_) => Err(QueueError::AlreadyDone(result.id.clone())),
            None => Ok(Reported::Recorded),
        }
    }

    /// The actions without a result, oldest submission first. Expired ones are included: the
    /// executor refuses them and says so, which closes them with a reason.
    pub fn pending(&self) -> Vec<Action> {
        let mut pending: Vec<&Entry> = self.entries.values().filter(|e| e.result.is_none()).collect();
        pending.sort_by(|a, b| a.submitted.cmp(&b.submitted).then_with(|| a.action.id.cmp(&b.action.id)));
        pending.into_iter().map(|e| e.action.clone()).collect()
    }

    pub fn pending_count(&self) -> usize {
        self.entries.values().filter(|e| e.result.is_none()).count()
    }

    pub fn view(&self, id: &ActionId) -> Option<ActionView> {
        self.entries.get(id).map(Entry::view)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets actions finished more than `keep` ago, and pending ones expired more than `keep`
    /// ago (no executor took them). Their ids may then be used again, which the executor's own
    /// record of what it ran still refuses.
    pub fn prune(&mut self, now: UnixMillis, keep: Duration) -> usize {
        let keep = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
        let horizon = now.0.saturating_sub(keep);
        let before = self.entries.len();
        self.entries.retain(|_, e| match &e.result {
            Some(result) => result.finished.0 >= horizon,
            None => e.action.expires.0 >= horizon,
        });
        before - self.entries.len()
    }

    /// Every action with its submission time and result, for rewriting the journal.
    pub fn entries(&self) -> impl Iterator<Item = (&Action, UnixMillis, Option<&ActionResult>)> {
        self.entries.values().map(|e| (&e.action, e.submitted, e.result.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causely_model::{ActionKind, ActionOutcome};

    fn action(id: &str, expires: u64) -> Action {
        Action {
            id: ActionId(id.into()),
            kind: ActionKind::Cordon {},
            target: "node/n1".parse().unwrap(),
            reason: "disk pressure".into(),
            requester: "cli:alice".into(),
            expires: UnixMillis(expires),
            dry_run: false,
        }
    }

    fn applied(id: &str, finished: u64) -> ActionResult {
        ActionResult {
            id: ActionId(id.into()),
            outcome: ActionOutcome::Applied {},
            dry_run: false,
            finished: UnixMillis(finished),
        }
    }

    #[test]
    fn a_submitted_action_is_pending_until_its_result_arrives() {
        let mut q = ActionQueue::default();
        let view = q.submit(action("a", 100), UnixMillis(1)).unwrap();
        assert_eq!(view.state, ActionState::Pending);
        assert_eq!(q.pending(), vec![action("a", 100)]);
        assert_eq!(q.report(applied("a", 5)), Ok(Reported::Recorded));
        assert!(q.pending().is_empty());
        let view = q.view(&ActionId("a".into())).unwrap();
        assert_eq!(view.state, ActionState::Done);
        assert_eq!(view.result, Some(applied("a", 5)));
    }

    #[test]
    fn an_id_is_taken_once_even_after_its_result() {
        let mut q = ActionQueue::default();
        q.submit(action("a", 100), UnixMillis(1)).unwrap();
        assert_eq!(q.submit(action("a", 200), UnixMillis(2)), Err(QueueError::Duplicate(ActionId("a".into()))));
        q.report(applied("a", 5)).unwrap();
        assert_eq!(q.submit(action("a", 200), UnixMillis(6)), Err(QueueError::Duplicate(ActionId("a".into()))));
    }

    #[test]
    fn malformed_and_already_expired_actions_are_refused() {
        let mut q = ActionQueue::default();
        let mut wrong = action("w", 100);
        wrong.target = "pod/ns/p".parse().unwrap();
        assert!(matches!(q.submit(wrong, UnixMillis(1)), Err(QueueError::Invalid(_))));
        assert_eq!(q.submit(action("e", 100), UnixMillis(100)), Err(QueueError::Expired(ActionId("e".into()))));
        assert!(q.is_empty());
    }

    #[test]
    fn a_result_is_final_but_the_same_result_may_be_reported_again() {
        let mut q = ActionQueue::default();
        q.submit(action("a", 100), UnixMillis(1)).unwrap();
        q.report(applied("a", 5)).unwrap();
        assert_eq!(q.report(applied("a", 5)), Ok(Reported::Repeated));
        let failed = ActionResult { outcome: ActionOutcome::Failed { reason: "forbidden".into() }, ..applied("a", 6) };
        assert_eq!(q.report(failed), Err(QueueError::AlreadyDone(ActionId("a".into()))));
        assert_eq!(q.report(applied("nope", 1)), Err(QueueError::Unknown(ActionId("nope".into()))));
    }

    #[test]
    fn pending_actions_come_oldest_first() {
        let mut q = ActionQueue::default();
        q.submit(action("b", 100), UnixMillis(1)).unwrap();
        q.submit(action("a", 100), UnixMillis(2)).unwrap();
        q.submit(action("c", 100), UnixMillis(1)).unwrap();
        let ids: Vec<String> = q.pending().into_iter().map(|a| a.id.0).collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }

    #[test]
    fn the_queue_stops_taking_actions_when_too_many_wait() {
        let mut q = ActionQueue::default();
        for i in 0..MAX_PENDING {
            q.submit(action(&format!("a{i}"), 100), UnixMillis(1)).unwrap();
        }
        assert_eq!(q.submit(action("one-more", 100), UnixMillis(1)), Err(QueueError::Full));
        q.report(applied("a0", 2)).unwrap();
        assert!(q.submit(action("one-more", 100), UnixMillis(2)).is_ok());
    }

    #[test]
    fn pruning_forgets_old_results_and_long_expired_pending_actions_only() {
        let mut q = ActionQueue::default();
        q.submit(action("old-done", 10_000), UnixMillis(1)).unwrap();
        q.report(applied("old-done", 1_000)).unwrap();
        q.submit(action("new-done", 10_000), UnixMillis(1)).unwrap();
        q.report(applied("new-done", 9_500)).unwrap();
        q.submit(action("stale", 2_000), UnixMillis(1)).unwrap();
        q.submit(action("live", 20_000), UnixMillis(1)).unwrap();
        assert_eq!(q.prune(UnixMillis(10_000), Duration::from_secs(1)), 2);
        assert!(q.view(&ActionId("old-done".into())).is_none());
        assert!(q.view(&ActionId("stale".into())).is_none());
        assert!(q.view(&ActionId("new-done".into())).is_some());
        assert!(q.view(&ActionId("live".into())).is_some());
    }
}
