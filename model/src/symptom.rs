//! Symptoms: a named condition (high CPU, crash loop, ...) on one entity, with when it started and
//! resolved. A symptom says which threshold was crossed, never the samples that crossed it.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::EntityId;
use crate::time::UnixMillis;

/// The conditions detectors report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SymptomKind {
    HighCpuUtilization,
    CpuThrottling,
    MemoryPressure,
    OomKilled,
    CrashLoop,
    ImagePullFailure,
    Unschedulable,
    NodeNotReady,
    NodePressure,
    TcpRetransmits,
    ConnectionFailures,
    RunQueueLatency,
    UnavailableReplicas,
    JobFailed,
    CronJobMissed,
}

impl SymptomKind {
    pub const ALL: [SymptomKind; 15] = [
        SymptomKind::HighCpuUtilization,
        SymptomKind::CpuThrottling,
        SymptomKind::MemoryPressure,
        SymptomKind::OomKilled,
        SymptomKind::CrashLoop,
        SymptomKind::ImagePullFailure,
        SymptomKind::Unschedulable,
        SymptomKind::NodeNotReady,
        SymptomKind::NodePressure,
        SymptomKind::TcpRetransmits,
        SymptomKind::ConnectionFailures,
        SymptomKind::RunQueueLatency,
        SymptomKind::UnavailableReplicas,
        SymptomKind::JobFailed,
        SymptomKind::CronJobMissed,
    ];

    /// A short human description, as shown in `kubectl causely top`.
    pub fn describe(self) -> &'static str {
        match self {
            SymptomKind::HighCpuUtilization => "high CPU utilization",
            SymptomKind::CpuThrottling => "CPU throttling",
            SymptomKind::MemoryPressure => "memory pressure",
            SymptomKind::OomKilled => "OOM killed",
            SymptomKind::CrashLoop => "crash loop",
            SymptomKind::ImagePullFailure => "image pull failure",
            SymptomKind::Unschedulable => "unschedulable",
            SymptomKind::NodeNotReady => "node not ready",
            SymptomKind::NodePressure => "node pressure",
            SymptomKind::TcpRetransmits => "TCP retransmits",
            SymptomKind::ConnectionFailures => "connection failures",
            SymptomKind::RunQueueLatency => "run-queue latency",
            SymptomKind::UnavailableReplicas => "unavailable replicas",
            SymptomKind::JobFailed => "job failed",
            SymptomKind::CronJobMissed => "cron job missed",
        }
    }
}

impl fmt::Display for SymptomKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// How urgent a symptom is; ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// Which way a threshold is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Comparator {
    Above,
    Below,
}

/// The rule's configured threshold: a statement about the detector, not a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Threshold {
    /// Name of the signal the rule watches, e.g. `container_cpu_utilization`.
    #[schemars(schema_with = "crate::schema::signal_schema")]
    pub signal: String,
    pub comparator: Comparator,
    /// The configured bound, e.g. `0.9` for 90 % of the CPU limit.
    pub bound: f64,
    /// How long the condition must hold before the symptom opens.
    pub window_seconds: u32,
}

/// Identifies one occurrence of a symptom; stable from open to resolve.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SymptomId(pub String);

impl SymptomId {
    /// The id of the occurrence of `rule` on `entity` that started at `started`: the same inputs
    /// always give the same id, so a detector that re-evaluates does not open duplicates.
    pub fn of(rule: &str, entity: &EntityId, started: UnixMillis) -> Self {
        SymptomId(format!("{rule}:{entity}:{}", started.0))
    }
}

impl fmt::Display for SymptomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One occurrence of a condition on an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Symptom {
    pub id: SymptomId,
    pub kind: SymptomKind,
    pub entity: EntityId,
    pub severity: Severity,
    /// The detector rule that raised it, e.g. `agent.cpu.utilization`.
    #[schemars(schema_with = "crate::schema::rule_schema")]
    pub rule: String,
    // Absent rather than null on the wire, so the schema does not admit null either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Threshold")]
    pub threshold: Option<Threshold>,
    pub started: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "UnixMillis")]
    pub resolved: Option<UnixMillis>,
}

impl Symptom {
    pub fn is_open(&self) -> bool {
        self.resolved.is_none()
    }
}

/// A change to the set of open symptoms, as agents report it and as it leaves the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "change", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SymptomChange {
    Opened { symptom: Symptom },
    Resolved { id: SymptomId, resolved: UnixMillis },
}

impl SymptomChange {
    pub fn id(&self) -> &SymptomId {
        match self {
            SymptomChange::Opened { symptom } => &symptom.id,
            SymptomChange::Resolved { id, .. } => id,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A container CPU symptom at `started`; shared with the other modules' tests.
    pub(crate) fn cpu_symptom_at(entity: &str, started: u64) -> Symptom {
        let entity: EntityId = entity.parse().unwrap();
        Symptom {
            id: SymptomId::of("agent.cpu.utilization", &entity, UnixMillis(started)),
            kind: SymptomKind::HighCpuUtilization,
            entity,
            severity: Severity::High,
            rule: "agent.cpu.utilization".into(),
            threshold: Some(Threshold {
                signal: "container_cpu_utilization".into(),
                comparator: Comparator::Above,
                bound: 0.9,
                window_seconds: 60,
            }),
            started: UnixMillis(started),
            resolved: None,
        }
    }

    fn cpu_symptom() -> Symptom {
        cpu_symptom_at("container/shop/web-1/nginx", 1_000)
    }

    #[test]
    fn a_symptom_round_trips_through_json() {
        let symptom = cpu_symptom();
        let json = serde_json::to_string(&symptom).unwrap();
        assert_eq!(serde_json::from_str::<Symptom>(&json).unwrap(), symptom);
        assert!(json.contains(r#""kind":"high-cpu-utilization""#), "{json}");
    }

    #[test]
    fn a_symptom_with_a_sample_value_attached_is_rejected() {
        let mut json = serde_json::to_value(cpu_symptom()).unwrap();
        json["value"] = serde_json::json!(0.97);
        assert!(serde_json::from_value::<Symptom>(json).is_err());
    }

    #[test]
    fn the_same_occurrence_gets_the_same_id() {
        let entity = EntityId::node("n1");
        assert_eq!(SymptomId::of("r", &entity, UnixMillis(5)), SymptomId::of("r", &entity, UnixMillis(5)));
        assert_ne!(SymptomId::of("r", &entity, UnixMillis(5)), SymptomId::of("r", &entity, UnixMillis(6)));
    }

    #[test]
    fn severities_order_from_low_to_critical() {
        assert!(Severity::Low < Severity::Medium && Severity::Medium < Severity::High);
        assert!(Severity::High < Severity::Critical);
    }

    #[test]
    fn every_kind_has_a_distinct_wire_name_and_description() {
        let names: std::collections::BTreeSet<String> =
            SymptomKind::ALL.iter().map(|k| serde_json::to_string(k).unwrap()).collect();
        let texts: std::collections::BTreeSet<&str> = SymptomKind::ALL.iter().map(|k| k.describe()).collect();
        assert_eq!(names.len(), SymptomKind::ALL.len());
        assert_eq!(texts.len(), SymptomKind::ALL.len());
    }

    #[test]
    fn symptom_changes_are_tagged_and_round_trip() {
        let opened = SymptomChange::Opened { symptom: cpu_symptom() };
        let resolved = SymptomChange::Resolved { id: cpu_symptom().id, resolved: UnixMillis(9) };
        for change in [opened, resolved] {
            let json = serde_json::to_value(&change).unwrap();
            assert!(json["change"].is_string(), "{json}");
            assert_eq!(serde_json::from_value::<SymptomChange>(json).unwrap(), change);
        }
        assert_eq!(SymptomChange::Opened { symptom: cpu_symptom() }.id(), &cpu_symptom().id);
    }

    #[test]
    fn a_resolved_symptom_is_not_open() {
        let mut symptom = cpu_symptom();
        assert!(symptom.is_open());
        symptom.resolved = Some(UnixMillis(2_000));
        assert!(!symptom.is_open());
    }
}
