//! Detector rules as data: what signal, which bound, for how long, and how a symptom resolves.

use std::collections::HashSet;
use std::fmt;

use causely_model::{Comparator, EntityKind, Severity, SymptomKind, Threshold};
use serde::{Deserialize, Serialize};

/// The signals the node detectors watch; each is a rate or ratio derived from raw samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// CPU used as a fraction of the container's CFS limit.
    ContainerCpuUtilization,
    /// Share of CFS periods in which the container was throttled.
    ContainerCpuThrottledFraction,
    /// Memory in use as a fraction of the container's limit.
    ContainerMemoryUtilization,
    /// OOM kills since the previous scrape (an event count).
    ContainerOomKills,
    ContainerTcpRetransmitsPerSecond,
    ContainerConnectFailuresPerSecond,
    ContainerRunQueueLatencyP95Seconds,
    NodeCpuUtilization,
    NodeMemoryAvailableRatio,
    /// PSI `some avg10`, in percent.
    NodePsiCpuSomeAvg10,
    NodePsiMemorySomeAvg10,
    NodePsiIoSomeAvg10,
}

impl Signal {
    /// The wire name, as it appears in a symptom's threshold.
    pub fn name(self) -> &'static str {
        match self {
            Signal::ContainerCpuUtilization => "container_cpu_utilization",
            Signal::ContainerCpuThrottledFraction => "container_cpu_throttled_fraction",
            Signal::ContainerMemoryUtilization => "container_memory_utilization",
            Signal::ContainerOomKills => "container_oom_kills",
            Signal::ContainerTcpRetransmitsPerSecond => "container_tcp_retransmits_per_second",
            Signal::ContainerConnectFailuresPerSecond => "container_connect_failures_per_second",
            Signal::ContainerRunQueueLatencyP95Seconds => "container_run_queue_latency_p95_seconds",
            Signal::NodeCpuUtilization => "node_cpu_utilization",
            Signal::NodeMemoryAvailableRatio => "node_memory_available_ratio",
            Signal::NodePsiCpuSomeAvg10 => "node_psi_cpu_some_avg10",
            Signal::NodePsiMemorySomeAvg10 => "node_psi_memory_some_avg10",
            Signal::NodePsiIoSomeAvg10 => "node_psi_io_some_avg10",
        }
    }

    /// The kind of entity the signal is measured on.
    pub fn entity(self) -> RuleEntity {
        if self.name().starts_with("node_") { RuleEntity::Node } else { RuleEntity::Container }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The entity kinds node detectors raise symptoms on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleEntity {
    Container,
    Pod,
    Node,
}

impl RuleEntity {
    pub fn matches(self, kind: EntityKind) -> bool {
        matches!(
            (self, kind),
            (RuleEntity::Container, EntityKind::Container)
                | (RuleEntity::Pod, EntityKind::Pod)
                | (RuleEntity::Node, EntityKind::Node)
        )
    }
}

/// How a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// The condition must hold for `windowSeconds` before the symptom opens.
    #[default]
    Sustained,
    /// Each observation past the bound is an event: the symptom opens at once and resolves after
    /// `resolve.windowSeconds` without events.
    Event,
}

/// How a symptom resolves. Both parts prevent flapping: the value must be back on the clear
/// side of `bound` (default: the rule's own bound) continuously for `windowSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resolve {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<f64>,
    /// Defaults to the rule's window for sustained rules and to five minutes (the quiet window)
    /// for event rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u32>,
}

fn default_severity() -> Severity {
    Severity::Medium
}

fn default_comparator() -> Comparator {
    Comparator::Above
}

fn default_window() -> u32 {
    60
}

/// The quiet window after which an event symptom resolves, when the rule does not say.
pub const DEFAULT_QUIET_SECONDS: u32 = 300;

/// One detector rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// The rule id symptoms carry, e.g. `agent.container.cpu-utilization`.
    pub id: String,
    pub kind: SymptomKind,
    #[serde(default = "default_severity")]
    pub severity: Severity,
    pub entity: RuleEntity,
    pub signal: Signal,
    #[serde(default = "default_comparator")]
    pub comparator: Comparator,
    pub bound: f64,
    #[serde(default = "default_window")]
    pub window_seconds: u32,
    #[serde(default)]
    pub trigger: Trigger,
    #[serde(default)]
    pub resolve: Resolve,
}

impl Rule {
    /// Whether `value` is past the opening bound.
    pub fn holds(&self, value: f64) -> bool {
        match self.comparator {
            Comparator::Above => value > self.bound,
            Comparator::Below => value < self.bound,
        }
    }

    /// Whether `value` is on the clear side of the resolve bound.
    pub fn clear(&self, value: f64) -> bool {
        match (self.resolve.bound, self.comparator) {
            (None, _) => !self.holds(value),
            (Some(bound), Comparator::Above) => value <= bound,
            (Some(bound), Comparator::Below) => value >= bound,
        }
    }

    /// How long the clear condition (sustained) or quiet (event) must last before resolving.
    pub fn resolve_window_ms(&self) -> u64 {
        let seconds = self.resolve.window_seconds.unwrap_or(match self.trigger {
            Trigger::Sustained => self.window_seconds,
            Trigger::Event => DEFAULT_QUIET_SECONDS,
        });
        u64::from(seconds) * 1_000
    }

    pub fn window_ms(&self) -> u64 {
        match self.trigger {
            Trigger::Sustained => u64::from(self.window_seconds) * 1_000,
            Trigger::Event => 0,
        }
    }

    /// The threshold a symptom of this rule states: configuration, never a measurement.
    pub fn threshold(&self) -> Threshold {
        Threshold {
            signal: self.signal.name().to_owned(),
            comparator: self.comparator,
            bound: self.bound,
            window_seconds: match self.trigger {
                Trigger::Sustained => self.window_seconds,
                Trigger::Event => 0,
            },
        }
    }

    fn validate(&self) -> Result<(), RuleError> {
        let bad = |why: &'static str| Err(RuleError::Invalid { rule: self.id.clone(), why });
        if !valid_rule_id(&self.id) {
            return bad("the id must be lowercase words joined by '.', '_' or '-', at most 128 characters");
        }
        if !self.bound.is_finite() || self.resolve.bound.is_some_and(|b| !b.is_finite()) {
            return bad("bounds must be finite numbers");
        }
        if self.signal.entity() != self.entity {
            return bad("the signal is not measured on the rule's entity kind");
        }
        match (self.resolve.bound, self.comparator) {
            (Some(resolve), Comparator::Above) if resolve > self.bound => {
                return bad("an 'above' rule must resolve at or below its bound");
            }
            (Some(resolve), Comparator::Below) if resolve < self.bound => {
                return bad("a 'below' rule must resolve at or above its bound");
            }
            _ => {}
        }
        if self.trigger == Trigger::Event && self.resolve_window_ms() == 0 {
            return bad("an event rule needs a quiet window");
        }
        Ok(())
    }
}

/// Mirrors the model's rule id pattern `[a-z0-9]+([._-][a-z0-9]+)*`, so an invalid id is refused
/// when the rules load rather than by the egress guard much later.
fn valid_rule_id(id: &str) -> bool {
    id.len() <= 128
        && !id.is_empty()
        && id
            .split(['.', '_', '-'])
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// A set of rules and how long an entity may go unobserved before its symptoms resolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSet {
    /// An entity not observed for this long (a container that exited, a signal that stopped)
    /// has its open symptoms resolved and its pending conditions forgotten.
    #[serde(default = "default_stale")]
    pub stale_seconds: u32,
    pub rules: Vec<Rule>,
}

fn default_stale() -> u32 {
    300
}

/// The built-in rules, kept as a data file next to this module.
const DEFAULT_RULES: &str = include_str!("default-rules.json");

impl RuleSet {
    /// Parses and validates a rule file.
    pub fn from_json(text: &str) -> Result<Self, RuleError> {
        let set: RuleSet = serde_json::from_str(text).map_err(|e| RuleError::Syntax(e.to_string()))?;
        set.validate()?;
        Ok(set)
    }

    /// The built-in rules.
    pub fn builtin() -> Result<Self, RuleError> {
        Self::from_json(DEFAULT_RULES)
    }

    pub fn validate(&self) -> Result<(), RuleError> {
        let mut seen = HashSet::new();
        for rule in &self.rules {
            rule.validate()?;
            if !seen.insert(rule.id.as_str()) {
                return Err(RuleError::Duplicate(rule.id.clone()));
            }
        }
        Ok(())
    }
}

/// Why a rule file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("rule file: {0}")]
    Syntax(String),
    #[error("rule {rule:?}: {why}")]
    Invalid { rule: String, why: &'static str },
    #[error("rule id {0:?} appears more than once")]
    Duplicate(String),
}
