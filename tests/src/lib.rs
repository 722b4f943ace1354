//! Helpers for the end-to-end tests: the local control plane (started on demand), paths to the
//! workspace's binaries and images, and polling.

pub mod cluster;
pub mod dns;
pub mod executor;
pub mod images;
pub mod kwok;
pub mod mediator;
pub mod plugin;
pub mod pod_body;
pub mod pods;
pub mod poll;
pub mod pty;
pub mod registry;
pub mod service_proxy;
pub mod upstream;
pub mod workspace;
