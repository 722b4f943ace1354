//! What an agent sends the mediator: the connections it saw and the symptoms it opened or resolved.
//! Raw samples never appear here; they go from the agent to VictoriaMetrics only.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::edge::Protocol;
use crate::symptom::SymptomChange;
use crate::time::UnixMillis;

/// The audience of the projected ServiceAccount token an agent presents to the mediator: a token
/// minted for the mediator is useless against the API server or anything else.
pub const AGENT_TOKEN_AUDIENCE: &str = "causely-mediator";

/// Which side of a connection the observing socket was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The local process connected out (it is the client).
    Outbound,
    /// The local process accepted (it is the server).
    Inbound,
}

/// An IP address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAddr {
    pub ip: IpAddr,
    pub port: u16,
}

/// Connections between one local container and one remote address during a report interval.
///
/// The agent's RBAC cannot read pods, so it names the local side by pod UID and container id from
/// the cgroup path, and the remote side by address; the mediator resolves both to entities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionObservation {
    pub local: PeerAddr,
    pub remote: PeerAddr,
    pub direction: Direction,
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Connections established in the interval.
    pub established: u32,
    /// Connection attempts that failed in the interval.
    pub failed: u32,
}

/// Bounds on one report the mediator accepts, far above what an agent sends per interval.
pub const MAX_CONNECTIONS: usize = 50_000;
pub const MAX_SYMPTOM_CHANGES: usize = 5_000;

/// One report from the agent on `node`; `seq` increases by one per report so the mediator can
/// notice gaps and replays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentReport {
    pub node: String,
    pub agent_version: String,
    pub seq: u64,
    pub time: UnixMillis,
    #[serde(default)]
    pub connections: Vec<ConnectionObservation>,
    #[serde(default)]
    pub symptoms: Vec<SymptomChange>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::EntityId;
    use crate::symptom::{Severity, Symptom, SymptomId, SymptomKind};

    fn report() -> AgentReport {
        let entity: EntityId = "container/shop/web-1/nginx".parse().unwrap();
        AgentReport {
            node: "worker-1".into(),
            agent_version: "0.1.0".into(),
            seq: 7,
            time: UnixMillis(10_000),
            connections: vec![ConnectionObservation {
                local: PeerAddr { ip: "10.244.1.5".parse().unwrap(), port: 40112 },
                remote: PeerAddr { ip: "10.96.0.20".parse().unwrap(), port: 5432 },
                direction: Direction::Outbound,
                protocol: Protocol::Tcp,
                pod_uid: Some("0d6f6c1e-4a1b-4b36-9d1c-2f0a7c1e9b11".into()),
                container_id: Some("containerd://4f1e".into()),
                established: 12,
                failed: 1,
            }],
            symptoms: vec![SymptomChange::Opened {
                symptom: Symptom {
                    id: SymptomId::of("agent.tcp.retransmits", &entity, UnixMillis(9_000)),
                    kind: SymptomKind::TcpRetransmits,
                    entity,
                    severity: Severity::Medium,
                    rule: "agent.tcp.retransmits".into(),
                    threshold: None,
                    started: UnixMillis(9_000),
                    resolved: None,
                },
            }],
        }
    }

    #[test]
    fn an_agent_report_round_trips_through_json() {
        let report = report();
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<AgentReport>(&json).unwrap(), report);
        assert!(json.contains(r#""ip":"10.96.0.20""#), "{json}");
    }

    #[test]
    fn a_report_with_no_observations_is_valid() {
        let json = r#"{"node":"n","agentVersion":"0.1.0","seq":1,"time":5}"#;
        let report: AgentReport = serde_json::from_str(json).unwrap();
        assert!(report.connections.is_empty() && report.symptoms.is_empty());
    }

    #[test]
    fn a_report_carrying_raw_samples_is_rejected() {
        let mut json = serde_json::to_value(report()).unwrap();
        json["samples"] = serde_json::json!([{"metric": "cpu", "value": 0.5}]);
        let err = serde_json::from_value::<AgentReport>(json).unwrap_err();
        assert!(err.to_string().contains("unknown field `samples`"), "{err}");
    }

    #[test]
    fn a_malformed_address_is_rejected() {
        let mut json = serde_json::to_value(report()).unwrap();
        json["connections"][0]["remote"]["ip"] = serde_json::json!("not-an-ip");
        assert!(serde_json::from_value::<AgentReport>(json).is_err());
    }
}
