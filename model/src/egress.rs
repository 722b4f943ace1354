//! The only payload that leaves the cluster: an `EgressBatch` of topology and symptom changes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::edge::Edge;
use crate::entity::Entity;
use crate::id::EntityId;
use crate::symptom::SymptomChange;
use crate::time::UnixMillis;

/// Version of the egress wire format; bumped on any change to the types in this module or the
/// types they contain.
pub const SCHEMA_VERSION: u32 = 1;

/// The topology part of a batch: either the whole graph or the changes since the previous batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum TopologyPayload {
    Snapshot {
        entities: Vec<Entity>,
        edges: Vec<Edge>,
    },
    Delta {
        #[serde(default)]
        added_entities: Vec<Entity>,
        #[serde(default)]
        removed_entities: Vec<EntityId>,
        #[serde(default)]
        added_edges: Vec<Edge>,
        #[serde(default)]
        removed_edges: Vec<Edge>,
    },
}

impl TopologyPayload {
    /// True when the payload carries no change at all.
    pub fn is_empty(&self) -> bool {
        match self {
            TopologyPayload::Snapshot { entities, edges } => entities.is_empty() && edges.is_empty(),
            TopologyPayload::Delta { added_entities, removed_entities, added_edges, removed_edges } => {
                added_entities.is_empty()
                    && removed_entities.is_empty()
                    && added_edges.is_empty()
                    && removed_edges.is_empty()
            }
        }
    }
}

/// One unit of egress. `seq` increases by one per batch and per cluster, so the receiver and the
/// ledger can both detect a gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressBatch {
    #[schemars(schema_with = "crate::schema::cluster_id_schema")]
    pub cluster_id: String,
    pub seq: u64,
    pub time: UnixMillis,
    #[schemars(schema_with = "crate::schema::schema_version_schema")]
    pub schema_version: u32,
    pub topology: TopologyPayload,
    #[serde(default)]
    pub symptoms: Vec<SymptomChange>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::Relation;
    use crate::symptom::SymptomId;

    fn delta_batch() -> EgressBatch {
        EgressBatch {
            cluster_id: "prod-eu-1".into(),
            seq: 42,
            time: UnixMillis(1_700_000_000_000),
            schema_version: SCHEMA_VERSION,
            topology: TopologyPayload::Delta {
                added_entities: vec![Entity::new(EntityId::pod("shop", "web-1"))],
                removed_entities: vec![EntityId::pod("shop", "web-0")],
                added_edges: vec![Edge::new(EntityId::pod("shop", "web-1"), Relation::RunsOn {}, EntityId::node("n1"))],
                removed_edges: vec![],
            },
            symptoms: vec![SymptomChange::Resolved {
                id: SymptomId("k8s.crashloop:pod/shop/web-0:1".into()),
                resolved: UnixMillis(1_700_000_000_000),
            }],
        }
    }

    #[test]
    fn a_delta_batch_round_trips_through_json() {
        let batch = delta_batch();
        let json = serde_json::to_value(&batch).unwrap();
        assert_eq!(json["topology"]["type"], "delta");
        assert!(json["topology"]["addedEntities"].is_array(), "{json}");
        assert_eq!(serde_json::from_value::<EgressBatch>(json).unwrap(), batch);
    }

    #[test]
    fn a_snapshot_batch_round_trips_through_json() {
        let batch = EgressBatch {
            topology: TopologyPayload::Snapshot { entities: vec![Entity::new(EntityId::node("n1"))], edges: vec![] },
            symptoms: vec![],
            ..delta_batch()
        };
        let json = serde_json::to_string(&batch).unwrap();
        assert_eq!(serde_json::from_str::<EgressBatch>(&json).unwrap(), batch);
    }

    #[test]
    fn a_batch_with_a_field_outside_the_model_is_rejected() {
        let mut json = serde_json::to_value(delta_batch()).unwrap();
        json["topology"]["rawSeries"] = serde_json::json!([[1, 0.5]]);
        assert!(serde_json::from_value::<EgressBatch>(json).is_err());
        let mut json = serde_json::to_value(delta_batch()).unwrap();
        json["logs"] = serde_json::json!(["GET /login password=hunter2"]);
        assert!(serde_json::from_value::<EgressBatch>(json).is_err());
    }

    #[test]
    fn empty_payloads_are_recognised() {
        let empty = TopologyPayload::Delta {
            added_entities: vec![],
            removed_entities: vec![],
            added_edges: vec![],
            removed_edges: vec![],
        };
        assert!(empty.is_empty());
        assert!(!delta_batch().topology.is_empty());
    }
}
