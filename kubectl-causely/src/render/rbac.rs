//! ServiceAccounts and RBAC. The agent's and the mediator's ClusterRoles are the published ones,
//! rule for rule, from `permissions/seed.yaml`; the additions this release makes are here, each
//! with the reason it is needed.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::meta;
use super::settings::{ExecutorRbac, Settings};
use crate::baseline::{Baseline, Component, Rule};

pub fn service_account(settings: &Settings, component: Component) -> ServiceAccount {
    ServiceAccount {
        metadata: meta::namespaced(settings, component, meta::name(component)),
        // Only the components that talk to the API server get a token in their pods.
        automount_service_account_token: Some(matches!(
            component,
            Component::Agent | Component::Mediator | Component::Executor
        )),
        ..ServiceAccount::default()
    }
}

fn rule(api_groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(api_groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

/// What the scoped executor may do: exactly the calls its remediation actions make, each also
/// made first as a server-side dry run (which the API server authorises like the real call).
/// docs/executor.md has the same table per action; a cluster test runs every action under this
/// role and shows that removing a rule makes its action fail.
pub fn scoped_executor_rules() -> Vec<PolicyRule> {
    vec![
        // restart: a strategic-merge patch of the pod template's restartedAt annotation.
        // rollback: get the Deployment (its template, uid and resourceVersion), then a JSON patch
        // of its template.
        rule(&["apps"], &["deployments"], &["get", "patch"]),
        rule(&["apps"], &["statefulsets", "daemonsets"], &["patch"]),
        // rollback: the ReplicaSets of the Deployment's namespace, to find the previous revision.
        rule(&["apps"], &["replicasets"], &["list"]),
        // scale: a merge patch of the scale subresource.
        rule(&["apps"], &["deployments/scale", "statefulsets/scale"], &["patch"]),
        // delete-pod.
        rule(&[""], &["pods"], &["delete"]),
        // cordon and uncordon: a patch of spec.unschedulable.
        rule(&[""], &["nodes"], &["patch"]),
        // every decision is recorded as an events.k8s.io/v1 Event on its target.
        rule(&["events.k8s.io"], &["events"], &["create"]),
    ]
}

fn cluster_role(settings: &Settings, component: Component, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta::cluster_scoped(settings, component, meta::name(component)),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn subject(settings: &Settings, component: Component) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: meta::name(component),
        namespace: Some(settings.namespace.clone()),
        api_group: None,
    }
}

fn cluster_role_binding(settings: &Settings, component: Component, role: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta::cluster_scoped(settings, component, meta::name(component)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(vec![subject(settings, component)]),
    }
}

/// ClusterRoles and their bindings for every installed component.
pub fn cluster_rbac(settings: &Settings, baseline: &Baseline) -> (Vec<ClusterRole>, Vec<ClusterRoleBinding>) {
    let mut roles = Vec::new();
    let mut bindings = Vec::new();
    for component in [Component::Agent, Component::Mediator] {
        let rules = baseline.component(component).rules.iter().map(Rule::to_policy_rule).collect();
        roles.push(cluster_role(settings, component, rules));
        bindings.push(cluster_role_binding(settings, component, &meta::name(component)));
    }
    match settings.executor {
        None => {}
        Some(ExecutorRbac::Scoped) => {
            roles.push(cluster_role(settings, Component::Executor, scoped_executor_rules()));
            bindings.push(cluster_role_binding(settings, Component::Executor, &meta::name(Component::Executor)));
        }
        Some(ExecutorRbac::ClusterAdmin) => {
            let admin = baseline.component(Component::Executor).cluster_role_ref.as_deref().unwrap_or("cluster-admin");
            bindings.push(cluster_role_binding(settings, Component::Executor, admin));
        }
    }
    (roles, bindings)
}

/// The mediator's one addition beyond the published ClusterRole, in its own namespace only: a
/// Lease, so that a second replica during a rollout never sends the same batch twice.
pub fn mediator_lease_role(settings: &Settings) -> (Role, RoleBinding) {
    let component = Component::Mediator;
    let name = format!("{}-leader-election", meta::name(component));
    let role = Role {
        metadata: meta::namespaced(settings, component, name.clone()),
        rules: Some(vec![rule(&["coordination.k8s.io"], &["leases"], &["get", "create", "update"])]),
    };
    let binding = RoleBinding {
        metadata: meta::namespaced(settings, component, name.clone()),
        role_ref: RoleRef { api_group: "rbac.authorization.k8s.io".to_owned(), kind: "Role".to_owned(), name },
        subjects: Some(vec![subject(settings, component)]),
    };
    (role, binding)
}
