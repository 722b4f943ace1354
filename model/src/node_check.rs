//! The report of `causely-agent check`: what the agent found on its node, in the posture it runs with.
//! The agent writes it to its container's termination message, where `kubectl causely check --pre`
//! reads it back from the pod's status (no `pods/log` permission needed).

use serde::{Deserialize, Serialize};

/// The kubelet keeps at most this many bytes of a container's termination message; a longer report
/// would be cut, and a cut JSON document cannot be read.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// Everything one run of `causely-agent check` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCheckReport {
    /// The version of the agent that ran the checks.
    pub agent_version: String,
    /// The kernel release the checks ran on (`uname -r`).
    pub kernel: String,
    pub checks: Vec<NodeCheck>,
}

impl NodeCheckReport {
    /// True when nothing the agent needs failed (warnings do not fail).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != NodeCheckStatus::Error)
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCheck {
    /// Stable name of the check: `btf`, `ebpf/<program>`, `cgroup-layout`, `cgroup-self`,
    /// `cgroup-counters`, `cgroup-ebpf`, `proc`, `pressure`.
    pub id: String,
    pub status: NodeCheckStatus,
    /// One line: what was found.
    pub description: String,
    /// What to do about it, for warnings and errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// How one check came out: `error` is something the agent needs, `warning` something it can do
/// without (a feature is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeCheckStatus {
    Ok,
    Warning,
    Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_round_trips_and_refuses_unknown_fields() {
        let report = NodeCheckReport {
            agent_version: "0.1.0".into(),
            kernel: "6.1.0-18-amd64".into(),
            checks: vec![
                NodeCheck { id: "btf".into(), status: NodeCheckStatus::Ok, description: "present".into(), hint: None },
                NodeCheck {
                    id: "pressure".into(),
                    status: NodeCheckStatus::Warning,
                    description: "no PSI".into(),
                    hint: Some("boot with psi=1".into()),
                },
            ],
        };
        let text = serde_json::to_string(&report).unwrap_or_default();
        assert!(text.contains(r#""agentVersion":"0.1.0""#) && text.contains(r#""status":"warning""#), "{text}");
        assert_eq!(serde_json::from_str::<NodeCheckReport>(&text).ok(), Some(report.clone()));
        assert!(report.passed(), "a warning does not fail");
        let extra = text.replacen('{', r#"{"smuggled":1,"#, 1);
        assert!(serde_json::from_str::<NodeCheckReport>(&extra).is_err());
    }

    #[test]
    fn one_error_fails_the_report() {
        let failed = NodeCheckReport {
            agent_version: "0.1.0".into(),
            kernel: "5.4.0".into(),
            checks: vec![NodeCheck {
                id: "ebpf/tcp_set_state".into(),
                status: NodeCheckStatus::Error,
                description: "refused".into(),
                hint: None,
            }],
        };
        assert!(!failed.passed());
    }
}
