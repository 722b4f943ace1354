//! Domain and wire types shared by every Causely component: entity ids, entities, topology edges,
//! symptoms, agent reports, egress batches and remediation actions.
//!
//! This crate is pure: no I/O, no Kubernetes client, no async runtime. Every type that crosses a
//! process boundary is a serde value that rejects unknown fields, so a peer cannot smuggle data
//! past the types.

pub mod action;
pub mod api;
pub mod edge;
pub mod egress;
pub mod entity;
pub mod id;
pub mod report;
pub mod symptom;
pub mod time;

pub use action::{Action, ActionId, ActionKind, ActionOutcome, ActionResult, ActionTargetError};
pub use edge::{Edge, Protocol, Relation};
pub use egress::{EgressBatch, SCHEMA_VERSION, TopologyPayload};
pub use entity::Entity;
pub use id::{EntityId, EntityKind, IdError, WorkloadKind};
pub use report::{AGENT_TOKEN_AUDIENCE, AgentReport, ConnectionObservation, Direction, PeerAddr};
pub use symptom::{Comparator, Severity, Symptom, SymptomChange, SymptomId, SymptomKind, Threshold};
pub use time::UnixMillis;
