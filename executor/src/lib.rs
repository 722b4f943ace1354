//! The executor: takes remediation actions from the mediator's queue and carries out each one at
//! most once, checked against its policy, dry-run first, recorded as a Kubernetes Event and in its
//! audit log, and reported back.
//!
//! Pure core: `policy`, `decide`, `rollback`, `runs::RunBook`, `events::event`. I/O adapters:
//! `kube_actions` (the API server), `pull` (the mediator), `runs::RunLog` and `audit_log` (files),
//! `serve` (health and metrics), wired together in `run`.

pub mod audit_log;
pub mod config;
pub mod decide;
pub mod events;
pub mod kube_actions;
pub mod policy;
pub mod pull;
pub mod rollback;
pub mod run;
pub mod runs;
pub mod serve;

pub use config::Cli;
pub use run::run;
