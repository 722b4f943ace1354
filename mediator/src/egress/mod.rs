//! The egress: a durable store that guards, ledgers and queues each batch (`store`), and the loop
//! that delivers the queue to the upstream over HTTPS (`deliver`). What may leave, and the ledger
//! format, are defined in `causely_model::{schema, guard, ledger}`.

pub mod deliver;
pub mod store;

pub use deliver::{Backoff, DeliverError, DeliveryStatus, Upstream};
pub use store::{AcceptError, Accepted, EgressStore, LedgerLine, StoreError, StoreLimits, StoreStats};
