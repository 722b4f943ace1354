//! `kubectl causely egress`: proving what left the cluster (`verify`) and watching it leave
//! (`tail`). `verify` is the pure verdict over gathered values, `policies` the pure NetworkPolicy
//! comparison, `fetch` gathers those values (mediator read API, a state directory, the cluster,
//! VictoriaMetrics), `format` prints both commands' output, and `tail` follows the mediator.

pub mod fetch;
pub mod format;
pub mod metrics_text;
pub mod policies;
pub mod tail;
pub mod verify;
