//! Calls observed by agents, joined to cluster entities: workload → workload and service → service `calls` edges.
//!
//! An agent names the local side of a connection by pod UID (or its IP) and the remote side by address. The join
//! resolves the local side to a pod, the remote to a Service (by ClusterIP and port) or else a pod (by IP), and
//! records:
//! - workload → workload, on the server's container port: the client pod's workload calls the server pod's
//!   workload (or, for a Service, the workload of each pod behind it). A pod no workload controls stands in as
//!   its own workload.
//! - service → service, on the server Service's port: each Service selecting the client pod calls the called
//!   Service, or each Service that forwards to the server pod's port.
//!
//! Decisions:
//! - An address outside the cluster (no pod, no Service) gives no edge: external entities are never invented.
//! - Connection attempts that all failed (`established == 0`, `failed > 0`) still record the call: the client
//!   depends on the server whether or not the server answers, and a dependency whose calls fail is exactly the
//!   one a causal analysis needs. An observation with neither is ignored.
//! - The local pod must run on the reporting agent's node (when the index knows its node): an agent sees only
//!   its own node's sockets, so anything else is a stale or misattributed observation.
//! - The backends of a called Service are resolved when edges are read, not when the call is seen, because
//!   they change (rollouts) while the call does not.

use std::collections::{BTreeSet, HashMap};

use causely_model::{ConnectionObservation, Direction, Edge, EntityId, Protocol, Relation, UnixMillis};
use serde::Serialize;

use crate::index::ClusterIndex;

/// What became of one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// Both sides resolved; `calls` calls were recorded or refreshed.
    Joined { calls: usize },
    /// Neither an established nor a failed connection: nothing to record.
    NoConnections,
    /// The local side matched no pod (by UID or IP).
    LocalUnresolved,
    /// The local pod runs on another node than the reporting agent's.
    LocalOnOtherNode,
    /// The remote address is neither a Service's ClusterIP and port nor a pod's IP.
    RemoteUnresolved,
}

/// Counts of join outcomes since the table was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinStats {
    pub joined: u64,
    pub no_connections: u64,
    pub local_unresolved: u64,
    pub local_on_other_node: u64,
    pub remote_unresolved: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Call {
    Edge(Edge),
    /// `client` called `service` on `port`; becomes an edge to the workload of each pod behind the service.
    ToServiceBackends {
        client: EntityId,
        service: EntityId,
        port: u16,
        protocol: Protocol,
    },
}

/// The server side of a connection.
enum Server {
    Service { id: EntityId, port: u16 },
    Pod { id: EntityId, port: u16 },
}

/// Observed calls, each with the last time it was seen.
#[derive(Debug, Default)]
pub struct CallTable {
    calls: HashMap<Call, UnixMillis>,
    stats: JoinStats,
}

fn calls(port: u16, protocol: Protocol) -> Relation {
    Relation::Calls { port, protocol }
}

impl CallTable {
    pub fn new() -> Self {
        CallTable::default()
    }

    /// Joins one observation from the agent on `node` and records the calls it shows as seen at `now`.
    pub fn observe(
        &mut self,
        index: &ClusterIndex,
        node: &str,
        obs: &ConnectionObservation,
        now: UnixMillis,
    ) -> JoinOutcome {
        let outcome = self.join(index, node, obs, now);
        let counter = match outcome {
            JoinOutcome::Joined { .. } => &mut self.stats.joined,
            JoinOutcome::NoConnections => &mut self.stats.no_connections,
            JoinOutcome::LocalUnresolved => &mut self.stats.local_unresolved,
            JoinOutcome::LocalOnOtherNode => &mut self.stats.local_on_other_node,
            JoinOutcome::RemoteUnresolved => &mut self.stats.remote_unresolved,
        };
        *counter += 1;
        outcome
    }

    fn join(&mut self, index: &ClusterIndex, node: &str, obs: &ConnectionObservation, now: UnixMillis) -> JoinOutcome {
        if obs.established == 0 && obs.failed == 0 {
            return JoinOutcome::NoConnections;
        }
        let local =
            obs.pod_uid.as_deref().and_then(|uid| index.pod_by_uid(uid)).or_else(|| index.pod_by_ip(obs.local.ip));
        let Some(local) = local else { return JoinOutcome::LocalUnresolved };
        if index.node_of(&local).is_some_and(|n| n != EntityId::node(node)) {
            return JoinOutcome::LocalOnOtherNode;
        }
        let (client, server) = match obs.direction {
            Direction::Outbound => {
                let server = if let Some(id) = index.service_by_cluster_ip(obs.remote.ip, obs.remote.port) {
                    Server::Service { id, port: obs.remote.port }
                } else if let Some(id) = index.pod_by_ip(obs.remote.ip) {
                    Server::Pod { id, port: obs.remote.port }
                } else {
                    return JoinOutcome::RemoteUnresolved;
                };
                (local, server)
            }
            Direction::Inbound => {
                let Some(client) = index.pod_by_ip(obs.remote.ip) else { return JoinOutcome::RemoteUnresolved };
                (client, Server::Pod { id: local, port: obs.local.port })
            }
        };

        let protocol = obs.protocol;
        let client_workload = index.workload_or_pod(&client);
        let client_services = index.services_selecting(&client);
        let mut seen = Vec::new();
        match server {
            Server::Service { id, port } => {
                for from in client_services {
                    seen.push(Call::Edge(Edge::new(from, calls(port, protocol), id.clone())));
                }
                seen.push(Call::ToServiceBackends { client: client_workload, service: id, port, protocol });
            }
            Server::Pod { id, port } => {
                let server_workload = index.workload_or_pod(&id);
                seen.push(Call::Edge(Edge::new(client_workload, calls(port, protocol), server_workload)));
                for (to, service_port) in index.services_exposing(&id, port) {
                    for from in &client_services {
                        seen.push(Call::Edge(Edge::new(from.clone(), calls(service_port, protocol), to.clone())));
                    }
                }
            }
        }
        let count = seen.len();
        for call in seen {
            self.calls.insert(call, now);
        }
        JoinOutcome::Joined { calls: count }
    }

    /// Drops the calls not seen within `ttl_ms` before `now`.
    pub fn expire(&mut self, now: UnixMillis, ttl_ms: u64) {
        self.calls.retain(|_, seen| now.saturating_since(*seen) <= ttl_ms);
    }

    /// The `calls` edges the recorded calls give against the index as it is now.
    pub fn edges(&self, index: &ClusterIndex) -> BTreeSet<Edge> {
        let mut edges = BTreeSet::new();
        let mut backends: HashMap<(&EntityId, u16), Vec<(EntityId, u16)>> = HashMap::new();
        for call in self.calls.keys() {
            match call {
                Call::Edge(edge) => {
                    edges.insert(edge.clone());
                }
                Call::ToServiceBackends { client, service, port, protocol } => {
                    let servers = backends.entry((service, *port)).or_insert_with(|| {
                        let mut servers: Vec<(EntityId, u16)> = index
                            .backends_of(service, *port)
                            .into_iter()
                            .map(|(pod, target)| (index.workload_or_pod(&pod), target))
                            .collect();
                        servers.sort();
                        servers.dedup();
                        servers
                    });
                    for (server, target) in servers.iter() {
                        edges.insert(Edge::new(client.clone(), calls(*target, *protocol), server.clone()));
                    }
                }
            }
        }
        edges
    }

    /// Calls currently recorded (a call to a Service's backends counts once).
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    pub fn stats(&self) -> JoinStats {
        self.stats
    }
}
