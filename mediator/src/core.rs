//! The mediator's state as plain values: the cluster index, the observed calls, the symptom book,
//! and what the change stream and the egress have been told. Every method is synchronous and
//! takes the time as an argument, so the whole flow is tested without a cluster or a clock.

use std::collections::BTreeMap;
use std::sync::Arc;
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
    pub topology: Arc<Topology>,
}

#[derive(Debug)]
pub struct Core {
    pub index: ClusterIndex,
    pub calls: CallTable,
    pub book: SymptomBook,
    rules: ClusterRules,
    call_ttl: Duration,
    /// The topology as the change stream last described it. Shared with `sent` while no change
    /// happened in between, so a large topology is held once, not twice.
    published: Arc<Topology>,
    /// The topology as of the last accepted batch; `None` makes the next batch a full snapshot.
    sent: Option<Arc<Topology>>,
    /// Symptom changes not yet carried by an accepted batch.
    unsent: Vec<SymptomChange>,
    pub agents: BTreeMap<String, AgentSeen>,
    /// Something the topology is built from changed since the last build.
    stale: bool,
}

impl Core {
    pub fn new(rules: ClusterRules, call_ttl: Duration) -> Self {
        Core {
            index: ClusterIndex::new(),
            calls: CallTable::default(),
            book: SymptomBook::default(),
            rules,
            call_ttl,
            published: Arc::new(Topology::default()),
            sent: None,
            unsent: Vec::new(),
            agents: BTreeMap::new(),
            stale: true,
        }
    }

    // Events feed no entity or edge, so they leave the topology as it is.
    pub fn apply(&mut self, object: &ClusterObject) {
        self.index.apply(object);
        self.stale |= object.kind() != ObjectKind::Event;
    }

    pub fn delete(&mut self, object: &ClusterObject) {
        self.index.delete(object);
        self.stale |= object.kind() != ObjectKind::Event;
    }

    pub fn replace(&mut self, kind: ObjectKind, objects: &[ClusterObject]) {
        self.index.replace(kind, objects);
        self.stale |= kind != ObjectKind::Event;
    }

    /// Joins one authenticated agent report; returns what it contributed and the stream events.
    pub fn ingest(&mut self, report: &AgentReport, now: UnixMillis) -> (IngestSummary, Vec<StreamEvent>) {
        let mut summary = IngestSummary::default();
        for observation in &report.connections {
            if matches!(self.calls.observe(&self.index, &report.node, observation, now), JoinOutcome::Joined { .. }) {
                summary.connections_resolved += 1;
                self.stale = true;
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

    /// Re-evaluates cluster symptoms, expires stale calls and rebuilds the topology when something
    /// it is built from changed; returns the
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
        let calls = self.calls.len();
        self.calls.expire(now, ttl);
        self.stale |= self.calls.len() != calls;
        if !std::mem::take(&mut self.stale) {
            return events;
        }
        let topology = Topology::build(&self.index, &self.calls);
        let delta = topology.delta_since(&self.published);
        // An unchanged topology keeps the old allocation, which the last batch may share.
        if !delta.is_empty() {
            events.push(StreamEvent::Topology { delta });
            self.published = Arc::new(topology);
        }
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
        let topology = Arc::clone(&self.published);
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
    pub fn batch_accepted(&mut self, topology: Arc<Topology>) {
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

#[cfg(test)]
mod tests {
    use causely_model::{EntityId, SymptomKind};

    use super::*;
    use crate::index::fixtures::{node, pod};

    fn core_with_a_pod() -> Core {
        let mut core = Core::new(ClusterRules { resolve_after_seconds: 0, ..ClusterRules::default() }, Duration::ZERO);
        core.apply(&node("n1").build());
        core.apply(&pod("shop", "web-1").on_node("n1").container("app").build());
        core
    }

    fn symptoms_in(batch: &EgressBatch) -> Vec<(SymptomKind, String)> {
        batch
            .symptoms
            .iter()
            .map(|c| match c {
                SymptomChange::Opened { symptom } => (symptom.kind, format!("opened {}", symptom.entity)),
                SymptomChange::Resolved { id, .. } => (SymptomKind::CrashLoop, format!("resolved {id}")),
            })
            .collect()
    }

    #[test]
    fn the_first_batch_is_a_snapshot_and_later_ones_carry_only_changes() {
        let mut core = core_with_a_pod();
        let events = core.tick(UnixMillis(1_000), true);
        assert!(events.iter().any(|e| matches!(e, StreamEvent::Topology { .. })), "{events:?}");
        let first = core.prepare_batch("c", 1, UnixMillis(1_000), false).expect("a first batch");
        assert!(is_snapshot(&first.batch.topology));
        assert!(!first.batch.topology.is_empty());
        core.batch_accepted(first.topology);

        core.tick(UnixMillis(2_000), true);
        assert!(core.prepare_batch("c", 2, UnixMillis(2_000), false).is_none(), "nothing changed, nothing to send");

        core.apply(&pod("shop", "web-2").on_node("n1").container("app").build());
        core.tick(UnixMillis(3_000), true);
        let second = core.prepare_batch("c", 2, UnixMillis(3_000), false).expect("a delta");
        let TopologyPayload::Delta { added_entities, removed_entities, .. } = &second.batch.topology else {
            panic!("expected a delta, got {:?}", second.batch.topology);
        };
        assert!(added_entities.iter().any(|e| e.id == EntityId::pod("shop", "web-2")), "{added_entities:?}");
        assert!(removed_entities.is_empty());
    }

    #[test]
    fn symptom_changes_ride_in_exactly_one_batch() {
        let mut core = core_with_a_pod();
        core.tick(UnixMillis(1_000), true);
        let first = core.prepare_batch("c", 1, UnixMillis(1_000), false).expect("snapshot");
        core.batch_accepted(first.topology);

        core.apply(&pod("shop", "web-1").on_node("n1").container("app").waiting("app", "CrashLoopBackOff").build());
        let events = core.tick(UnixMillis(2_000), true);
        assert!(events.iter().any(|e| matches!(e, StreamEvent::Symptom { .. })), "{events:?}");
        let batch = core.prepare_batch("c", 2, UnixMillis(2_000), false).expect("the crash loop");
        assert_eq!(symptoms_in(&batch.batch), [(SymptomKind::CrashLoop, "opened container/shop/web-1/app".into())]);
        core.batch_accepted(batch.topology);
        assert!(core.prepare_batch("c", 3, UnixMillis(2_000), false).is_none(), "sent once");
    }

    #[test]
    fn after_a_refused_batch_the_next_is_a_snapshot_with_every_open_symptom() {
        let mut core = core_with_a_pod();
        core.apply(&pod("shop", "web-1").on_node("n1").container("app").waiting("app", "CrashLoopBackOff").build());
        core.tick(UnixMillis(1_000), true);
        let first = core.prepare_batch("c", 1, UnixMillis(1_000), false).expect("snapshot");
        core.batch_accepted(first.topology);
        core.batch_failed();
        let again = core.prepare_batch("c", 2, UnixMillis(2_000), false).expect("a snapshot again");
        assert!(is_snapshot(&again.batch.topology));
        assert_eq!(symptoms_in(&again.batch).len(), 1, "the open crash loop is restated");
        let forced = core.prepare_batch("c", 3, UnixMillis(3_000), true).expect("a forced snapshot");
        assert!(is_snapshot(&forced.batch.topology));
    }

    #[test]
    fn agent_reports_are_recorded_and_their_symptoms_published() {
        let mut core = core_with_a_pod();
        let report: AgentReport = serde_json::from_value(serde_json::json!({
            "node": "n1", "agentVersion": "0.1.0", "seq": 4, "time": 10,
            "symptoms": [{"change": "opened", "symptom": {"id": "agent.cpu:container/shop/web-1/app:5",
                "kind": "high-cpu-utilization", "entity": "container/shop/web-1/app", "severity": "high",
                "rule": "agent.cpu", "started": 5}}]
        }))
        .unwrap();
        let (summary, events) = core.ingest(&report, UnixMillis(20));
        assert_eq!(summary.symptom_changes, 1);
        assert_eq!(events.len(), 1);
        assert_eq!(core.agents["n1"].seq, 4);
        let (again, events) = core.ingest(&report, UnixMillis(30));
        assert_eq!((again.symptom_changes, events.len()), (0, 0), "a replayed report changes nothing");
        assert_eq!(core.symptoms_view().open.len(), 1);
    }
}
