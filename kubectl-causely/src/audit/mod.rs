//! The audit engine behind `audit-permissions`: effective grants, risky permissions and pod
//! security findings, computed from values (no cluster access here).

pub mod diff;
pub mod format;
pub mod grants;
pub mod posture;
pub mod report;
pub mod risk;
pub mod snapshot;

/// A PolicyRule literal for tests: `rule(&["apps"], &["deployments"], &["get"])`.
#[cfg(test)]
pub(crate) fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> k8s_openapi::api::rbac::v1::PolicyRule {
    let v = |x: &[&str]| x.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    k8s_openapi::api::rbac::v1::PolicyRule {
        api_groups: Some(v(groups)),
        resources: Some(v(resources)),
        verbs: v(verbs),
        ..Default::default()
    }
}
