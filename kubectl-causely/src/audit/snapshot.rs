//! What an audit looks at, from the cluster or from rendered YAML: RBAC objects and the
//! components' workloads. Pure: built from object values.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject};
use serde::Serialize;

use super::grants::{Catalogue, Grant, expand_all};
use crate::baseline::Component;

/// RBAC objects and pod templates, whoever created them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    /// Pod templates by component (`app.kubernetes.io/name` of a part-of=causely workload).
    pub pods: BTreeMap<Component, PodSpec>,
}

/// A grant and where it applies: cluster-wide, or in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Scoped {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub grant: Grant,
}

impl std::fmt::Display for Scoped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} (in {ns})", self.grant),
            None => write!(f, "{}", self.grant),
        }
    }
}

/// Everything RBAC gives one ServiceAccount.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effective {
    /// `Kind/name` of each binding that names the account, and the role it binds.
    pub bindings: Vec<(String, String)>,
    /// Names of the ClusterRoles bound (for the cluster-admin rule).
    pub cluster_roles: Vec<String>,
    /// The rules as written, for wildcard findings.
    pub rules: Vec<PolicyRule>,
    pub grants: BTreeSet<Scoped>,
}

fn names(subjects: &Option<Vec<Subject>>, namespace: &str, account: &str) -> bool {
    subjects
        .iter()
        .flatten()
        .any(|s| s.kind == "ServiceAccount" && s.name == account && s.namespace.as_deref() == Some(namespace))
}

impl Snapshot {
    fn cluster_role_rules(&self, name: &str) -> Vec<PolicyRule> {
        // An aggregated ClusterRole's rules are filled in by the controller-manager; reading
        // `rules` therefore includes what other ClusterRoles contribute through its selector.
        self.cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .and_then(|r| r.rules.clone())
            .unwrap_or_default()
    }

    /// What RBAC gives ServiceAccount `namespace/account`, through any binding.
    pub fn effective(&self, namespace: &str, account: &str, catalogue: &Catalogue) -> Effective {
        let mut out = Effective::default();
        let add = |scope: Option<String>, rules: Vec<PolicyRule>, out: &mut Effective| {
            for grant in expand_all(&rules, catalogue) {
                out.grants.insert(Scoped { namespace: scope.clone(), grant });
            }
            out.rules.extend(rules);
        };
        for binding in &self.cluster_role_bindings {
            if names(&binding.subjects, namespace, account) {
                let role = &binding.role_ref.name;
                out.bindings.push((
                    format!("ClusterRoleBinding/{}", binding.metadata.name.clone().unwrap_or_default()),
                    format!("ClusterRole/{role}"),
                ));
                out.cluster_roles.push(role.clone());
                let rules = self.cluster_role_rules(role);
                add(None, rules, &mut out);
            }
        }
        for binding in &self.role_bindings {
            if !names(&binding.subjects, namespace, account) {
                continue;
            }
            let scope = binding.metadata.namespace.clone();
            let role = &binding.role_ref.name;
            let rules = if binding.role_ref.kind == "ClusterRole" {
                out.cluster_roles.push(role.clone());
                self.cluster_role_rules(role)
            } else {
                self.roles
                    .iter()
                    .find(|r| r.metadata.name.as_deref() == Some(role) && r.metadata.namespace == scope)
                    .and_then(|r| r.rules.clone())
                    .unwrap_or_default()
            };
            out.bindings.push((
                format!(
                    "RoleBinding/{}/{}",
                    scope.clone().unwrap_or_default(),
                    binding.metadata.name.clone().unwrap_or_default()
                ),
                format!("{}/{role}", binding.role_ref.kind),
            ));
            add(scope, rules, &mut out);
        }
        out.bindings.sort();
        out.cluster_roles.sort();
        out.cluster_roles.dedup();
        out
    }

    /// A snapshot of rendered objects (a release, or `--from-file` YAML), as JSON values.
    pub fn from_objects(objects: &[serde_json::Value]) -> Result<Snapshot, String> {
        let mut out = Snapshot::default();
        for object in objects {
            let kind = object["kind"].as_str().unwrap_or_default();
            let parse_err = |e: serde_json::Error| format!("{kind} {}: {e}", object["metadata"]["name"]);
            match kind {
                "ClusterRole" => out.cluster_roles.push(serde_json::from_value(object.clone()).map_err(parse_err)?),
                "ClusterRoleBinding" => {
                    out.cluster_role_bindings.push(serde_json::from_value(object.clone()).map_err(parse_err)?)
                }
                "Role" => out.roles.push(serde_json::from_value(object.clone()).map_err(parse_err)?),
                "RoleBinding" => out.role_bindings.push(serde_json::from_value(object.clone()).map_err(parse_err)?),
                "DaemonSet" | "Deployment" | "StatefulSet" => {
                    let labels = &object["metadata"]["labels"];
                    if labels["app.kubernetes.io/part-of"] != "causely" {
                        continue;
                    }
                    let Some(component) =
                        Component::ALL.into_iter().find(|c| labels["app.kubernetes.io/name"] == c.name())
                    else {
                        continue;
                    };
                    let spec: PodSpec =
                        serde_json::from_value(object["spec"]["template"]["spec"].clone()).map_err(parse_err)?;
                    out.pods.insert(component, spec);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}
