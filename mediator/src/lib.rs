//! The mediator: watches the cluster into an index, joins the agents' observations into a service
//! topology, detects cluster symptoms, and sends only topology and symptoms upstream through a
//! fail-closed guard, a tamper-evident ledger and a durable queue.
//!
//! Pure core: `index`, `topology`, `symptoms`, `core`. I/O adapters: `watch` (kube), `server`
//! (HTTP intake and read API), `egress` (files and upstream HTTP), `leader` (Lease).

pub mod actions;
pub mod batcher;
pub mod config;
pub mod core;
pub mod egress;
pub mod index;
pub mod intake;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod server;
pub mod state;
pub mod symptoms;
pub mod topology;
pub mod watch;

pub use config::Cli;
pub use run::run;
