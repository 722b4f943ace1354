//! Remediation actions the executor may carry out, and their results.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{EntityId, EntityKind, WorkloadKind};
use crate::time::UnixMillis;

/// Identifies an action; the executor runs each id at most once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(pub String);

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What to do to the target. Variants without data are empty structs so that extra keys next
/// to the tag are rejected (see [`crate::edge::Relation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ActionKind {
    /// Rollout restart of a Deployment, StatefulSet or DaemonSet.
    Restart {},
    /// Delete one pod (its controller replaces it).
    DeletePod {},
    /// Set the replica count of a Deployment or StatefulSet.
    Scale { replicas: u32 },
    /// Mark a node unschedulable.
    Cordon {},
    /// Mark a node schedulable again.
    Uncordon {},
    /// Roll a Deployment back to its previous ReplicaSet's template.
    Rollback {},
}

impl ActionKind {
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Restart {} => "restart",
            ActionKind::DeletePod {} => "delete-pod",
            ActionKind::Scale { .. } => "scale",
            ActionKind::Cordon {} => "cordon",
            ActionKind::Uncordon {} => "uncordon",
            ActionKind::Rollback {} => "rollback",
        }
    }

    /// Whether this action can apply to an entity of `kind`.
    pub fn accepts(self, kind: EntityKind) -> bool {
        use WorkloadKind::{DaemonSet, Deployment, StatefulSet};
        match self {
            ActionKind::Restart {} => {
                matches!(kind, EntityKind::Workload(Deployment | StatefulSet | DaemonSet))
            }
            ActionKind::DeletePod {} => kind == EntityKind::Pod,
            ActionKind::Scale { .. } => matches!(kind, EntityKind::Workload(Deployment | StatefulSet)),
            ActionKind::Cordon {} | ActionKind::Uncordon {} => kind == EntityKind::Node,
            ActionKind::Rollback {} => kind == EntityKind::Workload(Deployment),
        }
    }
}

/// Why an action is malformed before any policy is consulted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionTargetError {
    #[error("action {action} cannot target {target}")]
    WrongTarget { action: &'static str, target: EntityId },
    #[error("action {0} has an empty reason")]
    NoReason(ActionId),
    #[error("action {0} has an empty requester")]
    NoRequester(ActionId),
    #[error("action id {0:?} must be 1 to {MAX_ID_LEN} characters of a-z, A-Z, 0-9, '-', '_' and '.'")]
    BadId(String),
    #[error("action {id} has a reason or requester longer than {MAX_TEXT_LEN} characters")]
    TooLong { id: ActionId },
}

/// Longest action id; ids appear in Event names and file lines, so they stay short and plain.
pub const MAX_ID_LEN: usize = 128;
/// Longest reason or requester; they are recorded in Events and the audit log.
pub const MAX_TEXT_LEN: usize = 1024;

/// A request to change the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Action {
    pub id: ActionId,
    pub kind: ActionKind,
    pub target: EntityId,
    pub reason: String,
    pub requester: String,
    pub expires: UnixMillis,
    /// Only the API server's dry run (`dryRun=All`): checked and admitted, nothing stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl Action {
    /// Checks that the action is well formed: the target fits the action, and who asked and why
    /// are stated.
    pub fn validate(&self) -> Result<(), ActionTargetError> {
        let id = &self.id.0;
        let id_ok = !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !id_ok {
            return Err(ActionTargetError::BadId(id.clone()));
        }
        if !self.kind.accepts(self.target.kind()) {
            return Err(ActionTargetError::WrongTarget { action: self.kind.name(), target: self.target.clone() });
        }
        if self.reason.trim().is_empty() {
            return Err(ActionTargetError::NoReason(self.id.clone()));
        }
        if self.requester.trim().is_empty() {
            return Err(ActionTargetError::NoRequester(self.id.clone()));
        }
        if self.reason.chars().count() > MAX_TEXT_LEN || self.requester.chars().count() > MAX_TEXT_LEN {
            return Err(ActionTargetError::TooLong { id: self.id.clone() });
        }
        Ok(())
    }

    pub fn is_expired(&self, now: UnixMillis) -> bool {
        now >= self.expires
    }
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ActionOutcome {
    Applied {},
    /// Refused before touching the cluster (policy, expiry, repeated id, malformed).
    Rejected {
        reason: String,
    },
    /// Attempted, and the API server refused or failed.
    Failed {
        reason: String,
    },
}

/// The executor's report on one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionResult {
    pub id: ActionId,
    pub outcome: ActionOutcome,
    pub dry_run: bool,
    pub finished: UnixMillis,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(kind: ActionKind, target: &str) -> Action {
        Action {
            id: ActionId("a-1".into()),
            kind,
            target: target.parse().unwrap(),
            reason: "crash loop".into(),
            requester: "upstream".into(),
            expires: UnixMillis(10_000),
            dry_run: false,
        }
    }

    #[test]
    fn each_action_accepts_only_its_kinds_of_target() {
        let ok = [
            (ActionKind::Restart {}, "workload/deployment/a/web"),
            (ActionKind::Restart {}, "workload/statefulset/a/db"),
            (ActionKind::Restart {}, "workload/daemonset/a/agent"),
            (ActionKind::DeletePod {}, "pod/a/web-1"),
            (ActionKind::Scale { replicas: 3 }, "workload/deployment/a/web"),
            (ActionKind::Scale { replicas: 3 }, "workload/statefulset/a/db"),
            (ActionKind::Cordon {}, "node/n1"),
            (ActionKind::Uncordon {}, "node/n1"),
            (ActionKind::Rollback {}, "workload/deployment/a/web"),
        ];
        for (kind, target) in ok {
            assert_eq!(action(kind, target).validate(), Ok(()), "{} {target}", kind.name());
        }
        let refused = [
            (ActionKind::Restart {}, "workload/job/a/j"),
            (ActionKind::DeletePod {}, "node/n1"),
            (ActionKind::Scale { replicas: 3 }, "workload/daemonset/a/agent"),
            (ActionKind::Cordon {}, "pod/a/web-1"),
            (ActionKind::Rollback {}, "workload/statefulset/a/db"),
        ];
        for (kind, target) in refused {
            assert!(
                matches!(action(kind, target).validate(), Err(ActionTargetError::WrongTarget { .. })),
                "{} {target}",
                kind.name()
            );
        }
    }

    #[test]
    fn an_action_without_reason_or_requester_is_malformed() {
        let mut a = action(ActionKind::Cordon {}, "node/n1");
        a.reason = "  ".into();
        assert_eq!(a.validate(), Err(ActionTargetError::NoReason(a.id.clone())));
        let mut a = action(ActionKind::Cordon {}, "node/n1");
        a.requester = String::new();
        assert_eq!(a.validate(), Err(ActionTargetError::NoRequester(a.id.clone())));
    }

    #[test]
    fn action_ids_are_short_plain_strings_and_texts_are_bounded() {
        for bad in ["", "a b", "a/b", "\u{e9}"] {
            let mut a = action(ActionKind::Cordon {}, "node/n1");
            a.id = ActionId(bad.into());
            assert_eq!(a.validate(), Err(ActionTargetError::BadId(bad.into())), "{bad:?}");
        }
        let mut a = action(ActionKind::Cordon {}, "node/n1");
        a.id = ActionId("cli-1700000000-Ab_3.x".into());
        assert_eq!(a.validate(), Ok(()));
        a.id = ActionId("x".repeat(MAX_ID_LEN + 1));
        assert!(matches!(a.validate(), Err(ActionTargetError::BadId(_))));
        let mut a = action(ActionKind::Cordon {}, "node/n1");
        a.reason = "r".repeat(MAX_TEXT_LEN + 1);
        assert_eq!(a.validate(), Err(ActionTargetError::TooLong { id: a.id.clone() }));
    }

    #[test]
    fn the_dry_run_flag_is_left_out_of_json_unless_set() {
        let mut a = action(ActionKind::Cordon {}, "node/n1");
        assert!(serde_json::to_value(&a).unwrap().get("dryRun").is_none());
        a.dry_run = true;
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["dryRun"], true);
        assert_eq!(serde_json::from_value::<Action>(json).unwrap(), a);
    }

    #[test]
    fn an_action_expires_at_its_deadline() {
        let a = action(ActionKind::Cordon {}, "node/n1");
        assert!(!a.is_expired(UnixMillis(9_999)));
        assert!(a.is_expired(UnixMillis(10_000)));
    }

    #[test]
    fn an_action_kind_or_outcome_with_extra_keys_is_rejected() {
        assert!(serde_json::from_str::<ActionKind>(r#"{"type":"cordon","force":true}"#).is_err());
        assert!(serde_json::from_str::<ActionOutcome>(r#"{"status":"applied","output":"x"}"#).is_err());
        assert!(serde_json::from_str::<ActionKind>(r#"{"type":"cordon"}"#).is_ok());
    }

    #[test]
    fn actions_and_results_round_trip_through_json() {
        let a = action(ActionKind::Scale { replicas: 4 }, "workload/deployment/a/web");
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["kind"], serde_json::json!({"type": "scale", "replicas": 4}));
        assert_eq!(serde_json::from_value::<Action>(json).unwrap(), a);
        for outcome in [
            ActionOutcome::Applied {},
            ActionOutcome::Rejected { reason: "namespace kube-system is denied".into() },
            ActionOutcome::Failed { reason: "forbidden".into() },
        ] {
            let result = ActionResult { id: a.id.clone(), outcome, dry_run: false, finished: UnixMillis(1) };
            let json = serde_json::to_string(&result).unwrap();
            assert_eq!(serde_json::from_str::<ActionResult>(&json).unwrap(), result);
        }
    }
}
