//! A node of the service topology: an entity id plus the few descriptive fields the backend needs.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::EntityId;

/// One entity in the topology.
///
/// Labels are the only free-form data an entity carries; they describe the object (app, tier,
/// version) and are part of what the seed calls "topology". Annotations, env vars, config maps and
/// secrets never become entity fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entity {
    pub id: EntityId,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::schema::labels_schema")]
    pub labels: BTreeMap<String, String>,
}

impl Entity {
    pub fn new(id: EntityId) -> Self {
        Entity { id, labels: BTreeMap::new() }
    }

    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entity_round_trips_through_json() {
        let entity = Entity::new(EntityId::service("shop", "web")).with_label("app", "web");
        let json = serde_json::to_value(&entity).unwrap();
        assert_eq!(json, serde_json::json!({"id": "svc/shop/web", "labels": {"app": "web"}}));
        assert_eq!(serde_json::from_value::<Entity>(json).unwrap(), entity);
    }

    #[test]
    fn an_entity_without_labels_omits_them() {
        let json = serde_json::to_string(&Entity::new(EntityId::node("n1"))).unwrap();
        assert_eq!(json, r#"{"id":"node/n1"}"#);
    }

    #[test]
    fn an_entity_with_an_extra_field_is_rejected() {
        let err = serde_json::from_str::<Entity>(r#"{"id":"node/n1","env":{"PASSWORD":"x"}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
