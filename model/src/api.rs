//! The mediator's read API as the CLI sees it: topology and symptom views, egress status, and
//! the events of the change stream. These stay inside the cluster (served to `kubectl causely`
//! through the API server); they are not part of the egress schema.

use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionResult};
use crate::edge::Edge;
use crate::egress::TopologyPayload;
use crate::entity::Entity;
use crate::symptom::{Symptom, SymptomChange};
use crate::time::UnixMillis;

/// `GET /v1/topology`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologyView {
    pub entities: Vec<Entity>,
    pub edges: Vec<Edge>,
}

/// `GET /v1/symptoms`: open ones (most severe first) and recently resolved ones (newest first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SymptomsView {
    pub open: Vec<Symptom>,
    pub recent: Vec<Symptom>,
}

/// `GET /v1/pods?node=NODE`, for that node's agent only: the pods bound to the node, so the agent
/// can name the containers behind its cgroups (its own RBAC cannot read pods).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePods {
    pub pods: Vec<NodePod>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePod {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub containers: Vec<NodeContainer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeContainer {
    pub name: String,
    /// The runtime's container id, once the kubelet reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `GET /v1/egress`: what the egress has done since the state directory was created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressStatus {
    pub cluster_id: String,
    /// `none` when batches stay in the cluster.
    pub upstream: String,
    pub leader: bool,
    /// Entries in the ledger (sent, rejected, dropped, resumed).
    pub ledger_entries: u64,
    pub batches_accepted: u64,
    pub bytes_accepted: u64,
    pub batches_rejected: u64,
    pub batches_dropped: u64,
    /// Highest seq the upstream acknowledged (0 when none).
    pub delivered_seq: u64,
    pub next_seq: u64,
    pub pending_batches: u64,
    pub pending_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<UnixMillis>,
}

/// One event of `GET /v1/stream` (server-sent events; the SSE event name is `type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum StreamEvent {
    /// A symptom opened or resolved.
    Symptom { change: SymptomChange },
    /// The topology changed (always a delta against the previous event's state).
    Topology { delta: TopologyPayload },
    /// The egress counters changed.
    Egress { status: EgressStatus },
    /// The client fell behind and must re-read `/v1/topology` and `/v1/symptoms`.
    Resync {},
}

impl StreamEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::Symptom { .. } => "symptom",
            StreamEvent::Topology { .. } => "topology",
            StreamEvent::Egress { .. } => "egress",
            StreamEvent::Resync {} => "resync",
        }
    }
}

/// Where an action stands in the mediator's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionState {
    /// Submitted, no result yet: the executor takes it on its next poll.
    Pending,
    /// The executor reported a result.
    Done,
}

/// `GET /v1/actions/{id}` and the answer to `POST /v1/actions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionView {
    pub action: Action,
    pub state: ActionState,
    pub submitted: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ActionResult>,
}

/// `GET /v1/actions?state=pending`: what the executor has to do, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionList {
    pub actions: Vec<Action>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::EntityId;
    use crate::symptom::SymptomId;

    #[test]
    fn stream_events_are_tagged_by_their_name_and_round_trip() {
        let events = [
            StreamEvent::Symptom {
                change: SymptomChange::Resolved { id: SymptomId("r:node/n1:1".into()), resolved: UnixMillis(2) },
            },
            StreamEvent::Topology {
                delta: TopologyPayload::Delta {
                    added_entities: vec![Entity::new(EntityId::node("n1"))],
                    removed_entities: vec![],
                    added_edges: vec![],
                    removed_edges: vec![],
                },
            },
            StreamEvent::Egress { status: EgressStatus::default() },
            StreamEvent::Resync {},
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.name());
            assert_eq!(serde_json::from_value::<StreamEvent>(json).unwrap(), event);
        }
    }
}
