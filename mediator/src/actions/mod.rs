//! Remediation actions passing through the mediator: the CLI submits them, the executor pulls the
//! pending ones and reports each result. Pure queue logic in `queue`, its file in `journal`.

pub mod journal;
pub mod queue;

pub use journal::{ActionStore, JournalError};
pub use queue::{ActionQueue, QueueError, Reported};
