//! Risky permissions, whatever a baseline says: each rule names what it matches, how severe it is
//! and, in one line, why.

use std::collections::BTreeSet;

use causely_model::Severity;
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde::Serialize;

use super::grants::Grant;

/// A risky permission held by a component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Risk {
    /// Stable rule id, e.g. `rbac.secrets-read`.
    pub rule: &'static str,
    pub severity: Severity,
    pub why: &'static str,
    /// The grant (or role) that triggered it.
    pub grant: String,
}

const WORKLOADS: [&str; 8] =
    ["pods", "deployments", "daemonsets", "statefulsets", "replicasets", "jobs", "cronjobs", "replicationcontrollers"];
const RBAC_OBJECTS: [&str; 4] = ["roles", "clusterroles", "rolebindings", "clusterrolebindings"];
const WRITE: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// The risk rule a single grant triggers, if any.
fn grant_risk(grant: &Grant) -> Option<(&'static str, Severity, &'static str)> {
    let Grant::Resource { group, resource, verb, .. } = grant else { return None };
    let (g, r, v) = (group.as_str(), resource.as_str(), verb.as_str());
    let write = WRITE.contains(&v);
    Some(match (g, r, v) {
        (_, _, "impersonate") => {
            ("rbac.impersonate", Severity::Critical, "acts as any user, group or service account it may impersonate")
        }
        ("rbac.authorization.k8s.io", _, "bind" | "escalate") => {
            ("rbac.bind-escalate", Severity::Critical, "grants itself or others permissions it does not hold")
        }
        ("rbac.authorization.k8s.io", r, _) if write && RBAC_OBJECTS.contains(&r) => {
            ("rbac.write", Severity::Critical, "rewrites who may do what in the cluster")
        }
        ("", "nodes/proxy", _) => {
            ("rbac.nodes-proxy", Severity::Critical, "reaches every kubelet's API, including exec into any pod")
        }
        ("", "pods/exec" | "pods/attach", "create" | "get") => {
            ("rbac.pods-exec", Severity::Critical, "runs commands inside any pod it can reach")
        }
        ("certificates.k8s.io", "certificatesigningrequests/approval", "update" | "patch")
        | ("certificates.k8s.io", "signers", "approve") => (
            "rbac.csr-approve",
            Severity::Critical,
            "approves certificates, including client certificates for any identity",
        ),
        ("admissionregistration.k8s.io", r, _)
            if write && (r == "mutatingwebhookconfigurations" || r == "validatingwebhookconfigurations") =>
        {
            (
                "rbac.admission-webhooks",
                Severity::Critical,
                "intercepts or rewrites every object sent to the API server",
            )
        }
        ("", "secrets", "get" | "list" | "watch") => {
            ("rbac.secrets-read", Severity::High, "reads Secrets: passwords, tokens, keys")
        }
        ("", "serviceaccounts/token", "create") => {
            ("rbac.serviceaccount-token", Severity::High, "mints tokens for service accounts, and so acts as them")
        }
        (_, r, "create" | "update" | "patch") if WORKLOADS.contains(&r) => {
            ("rbac.workload-write", Severity::High, "runs code of its choosing by creating or changing workloads")
        }
        _ => return None,
    })
}

/// Risks in a component's rules: each risky expanded grant, each wildcard as written, and a
/// binding to `cluster-admin`.
pub fn risks(rules: &[PolicyRule], grants: &BTreeSet<Grant>, bound_roles: &[String]) -> Vec<Risk> {
    let mut out: BTreeSet<Risk> = BTreeSet::new();
    for grant in grants {
        if let Some((rule, severity, why)) = grant_risk(grant) {
            out.insert(Risk { rule, severity, why, grant: grant.to_string() });
        }
    }
    for rule in rules {
        let wild = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| v.iter().any(|x| x == "*"));
        if rule.verbs.iter().any(|v| v == "*") || wild(&rule.resources) || wild(&rule.api_groups) {
            let text = format!(
                "groups {:?} resources {:?} verbs {:?}",
                rule.api_groups.clone().unwrap_or_default(),
                rule.resources.clone().unwrap_or_default(),
                rule.verbs
            );
            out.insert(Risk {
                rule: "rbac.wildcard",
                severity: Severity::High,
                why: "a wildcard also grants whatever the cluster adds later",
                grant: text,
            });
        }
    }
    if bound_roles.iter().any(|r| r == "cluster-admin") {
        out.insert(Risk {
            rule: "rbac.cluster-admin",
            severity: Severity::Critical,
            why: "may do anything to any object in the cluster",
            grant: "ClusterRole/cluster-admin".to_owned(),
        });
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::grants::{Catalogue, expand_all};
    use crate::audit::rule;

    fn assess(rules: Vec<PolicyRule>, bound: &[&str]) -> Vec<Risk> {
        let grants = expand_all(&rules, &Catalogue::default());
        risks(&rules, &grants, &bound.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn the_published_agent_and_mediator_roles_carry_no_risk() {
        let seed = crate::baseline::Baseline::seed().unwrap();
        for component in [crate::baseline::Component::Agent, crate::baseline::Component::Mediator] {
            let rules: Vec<PolicyRule> = seed.component(component).rules.iter().map(|r| r.to_policy_rule()).collect();
            assert!(assess(rules, &[]).is_empty(), "{component}");
        }
    }

    #[test]
    fn each_risky_permission_is_named_with_its_severity() {
        let cases = [
            (rule(&[""], &["secrets"], &["get"]), "rbac.secrets-read", Severity::High),
            (rule(&[""], &["users"], &["impersonate"]), "rbac.impersonate", Severity::Critical),
            (
                rule(&["rbac.authorization.k8s.io"], &["clusterroles"], &["escalate"]),
                "rbac.bind-escalate",
                Severity::Critical,
            ),
            (rule(&["rbac.authorization.k8s.io"], &["rolebindings"], &["create"]), "rbac.write", Severity::Critical),
            (rule(&["apps"], &["deployments"], &["patch"]), "rbac.workload-write", Severity::High),
            (rule(&[""], &["pods/exec"], &["create"]), "rbac.pods-exec", Severity::Critical),
            (rule(&[""], &["nodes/proxy"], &["get"]), "rbac.nodes-proxy", Severity::Critical),
            (rule(&[""], &["serviceaccounts/token"], &["create"]), "rbac.serviceaccount-token", Severity::High),
            (
                rule(&["certificates.k8s.io"], &["certificatesigningrequests/approval"], &["update"]),
                "rbac.csr-approve",
                Severity::Critical,
            ),
            (
                rule(&["admissionregistration.k8s.io"], &["mutatingwebhookconfigurations"], &["create"]),
                "rbac.admission-webhooks",
                Severity::Critical,
            ),
        ];
        for (r, id, severity) in cases {
            let found = assess(vec![r], &[]);
            assert!(found.iter().any(|f| f.rule == id && f.severity == severity), "{id}: {found:?}");
        }
    }

    #[test]
    fn wildcards_and_cluster_admin_are_risks_in_themselves() {
        let found = assess(vec![rule(&[""], &["services"], &["*"])], &[]);
        assert!(found.iter().any(|f| f.rule == "rbac.wildcard"));
        let found = assess(vec![], &["cluster-admin"]);
        assert_eq!(found[0].rule, "rbac.cluster-admin");
        assert_eq!(found[0].severity, Severity::Critical);
    }

    #[test]
    fn reading_workloads_is_not_a_risk() {
        assert!(assess(vec![rule(&["apps"], &["deployments"], &["get", "list", "watch"])], &[]).is_empty());
    }
}
