//! Whether the NetworkPolicies that confine agents and mediator are in place: the live policies of
//! the install's namespace against the ones the release renders for the recorded settings. Pure.
//!
//! NetworkPolicies only add allowances, so besides a released policy that is missing or changed,
//! any other policy in the namespace that allows something (has an ingress or egress rule) may
//! widen what Causely's pods can reach, and is reported. A policy with no rule only denies, and is
//! left alone. Policies in other namespaces cannot select Causely's pods.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use serde::Serialize;

/// What became of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyState {
    /// Present and equal to the release's.
    InPlace,
    Missing,
    /// Present with another spec.
    Changed,
    /// Not the release's, and allows traffic.
    Unexpected,
}

impl PolicyState {
    pub fn name(self) -> &'static str {
        match self {
            PolicyState::InPlace => "in-place",
            PolicyState::Missing => "missing",
            PolicyState::Changed => "changed",
            PolicyState::Unexpected => "unexpected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyFinding {
    pub name: String,
    pub state: PolicyState,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

fn name_of(policy: &NetworkPolicy) -> String {
    policy.metadata.name.clone().unwrap_or_default()
}

/// The parts of `live` that differ from `want`.
fn differences(want: &NetworkPolicySpec, live: &NetworkPolicySpec) -> Vec<&'static str> {
    let mut out = Vec::new();
    if want.pod_selector != live.pod_selector {
        out.push("podSelector");
    }
    if want.policy_types != live.policy_types {
        out.push("policyTypes");
    }
    if want.ingress != live.ingress {
        out.push("ingress");
    }
    if want.egress != live.egress {
        out.push("egress");
    }
    out
}

fn allows_something(spec: &NetworkPolicySpec) -> bool {
    spec.ingress.as_ref().is_some_and(|rules| !rules.is_empty())
        || spec.egress.as_ref().is_some_and(|rules| !rules.is_empty())
}

/// Compares the released policies with the live ones of the same namespace.
pub fn compare(released: &[NetworkPolicy], live: &[NetworkPolicy]) -> Vec<PolicyFinding> {
    let mut out = Vec::new();
    for want in released {
        let name = name_of(want);
        let found = live.iter().find(|l| name_of(l) == name);
        let (state, detail) = match found {
            None => (PolicyState::Missing, "absent; the release renders it".to_owned()),
            Some(l) => {
                let empty = NetworkPolicySpec::default();
                let diff = differences(want.spec.as_ref().unwrap_or(&empty), l.spec.as_ref().unwrap_or(&empty));
                if diff.is_empty() {
                    (PolicyState::InPlace, String::new())
                } else {
                    (PolicyState::Changed, format!("{} differ from the release", diff.join(", ")))
                }
            }
        };
        out.push(PolicyFinding { name, state, detail });
    }
    for extra in live {
        let name = name_of(extra);
        if released.iter().any(|r| name_of(r) == name) {
            continue;
        }
        if extra.spec.as_ref().is_some_and(allows_something) {
            out.push(PolicyFinding {
                name,
                state: PolicyState::Unexpected,
                detail: "not part of the release, and allows traffic that may reach Causely's pods".to_owned(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::Baseline;
    use crate::render::settings::Settings;
    use crate::render::{network, render};

    fn released() -> Vec<NetworkPolicy> {
        network::policies(&Settings::defaults())
    }

    fn states(findings: &[PolicyFinding]) -> Vec<(String, PolicyState)> {
        findings.iter().map(|f| (f.name.clone(), f.state)).collect()
    }

    /// The live objects as the API server gives them back: the rendered JSON, read as the type.
    fn round_trip(policies: &[NetworkPolicy]) -> Vec<NetworkPolicy> {
        policies.iter().map(|p| serde_json::from_value(serde_json::to_value(p).unwrap()).unwrap()).collect()
    }

    #[test]
    fn the_released_policies_are_in_place_when_live_equals_rendered() {
        let findings = compare(&released(), &round_trip(&released()));
        assert!(findings.iter().all(|f| f.state == PolicyState::InPlace), "{findings:?}");
        // The release renders the same set the installer applies.
        let rendered = render(&Settings::defaults(), &Baseline::seed().unwrap()).unwrap();
        let count = rendered.iter().filter(|m| m.kind == "NetworkPolicy").count();
        assert_eq!(findings.len(), count);
    }

    #[test]
    fn a_missing_or_widened_policy_is_named() {
        let mut live = round_trip(&released());
        let removed = name_of(&live.remove(1));
        live[0].spec.as_mut().unwrap().egress = Some(vec![Default::default()]);
        let changed = name_of(&live[0]);
        let findings = compare(&released(), &live);
        let states = states(&findings);
        assert!(states.contains(&(removed, PolicyState::Missing)), "{states:?}");
        assert!(states.contains(&(changed, PolicyState::Changed)), "{states:?}");
        assert!(findings.iter().any(|f| f.detail.contains("egress")));
    }

    #[test]
    fn an_extra_policy_that_allows_traffic_is_unexpected_and_one_that_only_denies_is_not() {
        let mut allow: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "allow-all-egress"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}
        }))
        .unwrap();
        let deny: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "deny-all"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        }))
        .unwrap();
        let mut live = round_trip(&released());
        live.push(allow.clone());
        live.push(deny);
        let findings = compare(&released(), &live);
        assert_eq!(
            findings.iter().filter(|f| f.state != PolicyState::InPlace).cloned().collect::<Vec<_>>(),
            vec![PolicyFinding {
                name: "allow-all-egress".into(),
                state: PolicyState::Unexpected,
                detail: "not part of the release, and allows traffic that may reach Causely's pods".into(),
            }]
        );
        allow.spec.as_mut().unwrap().egress = Some(vec![]);
        let live = [round_trip(&released()), vec![allow]].concat();
        assert!(compare(&released(), &live).iter().all(|f| f.state == PolicyState::InPlace));
    }
}
