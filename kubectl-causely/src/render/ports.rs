//! The ports components listen on; one place, used by Services, containers and NetworkPolicies.

/// The mediator's HTTP API (agent intake, read API, change stream).
pub const MEDIATOR_API: i32 = 8080;
/// VictoriaMetrics' HTTP API (import, query).
pub const VICTORIA_METRICS: i32 = 8428;
/// The agent's own metrics and health endpoint.
pub const AGENT_HEALTH: i32 = 9090;
/// The executor's health endpoint.
pub const EXECUTOR_HEALTH: i32 = 9091;
/// The API server, as reached from pods: the `kubernetes` Service and the usual endpoints.
pub const API_SERVER: [i32; 2] = [443, 6443];
/// The kubelet's authenticated port (for /metrics and /metrics/cadvisor).
pub const KUBELET: i32 = 10250;
/// Cluster DNS.
pub const DNS: i32 = 53;
