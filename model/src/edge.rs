//! Directed topology edges between entities: `runs-on`, `owned-by`, `selects` and `calls`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::EntityId;

/// Transport protocol of a `calls` edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// How `from` relates to `to`.
///
/// Variants without data are written `RunsOn {}` rather than `RunsOn`: serde ignores extra keys
/// next to the tag of a unit variant, and nothing extra may ride along on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Relation {
    /// A pod runs on a node; a container runs in a pod.
    RunsOn {},
    /// A pod or workload is owned by a workload (ownerReferences).
    OwnedBy {},
    /// A service selects a pod.
    Selects {},
    /// `from` opened connections to `to` on `port` (the server side's port).
    Calls { port: u16, protocol: Protocol },
}

impl Relation {
    /// The relation's name without its data: `runs-on`, `owned-by`, `selects` or `calls`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Relation::RunsOn {} => "runs-on",
            Relation::OwnedBy {} => "owned-by",
            Relation::Selects {} => "selects",
            Relation::Calls { .. } => "calls",
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Relation::RunsOn {} => f.write_str("runs-on"),
            Relation::OwnedBy {} => f.write_str("owned-by"),
            Relation::Selects {} => f.write_str("selects"),
            Relation::Calls { port, protocol } => write!(f, "calls {port}/{protocol}"),
        }
    }
}

/// A directed edge of the topology graph.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Edge {
    pub from: EntityId,
    pub to: EntityId,
    pub relation: Relation,
}

impl Edge {
    pub fn new(from: EntityId, relation: Relation, to: EntityId) -> Self {
        Edge { from, to, relation }
    }
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} --{}--> {}", self.from, self.relation, self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::WorkloadKind;

    #[test]
    fn a_calls_edge_carries_port_and_protocol_on_the_wire() {
        let edge = Edge::new(
            EntityId::workload(WorkloadKind::Deployment, "shop", "web"),
            Relation::Calls { port: 5432, protocol: Protocol::Tcp },
            EntityId::service("db", "postgres"),
        );
        let json = serde_json::to_value(&edge).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "from": "workload/deployment/shop/web",
                "to": "svc/db/postgres",
                "relation": {"type": "calls", "port": 5432, "protocol": "tcp"}
            })
        );
        assert_eq!(serde_json::from_value::<Edge>(json).unwrap(), edge);
    }

    #[test]
    fn structural_edges_round_trip() {
        for relation in [Relation::RunsOn {}, Relation::OwnedBy {}, Relation::Selects {}] {
            let edge = Edge::new(EntityId::pod("a", "p"), relation, EntityId::node("n"));
            let json = serde_json::to_string(&edge).unwrap();
            assert_eq!(serde_json::from_str::<Edge>(&json).unwrap(), edge);
        }
    }

    #[test]
    fn an_unknown_relation_or_extra_field_is_rejected() {
        let unknown = r#"{"from":"pod/a/p","to":"node/n","relation":{"type":"mounts"}}"#;
        assert!(serde_json::from_str::<Edge>(unknown).is_err());
        let extra = r#"{"from":"pod/a/p","to":"node/n","relation":{"type":"runs-on","bytes":12}}"#;
        assert!(serde_json::from_str::<Edge>(extra).is_err());
    }

    #[test]
    fn edges_print_as_arrows() {
        let edge = Edge::new(EntityId::pod("a", "p"), Relation::RunsOn {}, EntityId::node("n"));
        assert_eq!(edge.to_string(), "pod/a/p --runs-on--> node/n");
    }
}
