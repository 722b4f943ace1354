//! The mediator's state as plain values: the cluster index, the observed calls, the symptom book,
//! and what the change stream and the egress have been told. Every method is synchronous and
//! takes the time as an argument, so the whole flow is tested without a cluster or a clock.

use std::collections::BTreeMap;
use std::time::Duration;

use causely_model::api::{StreamEvent, SymptomsView, TopologyView};
use causely_model::{AgentReport, EgressBatch, SCHEMA_VERSION, SymptomChange, TopologyPayload, UnixMillis};
use serde::Serialize;

use crate::index::{ClusterIndex, ClusterObject, ObjectKind};
use crate::symptoms::{ClusterRules, SymptomBook, detect};
use crate::topology::{CallTable, JoinOutcome, Topology};

/// The last report seen from each node's agent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSeen {
    pub agent_version: String,
    pub seq: u64,
    pub time: UnixMillis,
    pub received: UnixMillis,
}

/// What one report contributed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestSummary {
    pub connections_resolved: u64,
    pub connections_unresolved: u64,
    pub symptom_changes: u64,
}

/// A batch ready for the guard and the store, and the topology it brings the receiver to.
#[derive(Debug)]
pub struct PreparedBatch {
    pub batch: EgressBatch,
    pub topology: Topology,
}

#[derive(Debug)]
pub struct Core {
    pub index: ClusterIndex,
    pub calls: CallTable,
    pub book: SymptomBook,
    rules: ClusterRules,
    call_ttl: Duration,
    /// The topology as the change stream last described it.
    published: Topology,
    /// The topology as of the last accepted batch; `None` makes the next batch a full snapshot.
    sent: Option<Topology>,
    /// Symptom changes not yet carried by an accepted batch.
    unsent: Vec<SymptomChange>,
    pub agents: BTreeMap<String, AgentSeen>,
}

impl Core {
    pub fn new(rules: ClusterRules, call_ttl: Duration) -> Self {
        Core {
            index: ClusterIndex::new(),
            calls: CallTable::default(),
            book: SymptomBook::default(),
            rules,
            call_ttl,
            published: Topology::default(),
            sent: None,
            unsent: Vec::new(),
            agents: BTreeMap::new(),
        }
    }

    pub fn apply(&mut self, object: &ClusterObject) {
        self.index.apply(object);
    }

    pub fn delete(&mut self, object: &ClusterObject) {
        self.index.delete(object);
    }

    pub fn replace(&mut self, kind: ObjectKind, objects: &[ClusterObject]) {
        self.index.replace(kind, objects);
    }

    /// Joins one authenticated agent report; returns what it contributed and the stream events.
    pub fn ingest(&mut self, report: &AgentReport, now: UnixMillis) -> (IngestSummary, Vec<StreamEvent>) {
        let mut summary = IngestSummary::default();
        for observation in &report.connections {
            if matches!(self.calls.observe(&self.index, &report.node, observation, now), JoinOutcome::Joined { .. }) {
                summary.connections_resolved += 1;
            } else {
                summary.connections_unresolved += 1;
            }
        }
        let changes = self.book.apply_agent(&report.node, &report.symptoms, now);
        summary.symptom_changes = changes.len() as u64;
        self.agents.insert(
            report.node.clone(),
            AgentSeen {
                agent_version: report.agent_version.clone(),
                seq: report.seq,
                time: report.time,
                received: now,
            },
        );
        (summary, self.record(changes))
    }

    fn record(&mut self, changes: Vec<SymptomChange>) -> Vec<StreamEvent> {
        let events = changes.iter().map(|change| StreamEvent::Symptom { change: change.clone() }).collect();
        self.unsent.extend(changes);
        events
    }

    /// Re-evaluates cluster symptoms, expires stale calls and rebuilds the topology; returns the
    /// stream events for what changed. `listed` says the index holds a full list of every kind:
    /// only then does an entity's absence mean it is gone.
    pub fn tick(&mut self, now: UnixMillis, listed: bool) -> Vec<StreamEvent> {
        let findings = detect(&self.index, now, &self.rules);
        let mut changes = self.book.reconcile_cluster(findings, now);
        if listed {
            changes.extend(self.book.resolve_vanished(&self.index, now));
        }
        let mut events = self.record(changes);
        let ttl = u64::try_from(self.call_ttl.as_millis()).unwrap_or(u64::MAX);
        self.calls.expire(now, ttl);
        let topology = Topology::build(&self.index, &self.calls);
        let delta = topology.delta_since(&self.published);
        if !delta.is_empty() {
            events.push(StreamEvent::Topology { delta });
        }
        self.published = topology;
        events
    }

    /// The next batch: a snapshot (with every open symptom) when the receiver's state is unknown
    /// or `snapshot` is asked for, else the changes since the last accepted batch. `None` when
    /// there is nothing to say. The pending symptom changes move into the batch.
    pub fn prepare_batch(
        &mut self,
        cluster_id: &str,
        seq: u64,
        now: UnixMillis,
        snapshot: bool,
    ) -> Option<PreparedBatch> {
        let topology = self.published.clone();
        let (payload, symptoms) = match (&self.sent, snapshot) {
            (Some(sent), false) => {
                let delta = topology.delta_since(sent);
                if delta.is_empty() && self.unsent.is_empty() {
                    return None;
                }
                (delta, std::mem::take(&mut self.unsent))
            }
            _ => {
                self.unsent.clear();
                (topology.snapshot(), self.book.all_open_as_changes())
            }
        };
        let batch = EgressBatch {
            cluster_id: cluster_id.to_owned(),
            seq,
            time: now,
            schema_version: SCHEMA_VERSION,
            topology: payload,
            symptoms,
        };
        Some(PreparedBatch { batch, topology })
    }

    /// The batch was accepted: the receiver will reach `topology`.
    pub fn batch_accepted(&mut self, topology: Topology) {
        self.sent = Some(topology);
    }

    /// The batch was refused or could not be stored: the receiver's state is now unknown, so the
    /// next batch is a full snapshot (which also carries every open symptom).
    pub fn batch_failed(&mut self) {
        self.sent = None;
    }

    pub fn topology_view(&self) -> TopologyView {
        TopologyView {
            entities: self.published.entities.values().cloned().collect(),
            edges: self.published.edges.iter().cloned().collect(),
        }
    }

    pub fn symptoms_view(&self) -> SymptomsView {
        SymptomsView {
            open: self.book.open().into_iter().cloned().collect(),
            recent: self.book.recent().into_iter().cloned().collect(),
        }
    }

    pub fn topology_size(&self) -> (usize, usize) {
        (self.published.entities.len(), self.published.edges.len())
    }
}

/// Whether a payload is a snapshot (used for logs and metrics).
pub fn is_snapshot(payload: &TopologyPayload) -> bool {
    matches!(payload, TopologyPayload::Snapshot { .. })
}
