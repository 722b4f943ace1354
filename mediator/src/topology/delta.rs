//! Topology payloads: the whole graph as a snapshot, the difference between two graphs as a delta, and
//! applying either to a graph held elsewhere (the CLI's copy, a test's).

use causely_model::TopologyPayload;

use super::Topology;

impl Topology {
    pub fn snapshot(&self) -> TopologyPayload {
        TopologyPayload::Snapshot {
            entities: self.entities.values().cloned().collect(),
            edges: self.edges.iter().cloned().collect(),
        }
    }

    /// What changed from `previous` to `self`. An entity whose labels changed is sent again as added; the
    /// receiver replaces it.
    pub fn delta_since(&self, previous: &Topology) -> TopologyPayload {
        TopologyPayload::Delta {
            added_entities: self
                .entities
                .values()
                .filter(|entity| previous.entities.get(&entity.id) != Some(*entity))
                .cloned()
                .collect(),
            removed_entities: previous.entities.keys().filter(|id| !self.entities.contains_key(id)).cloned().collect(),
            added_edges: self.edges.difference(&previous.edges).cloned().collect(),
            removed_edges: previous.edges.difference(&self.edges).cloned().collect(),
        }
    }

    /// Applies a payload: a snapshot replaces the graph; a delta removes, then adds. A delta is applied as
    /// written: edges of a removed entity go only if the delta removes them too, as `delta_since` does.
    pub fn apply_payload(&mut self, payload: &TopologyPayload) {
        match payload {
            TopologyPayload::Snapshot { entities, edges } => {
                self.entities = entities.iter().map(|e| (e.id.clone(), e.clone())).collect();
                self.edges = edges.iter().cloned().collect();
            }
            TopologyPayload::Delta { added_entities, removed_entities, added_edges, removed_edges } => {
                for id in removed_entities {
                    self.entities.remove(id);
                }
                for edge in removed_edges {
                    self.edges.remove(edge);
                }
                for entity in added_entities {
                    self.entities.insert(entity.id.clone(), entity.clone());
                }
                self.edges.extend(added_edges.iter().cloned());
            }
        }
    }
}
