//! The service topology: entities (nodes, namespaces, pods, containers, services, workloads) and the edges
//! between them, built from the cluster index and the calls agents observed.

mod calls;
mod delta;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use causely_model::{Edge, Entity, EntityId, Relation};

use crate::index::records::{Labels, PodRecord};
use crate::index::{ClusterIndex, NamespaceIndex};

pub use calls::{CallTable, JoinOutcome, JoinStats};

/// The whole graph at one moment. Every edge's ends are entities of the graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub entities: BTreeMap<EntityId, Entity>,
    pub edges: BTreeSet<Edge>,
}

fn entity(id: EntityId, labels: &Labels) -> Entity {
    Entity { id, labels: labels.to_map() }
}

impl Topology {
    /// The topology of the indexed objects plus the observed calls. Edges whose ends are not (or no longer)
    /// indexed are left out: an owner not yet seen, a node deleted before its pods, a call to a workload that
    /// has gone.
    pub fn build(index: &ClusterIndex, calls: &CallTable) -> Topology {
        let mut topology = Topology::default();
        for (name, node) in index.node_records() {
            topology.add(entity(EntityId::node(name), &node.labels));
        }
        for (ns, bucket) in index.namespaces() {
            topology.add(Entity::new(EntityId::ns(ns)));
            for (kind, objects) in &bucket.workloads {
                for (name, workload) in objects {
                    let id = EntityId::workload(*kind, ns, name.as_ref());
                    if let Some(owner) = &workload.owner {
                        let owner = EntityId::workload(owner.kind, ns, owner.name.as_ref());
                        topology.edges.insert(Edge::new(id.clone(), Relation::OwnedBy {}, owner));
                    }
                    topology.add(entity(id, &workload.labels));
                }
            }
            for (name, pod) in &bucket.pods {
                topology.add_pod(ns, name, pod);
            }
            topology.add_services(ns, bucket);
        }
        topology.edges.extend(calls.edges(index));
        let entities = &topology.entities;
        topology.edges.retain(|e| entities.contains_key(&e.from) && entities.contains_key(&e.to));
        topology
    }

    fn add(&mut self, entity: Entity) {
        self.entities.insert(entity.id.clone(), entity);
    }

    fn add_pod(&mut self, ns: &str, name: &str, pod: &PodRecord) {
        let id = EntityId::pod(ns, name);
        for container in &pod.containers {
            let container = EntityId::container(ns, name, container.name.as_ref());
            self.edges.insert(Edge::new(container.clone(), Relation::RunsOn {}, id.clone()));
            self.add(Entity::new(container));
        }
        if let Some(node) = &pod.node {
            self.edges.insert(Edge::new(id.clone(), Relation::RunsOn {}, EntityId::node(node.as_ref())));
        }
        if let Some(owner) = &pod.owner {
            let owner = EntityId::workload(owner.kind, ns, owner.name.as_ref());
            self.edges.insert(Edge::new(id.clone(), Relation::OwnedBy {}, owner));
        }
        self.add(entity(id, &pod.labels));
    }

    /// Services and their `selects` edges. Pods with equal labels share one label set, so selection is decided
    /// once per distinct set, and each service only looks at the sets that carry the rarest pair of its
    /// selector: a plain scan would cost services x pods in a large namespace.
    fn add_services(&mut self, ns: &str, bucket: &NamespaceIndex) {
        let mut groups: HashMap<usize, (&Labels, Vec<&str>)> = HashMap::new();
        for (name, pod) in &bucket.pods {
            groups.entry(pod.labels.identity()).or_insert_with(|| (&pod.labels, Vec::new())).1.push(name.as_ref());
        }
        let mut postings: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (key, (labels, _)) in &groups {
            for pair in labels.iter() {
                postings.entry(pair).or_default().push(*key);
            }
        }
        for (name, service) in &bucket.services {
            let id = EntityId::service(ns, name.as_ref());
            // An empty selector selects nothing; a pair no pod carries leaves no candidates.
            let lists: Option<Vec<&Vec<usize>>> = service.selector.iter().map(|pair| postings.get(&pair)).collect();
            let candidates = lists.and_then(|lists| lists.into_iter().min_by_key(|keys| keys.len()));
            for key in candidates.into_iter().flatten() {
                let Some((labels, pods)) = groups.get(key) else { continue };
                if labels.selected_by(&service.selector) {
                    for pod in pods {
                        self.edges.insert(Edge::new(id.clone(), Relation::Selects {}, EntityId::pod(ns, *pod)));
                    }
                }
            }
            self.add(entity(id, &service.labels));
        }
    }
}
