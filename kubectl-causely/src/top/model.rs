//! The client-side copy of the mediator's topology, symptoms and egress status that `top` shows:
//! filled from `/v1/topology` and `/v1/symptoms`, kept current by the change stream's events.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use causely_model::api::{EgressStatus, StreamEvent, SymptomsView, TopologyView};
use causely_model::{Edge, Entity, EntityId, Relation, Severity, Symptom, SymptomChange, SymptomId, TopologyPayload};

/// How many resolved symptoms are kept, as the mediator keeps (docs/mediator.md).
pub const RECENT_KEPT: usize = 500;

/// Topology, symptoms and egress status as last heard from the mediator.
///
/// Every change is an idempotent set operation (add, remove, open, resolve by id), so events that a
/// snapshot already contains can be applied again on top of it without harm: the feed subscribes to
/// the stream before it reads the snapshot, and nothing falls between the two.
#[derive(Debug, Default, Clone)]
pub struct Store {
    entities: BTreeMap<EntityId, Entity>,
    outgoing: HashMap<EntityId, BTreeSet<Edge>>,
    incoming: HashMap<EntityId, BTreeSet<Edge>>,
    edge_count: usize,
    open: HashMap<SymptomId, Symptom>,
    /// The ids of the open symptoms on each entity, so rows can show theirs without a scan.
    open_by_entity: HashMap<EntityId, BTreeSet<SymptomId>>,
    /// Newest first.
    recent: VecDeque<Symptom>,
    egress: Option<EgressStatus>,
    /// Bumped on every topology change, so derived rows are rebuilt only when needed.
    topology_generation: u64,
    /// Bumped on every symptom change.
    symptoms_generation: u64,
}

impl Store {
    /// Replaces everything with a fresh read of `/v1/topology` and `/v1/symptoms`.
    pub fn replace(&mut self, topology: TopologyView, symptoms: SymptomsView) {
        self.set_topology(topology.entities, topology.edges);
        self.open.clear();
        self.open_by_entity.clear();
        for symptom in symptoms.open {
            self.insert_open(symptom);
        }
        self.recent = symptoms.recent.into_iter().take(RECENT_KEPT).collect();
        self.symptoms_generation += 1;
    }

    pub fn set_egress(&mut self, status: EgressStatus) {
        self.egress = Some(status);
    }

    /// Applies one change-stream event. `Resync` changes nothing here: the feed re-reads and
    /// replaces.
    pub fn apply(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Symptom { change } => self.apply_symptom(change),
            StreamEvent::Topology { delta } => self.apply_topology(delta),
            StreamEvent::Egress { status } => self.egress = Some(status),
            StreamEvent::Resync {} => {}
        }
    }

    fn set_topology(&mut self, entities: Vec<Entity>, edges: Vec<Edge>) {
        self.entities = entities.into_iter().map(|e| (e.id.clone(), e)).collect();
        self.outgoing.clear();
        self.incoming.clear();
        self.edge_count = 0;
        for edge in edges {
            self.add_edge(edge);
        }
        self.topology_generation += 1;
    }

    fn apply_topology(&mut self, payload: TopologyPayload) {
        match payload {
            TopologyPayload::Snapshot { entities, edges } => self.set_topology(entities, edges),
            TopologyPayload::Delta { added_entities, removed_entities, added_edges, removed_edges } => {
                for edge in removed_edges {
                    self.remove_edge(&edge);
                }
                for id in removed_entities {
                    self.remove_entity(&id);
                }
                for entity in added_entities {
                    self.entities.insert(entity.id.clone(), entity);
                }
                for edge in added_edges {
                    self.add_edge(edge);
                }
                self.topology_generation += 1;
            }
        }
    }

    /// Removes an entity with every edge that touches it, so no edge ever names a missing entity.
    fn remove_entity(&mut self, id: &EntityId) {
        if self.entities.remove(id).is_none() {
            return;
        }
        let touching: Vec<Edge> = self.outgoing(id).chain(self.incoming(id)).cloned().collect();
        for edge in touching {
            self.remove_edge(&edge);
        }
    }

    /// Adds an edge between two entities the store has; an edge to a missing entity is dropped
    /// (the mediator never sends one, but an event replayed on a newer snapshot could).
    fn add_edge(&mut self, edge: Edge) {
        if !self.entities.contains_key(&edge.from) || !self.entities.contains_key(&edge.to) {
            return;
        }
        if self.outgoing.entry(edge.from.clone()).or_default().insert(edge.clone()) {
            self.edge_count += 1;
        }
        self.incoming.entry(edge.to.clone()).or_default().insert(edge);
    }

    fn remove_edge(&mut self, edge: &Edge) {
        if let Some(set) = self.outgoing.get_mut(&edge.from)
            && set.remove(edge)
        {
            self.edge_count -= 1;
            if set.is_empty() {
                self.outgoing.remove(&edge.from);
            }
        }
        if let Some(set) = self.incoming.get_mut(&edge.to) {
            set.remove(edge);
            if set.is_empty() {
                self.incoming.remove(&edge.to);
            }
        }
    }

    fn apply_symptom(&mut self, change: SymptomChange) {
        match change {
            SymptomChange::Opened { symptom } => {
                // An occurrence seen resolved already stays resolved (a replayed event).
                if !self.recent.iter().any(|s| s.id == symptom.id) {
                    self.insert_open(symptom);
                }
            }
            SymptomChange::Resolved { id, resolved } => {
                if let Some(mut symptom) = self.open.remove(&id) {
                    if let Some(ids) = self.open_by_entity.get_mut(&symptom.entity) {
                        ids.remove(&id);
                        if ids.is_empty() {
                            self.open_by_entity.remove(&symptom.entity);
                        }
                    }
                    symptom.resolved = Some(resolved);
                    self.recent.push_front(symptom);
                    self.recent.truncate(RECENT_KEPT);
                }
            }
        }
        self.symptoms_generation += 1;
    }

    fn insert_open(&mut self, symptom: Symptom) {
        self.open_by_entity.entry(symptom.entity.clone()).or_default().insert(symptom.id.clone());
        self.open.insert(symptom.id.clone(), symptom);
    }

    pub fn entity(&self, id: &EntityId) -> Option<&Entity> {
        self.entities.get(id)
    }

    pub fn entities(&self) -> impl Iterator<Item = &Entity> {
        self.entities.values()
    }

    pub fn entity_count(&self) -> usize {
        self.entities.len()
    }

    pub fn edge_count(&self) -> usize {
        self.edge_count
    }

    /// Edges that start at `id`, in edge order.
    pub fn outgoing<'a>(&'a self, id: &EntityId) -> impl Iterator<Item = &'a Edge> + use<'a> {
        self.outgoing.get(id).into_iter().flatten()
    }

    /// Edges that end at `id`, in edge order.
    pub fn incoming<'a>(&'a self, id: &EntityId) -> impl Iterator<Item = &'a Edge> + use<'a> {
        self.incoming.get(id).into_iter().flatten()
    }

    /// The entities `id` points to with `relation` (e.g. a pod's node for `runs-on`).
    pub fn targets<'a>(&'a self, id: &EntityId, relation: Relation) -> impl Iterator<Item = &'a EntityId> + use<'a> {
        self.outgoing(id).filter(move |e| e.relation == relation).map(|e| &e.to)
    }

    /// The entities that point to `id` with `relation` (e.g. a node's pods for `runs-on`).
    pub fn sources<'a>(&'a self, id: &EntityId, relation: Relation) -> impl Iterator<Item = &'a EntityId> + use<'a> {
        self.incoming(id).filter(move |e| e.relation == relation).map(|e| &e.from)
    }

    /// Open symptoms, most severe first, then newest first, then by id (a stable order).
    pub fn open_symptoms(&self) -> Vec<&Symptom> {
        let mut open: Vec<&Symptom> = self.open.values().collect();
        open.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.started.cmp(&a.started)).then(a.id.cmp(&b.id)));
        open
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Recently resolved symptoms, newest first.
    pub fn recent_symptoms(&self) -> impl Iterator<Item = &Symptom> {
        self.recent.iter()
    }

    /// The open symptoms on one entity.
    pub fn open_on<'a>(&'a self, id: &EntityId) -> impl Iterator<Item = &'a Symptom> + use<'a> {
        self.open_by_entity.get(id).into_iter().flatten().filter_map(|s| self.open.get(s))
    }

    /// The most severe open symptom's severity on one entity, and how many are open there.
    pub fn worst_on(&self, id: &EntityId) -> Option<(Severity, usize)> {
        let ids = self.open_by_entity.get(id)?;
        let worst = ids.iter().filter_map(|s| self.open.get(s)).map(|s| s.severity).max()?;
        Some((worst, ids.len()))
    }

    /// A symptom by id, open or recently resolved.
    pub fn symptom(&self, id: &SymptomId) -> Option<&Symptom> {
        self.open.get(id).or_else(|| self.recent.iter().find(|s| &s.id == id))
    }

    pub fn egress(&self) -> Option<&EgressStatus> {
        self.egress.as_ref()
    }

    pub fn topology_generation(&self) -> u64 {
        self.topology_generation
    }

    pub fn symptoms_generation(&self) -> u64 {
        self.symptoms_generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::testdata::{node_not_ready, shop};
    use causely_model::UnixMillis;

    fn delta(
        added: Vec<Entity>,
        removed: Vec<EntityId>,
        added_edges: Vec<Edge>,
        removed_edges: Vec<Edge>,
    ) -> StreamEvent {
        StreamEvent::Topology {
            delta: TopologyPayload::Delta {
                added_entities: added,
                removed_entities: removed,
                added_edges,
                removed_edges,
            },
        }
    }

    #[test]
    fn a_snapshot_fills_the_store_and_indexes_edges_both_ways() {
        let store = shop();
        let pod = EntityId::pod("shop", "web-1");
        assert_eq!(store.targets(&pod, Relation::RunsOn {}).collect::<Vec<_>>(), [&EntityId::node("n1")]);
        assert!(store.sources(&EntityId::node("n1"), Relation::RunsOn {}).any(|p| p == &pod));
        assert_eq!(store.edge_count(), store.outgoing.values().map(BTreeSet::len).sum::<usize>());
    }

    #[test]
    fn a_topology_delta_adds_and_removes_entities_and_edges() {
        let mut store = shop();
        let before = store.topology_generation();
        let pod = EntityId::pod("shop", "web-3");
        let runs_on = Edge::new(pod.clone(), Relation::RunsOn {}, EntityId::node("n1"));
        store.apply(delta(vec![Entity::new(pod.clone())], vec![], vec![runs_on.clone()], vec![]));
        assert!(store.entity(&pod).is_some());
        assert!(store.sources(&EntityId::node("n1"), Relation::RunsOn {}).any(|p| p == &pod));
        store.apply(delta(vec![], vec![pod.clone()], vec![], vec![runs_on]));
        assert!(store.entity(&pod).is_none());
        assert!(!store.sources(&EntityId::node("n1"), Relation::RunsOn {}).any(|p| p == &pod));
        assert_eq!(store.topology_generation(), before + 2);
    }

    #[test]
    fn events_the_snapshot_already_holds_change_nothing_when_applied_again() {
        let mut store = shop();
        let edges = store.edge_count();
        let entities = store.entity_count();
        let existing = Edge::new(EntityId::pod("shop", "web-1"), Relation::RunsOn {}, EntityId::node("n1"));
        store.apply(delta(vec![Entity::new(EntityId::node("n1"))], vec![], vec![existing], vec![]));
        assert_eq!((store.entity_count(), store.edge_count()), (entities, edges));
        let symptom = node_not_ready("n1", 1_000);
        store.apply(StreamEvent::Symptom { change: SymptomChange::Opened { symptom: symptom.clone() } });
        store.apply(StreamEvent::Symptom { change: SymptomChange::Opened { symptom: symptom.clone() } });
        assert_eq!(store.open_count(), 1);
        let resolved = SymptomChange::Resolved { id: symptom.id.clone(), resolved: UnixMillis(2_000) };
        store.apply(StreamEvent::Symptom { change: resolved.clone() });
        store.apply(StreamEvent::Symptom { change: resolved });
        store.apply(StreamEvent::Symptom { change: SymptomChange::Opened { symptom } });
        assert_eq!(store.open_count(), 0);
        assert_eq!(store.recent_symptoms().count(), 1);
    }

    #[test]
    fn a_resolved_symptom_moves_to_recent_with_its_resolution_time() {
        let mut store = shop();
        let symptom = node_not_ready("n1", 1_000);
        store.apply(StreamEvent::Symptom { change: SymptomChange::Opened { symptom: symptom.clone() } });
        assert_eq!(store.open_on(&EntityId::node("n1")).count(), 1);
        assert_eq!(store.worst_on(&EntityId::node("n1")), Some((causely_model::Severity::Critical, 1)));
        store.apply(StreamEvent::Symptom {
            change: SymptomChange::Resolved { id: symptom.id.clone(), resolved: UnixMillis(5_000) },
        });
        assert_eq!(store.open_on(&EntityId::node("n1")).count(), 0);
        assert_eq!(store.worst_on(&EntityId::node("n1")), None);
        let recent: Vec<_> = store.recent_symptoms().collect();
        assert_eq!(recent[0].id, symptom.id);
        assert_eq!(recent[0].resolved, Some(UnixMillis(5_000)));
    }

    #[test]
    fn open_symptoms_list_the_most_severe_first_then_the_newest() {
        use causely_model::Severity;
        let mut store = Store::default();
        let mut low = node_not_ready("a", 3_000);
        low.severity = Severity::Low;
        let old = node_not_ready("b", 1_000);
        let new = node_not_ready("c", 2_000);
        for symptom in [low, old, new] {
            store.apply(StreamEvent::Symptom { change: SymptomChange::Opened { symptom } });
        }
        let order: Vec<String> = store.open_symptoms().iter().map(|s| s.entity.to_string()).collect();
        assert_eq!(order, ["node/c", "node/b", "node/a"]);
    }

    #[test]
    fn the_recent_list_keeps_only_as_many_as_the_mediator() {
        let mut store = Store::default();
        for i in 0..(RECENT_KEPT as u64 + 10) {
            let symptom = node_not_ready("n1", i);
            let id = symptom.id.clone();
            store.apply(StreamEvent::Symptom { change: SymptomChange::Opened { symptom } });
            store.apply(StreamEvent::Symptom { change: SymptomChange::Resolved { id, resolved: UnixMillis(i + 1) } });
        }
        assert_eq!(store.recent_symptoms().count(), RECENT_KEPT);
        assert_eq!(store.recent_symptoms().next().and_then(|s| s.resolved), Some(UnixMillis(RECENT_KEPT as u64 + 10)));
    }

    #[test]
    fn edges_never_name_a_missing_entity() {
        let mut store = shop();
        let node = EntityId::node("n1");
        assert!(store.sources(&node, Relation::RunsOn {}).count() > 0);
        store.apply(delta(vec![], vec![node.clone()], vec![], vec![]));
        assert_eq!(store.sources(&node, Relation::RunsOn {}).count(), 0);
        assert!(store.targets(&EntityId::pod("shop", "web-1"), Relation::RunsOn {}).next().is_none());
        let dangling = Edge::new(EntityId::pod("shop", "web-1"), Relation::RunsOn {}, node.clone());
        let edges = store.edge_count();
        store.apply(delta(vec![], vec![], vec![dangling], vec![]));
        assert_eq!(store.edge_count(), edges, "an edge to a missing node is not kept");
    }

    #[test]
    fn egress_events_replace_the_status() {
        let mut store = Store::default();
        assert!(store.egress().is_none());
        let status = EgressStatus { batches_accepted: 7, ..EgressStatus::default() };
        store.apply(StreamEvent::Egress { status: status.clone() });
        assert_eq!(store.egress(), Some(&status));
    }
}
