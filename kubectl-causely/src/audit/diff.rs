//! RBAC differences between two baselines (installed, published, this release, a file), per
//! component, with equal rules merged back into rule-shaped lines for reading.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::grants::Grant;
use super::report::{Allowed, Expected};
use super::snapshot::Scoped;
use crate::baseline::Component;

/// What one component gains and loses going from `from` to `to`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ComponentDiff {
    /// Rule-shaped lines of permissions `to` has and `from` has not.
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// The whole diff, by component; components with no difference are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RbacDiff {
    pub from: String,
    pub to: String,
    pub components: BTreeMap<Component, ComponentDiff>,
}

/// Merges grants into lines like `get, list, watch on apps/deployments, apps/replicasets (in ns)`:
/// first the verbs of each resource, then the resources that share the same verbs.
pub fn merge(grants: &BTreeSet<Scoped>) -> Vec<String> {
    let mut verbs: BTreeMap<(Option<String>, String), BTreeSet<String>> = BTreeMap::new();
    for scoped in grants {
        let target = match &scoped.grant {
            Grant::Resource { group, resource, names, .. } => {
                let group = if group.is_empty() { String::new() } else { format!("{group}/") };
                let names = if names.is_empty() { String::new() } else { format!("[{}]", names.join(",")) };
                format!("{group}{resource}{names}")
            }
            Grant::NonResource { url, .. } => url.clone(),
        };
        verbs.entry((scoped.namespace.clone(), target)).or_default().insert(scoped.grant.verb().to_owned());
    }
    let mut by_verbs: BTreeMap<(Option<String>, Vec<String>), Vec<String>> = BTreeMap::new();
    for ((namespace, target), set) in verbs {
        by_verbs.entry((namespace, set.into_iter().collect())).or_default().push(target);
    }
    by_verbs
        .into_iter()
        .map(|((namespace, verbs), targets)| {
            let scope = namespace.map(|ns| format!(" (in {ns})")).unwrap_or_default();
            format!("{} on {}{scope}", verbs.join(", "), targets.join(", "))
        })
        .collect()
}

fn lines(allowed: Option<&Allowed>) -> (Option<&BTreeSet<Scoped>>, bool) {
    match allowed {
        Some(Allowed::Grants(g)) => (Some(g), false),
        Some(Allowed::Everything) => (None, true),
        None => (None, false),
    }
}

pub fn diff(from: &Expected, to: &Expected) -> RbacDiff {
    let empty = BTreeSet::new();
    let mut components = BTreeMap::new();
    for component in Component::ALL {
        let (a, a_all) = lines(from.grants.get(&component));
        let (b, b_all) = lines(to.grants.get(&component));
        let mut d = ComponentDiff::default();
        match (a_all, b_all) {
            (true, true) => {}
            (false, true) => {
                d.added.push("everything (bound to cluster-admin)".to_owned());
                d.removed = merge(a.unwrap_or(&empty));
            }
            (true, false) => {
                d.removed.push("everything (bound to cluster-admin)".to_owned());
                d.added = merge(b.unwrap_or(&empty));
            }
            (false, false) => {
                let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
                d.added = merge(&b.difference(a).cloned().collect());
                d.removed = merge(&a.difference(b).cloned().collect());
            }
        }
        if !d.added.is_empty() || !d.removed.is_empty() {
            components.insert(component, d);
        }
    }
    RbacDiff { from: from.name.clone(), to: to.name.clone(), components }
}

pub fn text(diff: &RbacDiff) -> String {
    let mut out = format!("RBAC from {} to {}\n", diff.from, diff.to);
    if diff.components.is_empty() {
        out.push_str("no differences\n");
    }
    for (component, d) in &diff.components {
        out.push_str(&format!("\n{component}\n"));
        for line in &d.added {
            out.push_str(&format!("  + {line}\n"));
        }
        for line in &d.removed {
            out.push_str(&format!("  - {line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::grants::{Catalogue, expand_all};
    use crate::audit::rule;
    use crate::audit::snapshot::Snapshot;
    use crate::baseline::Baseline;
    use crate::render::render;
    use crate::render::settings::{ExecutorRbac, Settings};

    fn scoped(rules: &[k8s_openapi::api::rbac::v1::PolicyRule]) -> BTreeSet<Scoped> {
        expand_all(rules, &Catalogue::default()).into_iter().map(|grant| Scoped { namespace: None, grant }).collect()
    }

    #[test]
    fn equal_rules_merge_into_one_line() {
        let grants = scoped(&[
            rule(&["apps"], &["deployments", "replicasets"], &["get", "list"]),
            rule(&[""], &["pods"], &["get"]),
        ]);
        assert_eq!(merge(&grants), ["get on pods", "get, list on apps/deployments, apps/replicasets"]);
    }

    fn release(settings: &Settings) -> Expected {
        let objects: Vec<serde_json::Value> =
            render(settings, &Baseline::seed().unwrap()).unwrap().into_iter().map(|m| m.object).collect();
        Expected::from_snapshot("release", &Snapshot::from_objects(&objects).unwrap(), "causely", &Catalogue::default())
    }

    #[test]
    fn the_release_differs_from_the_published_permissions_only_where_documented() {
        let seed = Expected::published(&Baseline::seed().unwrap(), BTreeSet::new());
        let with_executor = release(&Settings { executor: Some(ExecutorRbac::Scoped), ..Settings::defaults() });
        let d = diff(&seed, &with_executor);
        let components: Vec<Component> = d.components.keys().copied().collect();
        assert_eq!(components, [Component::Mediator, Component::Executor]);
        assert_eq!(
            d.components[&Component::Mediator].added,
            ["create, get, update on coordination.k8s.io/leases (in causely)"]
        );
        assert!(d.components[&Component::Mediator].removed.is_empty());
        assert_eq!(d.components[&Component::Executor].removed, ["everything (bound to cluster-admin)"]);
        assert!(text(&d).contains("  + get, patch on apps/deployments\n"), "{}", text(&d));
        assert!(
            text(&d).contains("  + patch on apps/daemonsets, apps/deployments/scale, apps/statefulsets"),
            "{}",
            text(&d)
        );
    }

    #[test]
    fn the_same_baseline_has_no_differences() {
        let r = release(&Settings::defaults());
        assert!(diff(&r, &r).components.is_empty());
        assert!(text(&diff(&r, &r)).ends_with("no differences\n"));
    }
}
