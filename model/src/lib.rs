//! Domain and wire types shared by every Causely component: entity ids, entities, topology edges,
//! symptoms, agent reports, egress batches and remediation actions; and what may leave the
//! cluster: the egress schema, the guard that enforces it and the ledger that records it.
//!
//! This crate is pure: no I/O, no Kubernetes client, no async runtime. Every type that crosses a
//! process boundary is a serde value that rejects unknown fields, so a peer cannot smuggle data
//! past the types.

pub mod action;
pub mod api;
pub mod edge;
pub mod egress;
pub mod entity;
pub mod guard;
pub mod id;
pub mod ledger;
pub mod node_check;
pub mod report;
pub mod schema;
pub mod symptom;
pub mod time;

pub use action::{Action, ActionId, ActionKind, ActionOutcome, ActionResult, ActionTargetError};
pub use edge::{Edge, Protocol, Relation};
pub use egress::{EgressBatch, SCHEMA_VERSION, TopologyPayload};
pub use entity::Entity;
pub use guard::{EgressGuard, Rejection, RejectionRule};
pub use id::{EntityId, EntityKind, IdError, WorkloadKind};
pub use ledger::{LedgerEntry, LedgerRecord, Verification, Violation};
pub use node_check::{NodeCheck, NodeCheckReport, NodeCheckStatus};
pub use report::{AGENT_TOKEN_AUDIENCE, AgentReport, ConnectionObservation, Direction, PeerAddr};
pub use symptom::{Comparator, Severity, Symptom, SymptomChange, SymptomId, SymptomKind, Threshold};
pub use time::UnixMillis;
