//! Node symptom detectors: rules (data, see [`rule`]) evaluated over a stream of observations,
//! emitting symptom opens and resolves. Pure state machines; time comes in with each observation.
//!
//! A sustained rule opens when its condition has held for the whole window (the symptom's
//! `started` is when the condition began, so re-evaluation gives the same id) and resolves once
//! the value has stayed on the clear side of the resolve bound for the resolve window. An event
//! rule opens on the first event and resolves after a quiet window. A symptom carries the rule's
//! threshold, never the observed values.

pub mod rule;

use std::collections::HashMap;

use causely_model::{EntityId, Symptom, SymptomChange, SymptomId, UnixMillis};

pub use rule::{Resolve, Rule, RuleEntity, RuleError, RuleSet, Signal, Trigger};

use crate::collect::{ContainerRates, NodeRates};

/// One value of one signal on one entity at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub signal: Signal,
    pub entity: EntityId,
    pub value: f64,
    pub time_ms: u64,
}

#[derive(Debug, Clone)]
enum State {
    /// The condition has held since `since`, not yet for the whole window.
    Pending { since: u64, last: u64 },
    /// A symptom is open. `clear_since` is when the value last went to the clear side (sustained)
    /// or, for event rules, `last_event` is the latest event.
    Open { id: SymptomId, clear_since: Option<u64>, last_event: u64, last: u64 },
}

impl State {
    fn last(&self) -> u64 {
        match self {
            State::Pending { last, .. } | State::Open { last, .. } => *last,
        }
    }
}

/// Evaluates a rule set over observations.
#[derive(Debug)]
pub struct Detector {
    rules: Vec<Rule>,
    stale_ms: u64,
    states: HashMap<(usize, EntityId), State>,
}

impl Detector {
    pub fn new(rules: RuleSet) -> Result<Self, RuleError> {
        rules.validate()?;
        Ok(Detector { stale_ms: u64::from(rules.stale_seconds) * 1_000, rules: rules.rules, states: HashMap::new() })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Symptoms currently open.
    pub fn open_count(&self) -> usize {
        self.states.values().filter(|s| matches!(s, State::Open { .. })).count()
    }

    /// Feeds one observation to every rule on its signal and entity kind. Non-finite values and
    /// observations older than the last one seen for the same rule and entity are ignored.
    pub fn observe(&mut self, observation: &Observation) -> Vec<SymptomChange> {
        let mut changes = Vec::new();
        let kind = observation.entity.kind();
        if !observation.value.is_finite() {
            return changes;
        }
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.signal != observation.signal || !rule.entity.matches(kind) {
                continue;
            }
            let key = (index, observation.entity.clone());
            let state = self.states.remove(&key);
            let next = match rule.trigger {
                Trigger::Sustained => {
                    step_sustained(rule, self.stale_ms, &observation.entity, state, observation, &mut changes)
                }
                Trigger::Event => step_event(rule, &observation.entity, state, observation, &mut changes),
            };
            if let Some(next) = next {
                self.states.insert(key, next);
            }
        }
        changes
    }

    /// The entity is gone (its container stopped and its cgroup was removed): its open symptoms
    /// resolve now and its pending conditions are forgotten.
    pub fn vanished(&mut self, entity: &EntityId, now_ms: u64) -> Vec<SymptomChange> {
        let mut changes = Vec::new();
        self.states.retain(|(_, e), state| {
            if e != entity {
                return true;
            }
            if let State::Open { id, .. } = state {
                changes.push(SymptomChange::Resolved { id: id.clone(), resolved: UnixMillis(now_ms) });
            }
            false
        });
        changes.sort_by(|a, b| a.id().cmp(b.id()));
        changes
    }

    /// Advances time without observations: resolves event symptoms whose quiet window has
    /// passed, and resolves or forgets everything on entities silent for the stale period (the
    /// container is gone, or its signal stopped).
    pub fn tick(&mut self, now_ms: u64) -> Vec<SymptomChange> {
        let mut changes = Vec::new();
        let stale_ms = self.stale_ms;
        let rules = &self.rules;
        self.states.retain(|(index, _), state| {
            let rule = &rules[*index];
            let silent = now_ms.saturating_sub(state.last()) >= stale_ms;
            match state {
                State::Pending { .. } => !silent,
                State::Open { id, last_event, .. } => {
                    let quiet = rule.trigger == Trigger::Event
                        && now_ms.saturating_sub(*last_event) >= rule.resolve_window_ms();
                    if silent || quiet {
                        changes.push(SymptomChange::Resolved { id: id.clone(), resolved: UnixMillis(now_ms) });
                        false
                    } else {
                        true
                    }
                }
            }
        });
        changes.sort_by(|a, b| a.id().cmp(b.id()));
        changes
    }
}

fn open(rule: &Rule, entity: &EntityId, started: u64, changes: &mut Vec<SymptomChange>) -> SymptomId {
    let id = SymptomId::of(&rule.id, entity, UnixMillis(started));
    changes.push(SymptomChange::Opened {
        symptom: Symptom {
            id: id.clone(),
            kind: rule.kind,
            entity: entity.clone(),
            severity: rule.severity,
            rule: rule.id.clone(),
            threshold: Some(rule.threshold()),
            started: UnixMillis(started),
            resolved: None,
        },
    });
    id
}

fn step_sustained(
    rule: &Rule,
    stale_ms: u64,
    entity: &EntityId,
    state: Option<State>,
    obs: &Observation,
    changes: &mut Vec<SymptomChange>,
) -> Option<State> {
    let t = obs.time_ms;
    if let Some(state) = &state
        && t < state.last()
    {
        return Some(state.clone());
    }
    match state {
        None | Some(State::Pending { .. }) if !rule.holds(obs.value) => None,
        None => pending_or_open(rule, entity, t, t, changes),
        Some(State::Pending { since, last }) => {
            // A gap longer than the stale period means we do not know the condition held
            // throughout; start the window again.
            let since = if t - last >= stale_ms { t } else { since };
            pending_or_open(rule, entity, since, t, changes)
        }
        Some(State::Open { id, clear_since, last_event, .. }) => {
            if !rule.clear(obs.value) {
                return Some(State::Open { id, clear_since: None, last_event, last: t });
            }
            let clear_since = clear_since.unwrap_or(t);
            if t - clear_since >= rule.resolve_window_ms() {
                changes.push(SymptomChange::Resolved { id, resolved: UnixMillis(t) });
                None
            } else {
                Some(State::Open { id, clear_since: Some(clear_since), last_event, last: t })
            }
        }
    }
}

fn pending_or_open(
    rule: &Rule,
    entity: &EntityId,
    since: u64,
    t: u64,
    changes: &mut Vec<SymptomChange>,
) -> Option<State> {
    if t - since >= rule.window_ms() {
        let id = open(rule, entity, since, changes);
        Some(State::Open { id, clear_since: None, last_event: t, last: t })
    } else {
        Some(State::Pending { since, last: t })
    }
}

fn step_event(
    rule: &Rule,
    entity: &EntityId,
    state: Option<State>,
    obs: &Observation,
    changes: &mut Vec<SymptomChange>,
) -> Option<State> {
    let t = obs.time_ms;
    let event = rule.holds(obs.value);
    match state {
        Some(state) if t < state.last() => Some(state),
        None | Some(State::Pending { .. }) if event => {
            let id = open(rule, entity, t, changes);
            Some(State::Open { id, clear_since: None, last_event: t, last: t })
        }
        None | Some(State::Pending { .. }) => None,
        Some(State::Open { id, .. }) if event => Some(State::Open { id, clear_since: None, last_event: t, last: t }),
        Some(State::Open { id, last_event, .. }) => {
            if t - last_event >= rule.resolve_window_ms() {
                changes.push(SymptomChange::Resolved { id, resolved: UnixMillis(t) });
                None
            } else {
                Some(State::Open { id, clear_since: None, last_event, last: t })
            }
        }
    }
}

/// The observations a container's rates give, for `entity` (the caller maps the cgroup's pod
/// UID and container id to the container's name).
pub fn container_observations(entity: &EntityId, rates: &ContainerRates, time_ms: u64) -> Vec<Observation> {
    [
        (Signal::ContainerCpuUtilization, rates.cpu_utilization),
        (Signal::ContainerCpuThrottledFraction, rates.throttled_fraction),
        (Signal::ContainerMemoryUtilization, rates.memory_utilization),
        (Signal::ContainerOomKills, rates.new_oom_kills.map(|n| n as f64)),
    ]
    .into_iter()
    .filter_map(|(signal, value)| Some(Observation { signal, entity: entity.clone(), value: value?, time_ms }))
    .collect()
}

/// The observations the node's rates give.
pub fn node_observations(entity: &EntityId, rates: &NodeRates, time_ms: u64) -> Vec<Observation> {
    [
        (Signal::NodeCpuUtilization, rates.cpu_utilization),
        (Signal::NodeMemoryAvailableRatio, rates.memory_available_ratio),
        (Signal::NodePsiCpuSomeAvg10, rates.psi_cpu_some_avg10),
        (Signal::NodePsiMemorySomeAvg10, rates.psi_memory_some_avg10),
        (Signal::NodePsiIoSomeAvg10, rates.psi_io_some_avg10),
    ]
    .into_iter()
    .filter_map(|(signal, value)| Some(Observation { signal, entity: entity.clone(), value: value?, time_ms }))
    .collect()
}

#[cfg(test)]
mod tests;
