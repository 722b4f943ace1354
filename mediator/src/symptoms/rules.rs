//! The cluster detectors' rule ids and tunables, read from configuration with unknown keys rejected.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Rule ids of the cluster detectors; a symptom's `rule` field carries one of these.
pub mod rule {
    pub const CRASH_LOOP: &str = "cluster.container.crash-loop";
    pub const OOM_KILLED: &str = "cluster.container.oom-killed";
    pub const IMAGE_PULL: &str = "cluster.container.image-pull";
    pub const UNSCHEDULABLE: &str = "cluster.pod.unschedulable";
    pub const PENDING: &str = "cluster.pod.pending";
    pub const NODE_NOT_READY: &str = "cluster.node.not-ready";
    pub const NODE_MEMORY_PRESSURE: &str = "cluster.node.memory-pressure";
    pub const NODE_DISK_PRESSURE: &str = "cluster.node.disk-pressure";
    pub const NODE_PID_PRESSURE: &str = "cluster.node.pid-pressure";
    pub const UNAVAILABLE_REPLICAS: &str = "cluster.workload.unavailable-replicas";
    pub const JOB_FAILED: &str = "cluster.job.failed";
    pub const CRON_JOB_MISSED: &str = "cluster.cronjob.missed";

    pub const ALL: [&str; 12] = [
        CRASH_LOOP,
        OOM_KILLED,
        IMAGE_PULL,
        UNSCHEDULABLE,
        PENDING,
        NODE_NOT_READY,
        NODE_MEMORY_PRESSURE,
        NODE_DISK_PRESSURE,
        NODE_PID_PRESSURE,
        UNAVAILABLE_REPLICAS,
        JOB_FAILED,
        CRON_JOB_MISSED,
    ];
}

/// Why a set of cluster rules cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("resolveAfterSecondsByRule names unknown rule {0:?} (known: {known})", known = rule::ALL.join(", "))]
    UnknownRule(String),
}

/// Tunables of the cluster detectors and of the symptom book's hysteresis. Every field has a default, so a
/// configuration names only what it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClusterRules {
    /// A pod still unbound this long after its creation is reported (unless the scheduler already said it is
    /// unschedulable, which is its own rule).
    pub pending_after_seconds: u64,
    /// Unavailable replicas must persist this long before a symptom opens: every rollout has some briefly.
    pub unavailable_after_seconds: u64,
    /// An OOM kill stays a symptom this long after the kill; a container's last state keeps the kill forever.
    pub oom_killed_window_seconds: u64,
    /// How late a CronJob's scheduled run may start before it counts as missed.
    pub cron_job_grace_seconds: u64,
    /// How long a finding must stay absent before its symptom resolves, so a condition that flaps (a crash
    /// loop between restarts) stays one symptom.
    pub resolve_after_seconds: u64,
    /// Per-rule overrides of `resolve_after_seconds`, keyed by rule id.
    pub resolve_after_seconds_by_rule: BTreeMap<String, u64>,
}

impl Default for ClusterRules {
    fn default() -> Self {
        ClusterRules {
            pending_after_seconds: 300,
            unavailable_after_seconds: 120,
            oom_killed_window_seconds: 600,
            cron_job_grace_seconds: 120,
            resolve_after_seconds: 60,
            resolve_after_seconds_by_rule: BTreeMap::new(),
        }
    }
}

fn ms(seconds: u64) -> u64 {
    seconds.saturating_mul(1_000)
}

impl ClusterRules {
    /// Rejects overrides for rules that do not exist, which would otherwise be silently ignored.
    pub fn validate(&self) -> Result<(), RulesError> {
        match self.resolve_after_seconds_by_rule.keys().find(|r| !rule::ALL.contains(&r.as_str())) {
            Some(unknown) => Err(RulesError::UnknownRule(unknown.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn resolve_after_ms(&self, rule: &str) -> u64 {
        ms(self.resolve_after_seconds_by_rule.get(rule).copied().unwrap_or(self.resolve_after_seconds))
    }

    pub(crate) fn pending_after_ms(&self) -> u64 {
        ms(self.pending_after_seconds)
    }

    pub(crate) fn unavailable_after_ms(&self) -> u64 {
        ms(self.unavailable_after_seconds)
    }

    pub(crate) fn oom_killed_window_ms(&self) -> u64 {
        ms(self.oom_killed_window_seconds)
    }

    pub(crate) fn cron_job_grace_ms(&self) -> u64 {
        ms(self.cron_job_grace_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_configuration_gives_the_defaults() {
        let rules: ClusterRules = serde_json::from_str("{}").unwrap();
        assert_eq!(rules, ClusterRules::default());
        assert_eq!(rules.resolve_after_ms(rule::CRASH_LOOP), 60_000);
        assert_eq!(rules.pending_after_ms(), 300_000);
    }

    #[test]
    fn a_per_rule_override_changes_only_that_rule() {
        let rules: ClusterRules =
            serde_json::from_str(r#"{"resolveAfterSecondsByRule": {"cluster.container.crash-loop": 360}}"#).unwrap();
        rules.validate().unwrap();
        assert_eq!(rules.resolve_after_ms(rule::CRASH_LOOP), 360_000);
        assert_eq!(rules.resolve_after_ms(rule::JOB_FAILED), 60_000);
    }

    #[test]
    fn unknown_keys_and_unknown_rules_are_rejected() {
        let err = serde_json::from_str::<ClusterRules>(r#"{"pendingAfter": 5}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let rules: ClusterRules =
            serde_json::from_str(r#"{"resolveAfterSecondsByRule": {"cluster.container.crashloop": 1}}"#).unwrap();
        assert_eq!(rules.validate(), Err(RulesError::UnknownRule("cluster.container.crashloop".into())));
    }
}
