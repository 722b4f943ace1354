//! The symptom book: cluster findings and agent-reported changes merged into one list of open and recently
//! resolved symptoms, each opened once and resolved once.
//!
//! Hysteresis for cluster findings: a finding with a hold (`open_after_ms`) opens only after it has been
//! present on every reconcile for that long; an open symptom resolves only after its finding has been absent
//! for the rule's resolve grace, so a crash loop that flaps between Running and CrashLoopBackOff stays one
//! symptom. A symptom starts where the object says the condition began (`Finding::since`), else when the book
//! first saw it; its resolve time is the last time its finding was present.
//!
//! Agent changes are taken as the agent's detectors decided them, and replays are harmless: an Opened for a
//! symptom already open or already resolved, and a Resolved for one not open (or opened by another node's
//! agent), change nothing.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet, VecDeque};

use causely_model::{EntityId, Symptom, SymptomChange, SymptomId, UnixMillis};

use super::detect::Finding;
use crate::index::ClusterIndex;

/// How many resolved symptoms `recent` keeps by default.
pub const DEFAULT_RECENT: usize = 500;

/// An agent may report a symptom on a container before the pod's watch event reaches the index; its entity
/// must be missing for this long before the symptom counts as vanished.
const VANISH_GRACE_MS: u64 = 30_000;

type Key = (&'static str, EntityId);

#[derive(Debug)]
struct ClusterEntry {
    symptom: Symptom,
    last_seen: UnixMillis,
    resolve_after_ms: u64,
}

#[derive(Debug)]
struct AgentEntry {
    symptom: Symptom,
    /// The node whose agent reported it: only that agent may resolve it.
    node: Box<str>,
    received: UnixMillis,
}

/// Open and recently resolved symptoms from both sources.
#[derive(Debug)]
pub struct SymptomBook {
    cluster: HashMap<Key, ClusterEntry>,
    /// Findings still serving their hold, with when they were first seen.
    held: HashMap<Key, UnixMillis>,
    agent: HashMap<SymptomId, AgentEntry>,
    /// Resolved symptoms, newest first.
    recent: VecDeque<Symptom>,
    recent_limit: usize,
}

impl Default for SymptomBook {
    fn default() -> Self {
        SymptomBook::with_recent_limit(DEFAULT_RECENT)
    }
}

impl SymptomBook {
    pub fn new() -> Self {
        SymptomBook::default()
    }

    pub fn with_recent_limit(recent_limit: usize) -> Self {
        SymptomBook {
            cluster: HashMap::new(),
            held: HashMap::new(),
            agent: HashMap::new(),
            recent: VecDeque::new(),
            recent_limit,
        }
    }

    /// Takes the findings of one detection pass at `now` and returns the symptoms that opened and resolved.
    pub fn reconcile_cluster(&mut self, findings: Vec<Finding>, now: UnixMillis) -> Vec<SymptomChange> {
        let mut changes = Vec::new();
        let mut present: HashSet<Key> = HashSet::with_capacity(findings.len());
        for finding in findings {
            let key: Key = (finding.rule, finding.entity.clone());
            present.insert(key.clone());
            if let Some(entry) = self.cluster.get_mut(&key) {
                entry.last_seen = now;
                entry.resolve_after_ms = finding.resolve_after_ms;
                continue;
            }
            let first_seen = if finding.open_after_ms > 0 {
                let first_seen = *self.held.entry(key.clone()).or_insert(now);
                if now.saturating_since(first_seen) < finding.open_after_ms {
                    continue;
                }
                self.held.remove(&key);
                first_seen
            } else {
                now
            };
            let mut started = finding.since.unwrap_or(first_seen);
            let mut id = SymptomId::of(finding.rule, &finding.entity, started);
            if self.was_resolved(&id) {
                // The same occurrence came back after resolving (its object still dates it the same); it is a
                // new occurrence now, under a new id.
                started = now;
                id = SymptomId::of(finding.rule, &finding.entity, started);
            }
            let symptom = Symptom {
                id,
                kind: finding.kind,
                entity: finding.entity,
                severity: finding.severity,
                rule: finding.rule.to_owned(),
                threshold: finding.threshold,
                started,
                resolved: None,
            };
            changes.push(SymptomChange::Opened { symptom: symptom.clone() });
            self.cluster
                .insert(key, ClusterEntry { symptom, last_seen: now, resolve_after_ms: finding.resolve_after_ms });
        }
        self.held.retain(|key, _| present.contains(key));

        let mut gone: Vec<Key> = self
            .cluster
            .iter()
            .filter(|(key, entry)| {
                !present.contains(*key) && now.saturating_since(entry.last_seen) >= entry.resolve_after_ms
            })
            .map(|(key, _)| key.clone())
            .collect();
        gone.sort();
        for key in gone {
            if let Some(entry) = self.cluster.remove(&key) {
                changes.push(self.resolve(entry.symptom, entry.last_seen));
            }
        }
        changes
    }

    /// Takes the symptom changes one agent reported and returns those that changed the book.
    pub fn apply_agent(&mut self, node: &str, changes: &[SymptomChange], now: UnixMillis) -> Vec<SymptomChange> {
        let mut applied = Vec::new();
        for change in changes {
            match change {
                SymptomChange::Opened { symptom } => {
                    // An Opened that already carries a resolve time is not an opening; agents send Resolved.
                    let known = self.agent.contains_key(&symptom.id)
                        || self.was_resolved(&symptom.id)
                        || self.cluster.values().any(|e| e.symptom.id == symptom.id);
                    if symptom.resolved.is_some() || known {
                        continue;
                    }
                    let entry = AgentEntry { symptom: symptom.clone(), node: node.into(), received: now };
                    self.agent.insert(symptom.id.clone(), entry);
                    applied.push(change.clone());
                }
                SymptomChange::Resolved { id, resolved } => {
                    if self.agent.get(id).is_none_or(|e| *e.node != *node) {
                        continue;
                    }
                    let Some(entry) = self.agent.remove(id) else { continue };
                    // A skewed agent clock must not resolve a symptom before it started or after now.
                    let at = (*resolved).min(now).max(entry.symptom.started);
                    applied.push(self.resolve(entry.symptom, at));
                }
            }
        }
        applied
    }

    /// Resolves the open symptoms whose entity the index no longer holds (a deleted pod, container or node).
    /// Call it only once the index has been listed in full, or everything not yet listed resolves.
    pub fn resolve_vanished(&mut self, index: &ClusterIndex, now: UnixMillis) -> Vec<SymptomChange> {
        let mut changes = Vec::new();
        let mut gone: Vec<Key> = self.cluster.keys().filter(|(_, entity)| !index.contains(entity)).cloned().collect();
        gone.sort();
        for key in gone {
            if let Some(entry) = self.cluster.remove(&key) {
                changes.push(self.resolve(entry.symptom, now));
            }
        }
        self.held.retain(|(_, entity), _| index.contains(entity));
        let mut gone: Vec<SymptomId> = self
            .agent
            .iter()
            .filter(|(_, e)| now.saturating_since(e.received) >= VANISH_GRACE_MS && !index.contains(&e.symptom.entity))
            .map(|(id, _)| id.clone())
            .collect();
        gone.sort();
        for id in gone {
            if let Some(entry) = self.agent.remove(&id) {
                changes.push(self.resolve(entry.symptom, now));
            }
        }
        changes
    }

    /// Resolves every open symptom the agent on `node` reported, for when that agent is gone for good (its node
    /// was deleted, or it stopped reporting) and will never send their Resolved.
    pub fn resolve_agent(&mut self, node: &str, now: UnixMillis) -> Vec<SymptomChange> {
        let mut gone: Vec<SymptomId> =
            self.agent.iter().filter(|(_, e)| *e.node == *node).map(|(id, _)| id.clone()).collect();
        gone.sort();
        let mut changes = Vec::new();
        for id in gone {
            if let Some(entry) = self.agent.remove(&id) {
                changes.push(self.resolve(entry.symptom, now));
            }
        }
        changes
    }

    /// Open symptoms, most severe first, then longest open first.
    pub fn open(&self) -> Vec<&Symptom> {
        let mut open: Vec<&Symptom> =
            self.cluster.values().map(|e| &e.symptom).chain(self.agent.values().map(|e| &e.symptom)).collect();
        open.sort_by(|a, b| (Reverse(a.severity), a.started, &a.id).cmp(&(Reverse(b.severity), b.started, &b.id)));
        open
    }

    /// Resolved symptoms, most recently resolved first.
    pub fn recent(&self) -> Vec<&Symptom> {
        self.recent.iter().collect()
    }

    pub fn open_count(&self) -> usize {
        self.cluster.len() + self.agent.len()
    }

    /// An Opened change for every open symptom, for a full snapshot.
    pub fn all_open_as_changes(&self) -> Vec<SymptomChange> {
        self.open().into_iter().map(|symptom| SymptomChange::Opened { symptom: symptom.clone() }).collect()
    }

    fn was_resolved(&self, id: &SymptomId) -> bool {
        self.recent.iter().any(|s| s.id == *id)
    }

    fn resolve(&mut self, mut symptom: Symptom, at: UnixMillis) -> SymptomChange {
        symptom.resolved = Some(at);
        let change = SymptomChange::Resolved { id: symptom.id.clone(), resolved: at };
        self.recent.push_front(symptom);
        self.recent.truncate(self.recent_limit);
        change
    }
}
