//! Placing test pods on the local cluster's fake (kwok) nodes. Those nodes are tainted, as kwok
//! advises, so that everything else runs for real on the real node; pods of the scale and object
//! tests, whose images are never pulled, ask for the fake nodes explicitly with this.

use serde_json::{Value, json};

/// The label every fake node carries (`tests/cluster/up`).
pub const NODE_LABEL: (&str, &str) = ("type", "kwok");
/// The taint every fake node carries.
pub const TAINT_KEY: &str = "kwok.x-k8s.io/node";

/// `spec` (a pod spec as JSON) with a node selector for the fake nodes and a toleration of their
/// taint added; the spec's own fields are kept.
pub fn on_fake_nodes(mut spec: Value) -> Value {
    if let Some(object) = spec.as_object_mut() {
        let selector = object.entry("nodeSelector").or_insert_with(|| json!({}));
        if let Some(selector) = selector.as_object_mut() {
            selector.insert(NODE_LABEL.0.to_owned(), json!(NODE_LABEL.1));
        }
        let tolerations = object.entry("tolerations").or_insert_with(|| json!([]));
        if let Some(tolerations) = tolerations.as_array_mut() {
            tolerations.push(json!({"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}));
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_node_placement_is_added_and_the_spec_kept() {
        let spec = on_fake_nodes(json!({"containers": [{"name": "c"}], "nodeSelector": {"zone": "a"}}));
        assert_eq!(spec["containers"][0]["name"], "c");
        assert_eq!(spec["nodeSelector"], json!({"zone": "a", "type": "kwok"}));
        assert_eq!(spec["tolerations"][0]["key"], TAINT_KEY);
    }
}
