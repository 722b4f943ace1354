//! What an upgrade changes: objects added, changed (with a unified diff) and removed between the
//! recorded release and the new one, and each component's RBAC gained or lost (the same diff as
//! `rbac-diff`). Pure.

use similar::TextDiff;

use crate::audit::diff::{self, RbacDiff};
use crate::audit::grants::Catalogue;
use crate::audit::report::Expected;
use crate::audit::snapshot::Snapshot;
use crate::render::Manifest;

/// The difference between two releases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub added: Vec<Manifest>,
    /// Each changed object with a unified diff of its YAML.
    pub changed: Vec<(Manifest, String)>,
    pub removed: Vec<Manifest>,
    /// Each component's RBAC gained and lost.
    pub rbac: Option<RbacDiff>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

fn yaml(manifest: &Manifest) -> String {
    crate::render::to_yaml(&manifest.object).unwrap_or_default()
}

pub fn plan(old: &[Manifest], new: &[Manifest], namespace: &str) -> Plan {
    let find = |set: &[Manifest], key: &str| set.iter().find(|m| m.key() == key).cloned();
    let mut out = Plan::default();
    for m in new {
        match find(old, &m.key()) {
            None => out.added.push(m.clone()),
            Some(before) if before.object != m.object => {
                let (a, b) = (yaml(&before), yaml(m));
                let diff = TextDiff::from_lines(&a, &b)
                    .unified_diff()
                    .context_radius(2)
                    .header(&format!("{} (recorded)", m.key()), &format!("{} (new)", m.key()))
                    .to_string();
                out.changed.push((m.clone(), diff));
            }
            Some(_) => {}
        }
    }
    out.removed = old.iter().filter(|m| find(new, &m.key()).is_none()).cloned().collect();

    let expected = |name: &str, objects: &[Manifest]| {
        let values: Vec<serde_json::Value> = objects.iter().map(|m| m.object.clone()).collect();
        Snapshot::from_objects(&values).map(|s| Expected::from_snapshot(name, &s, namespace, &Catalogue::default()))
    };
    if let (Ok(before), Ok(after)) = (expected("recorded", old), expected("new", new)) {
        let rbac = diff::diff(&before, &after);
        out.rbac = (!rbac.components.is_empty()).then_some(rbac);
    }
    out
}

/// The plan as text, the way `upgrade --dry-run` prints it.
pub fn describe(plan: &Plan) -> String {
    if plan.is_empty() {
        return "no changes: the cluster already runs this release with these settings\n".to_owned();
    }
    let mut out = String::new();
    for m in &plan.added {
        out.push_str(&format!("+ {} (added)\n", m.key()));
    }
    for (m, _) in &plan.changed {
        out.push_str(&format!("~ {} (changed)\n", m.key()));
    }
    for m in &plan.removed {
        out.push_str(&format!("- {} (removed)\n", m.key()));
    }
    if let Some(rbac) = &plan.rbac {
        out.push('\n');
        out.push_str(&diff::text(rbac));
    }
    for (_, diff) in &plan.changed {
        out.push('\n');
        out.push_str(diff);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::Baseline;
    use crate::baseline::Component;
    use crate::render::render;
    use crate::render::settings::{AgentMode, ExecutorRbac, Settings};

    fn release(settings: &Settings) -> Vec<Manifest> {
        render(settings, &Baseline::seed().unwrap()).unwrap()
    }

    #[test]
    fn the_same_release_plans_no_change() {
        let r = release(&Settings::defaults());
        assert!(plan(&r, &r, "causely").is_empty());
        assert!(plan(&r, &r, "causely").rbac.is_none());
        assert!(describe(&plan(&r, &r, "causely")).starts_with("no changes"));
    }

    #[test]
    fn enabling_the_executor_adds_its_objects_and_rbac() {
        let old = release(&Settings::defaults());
        let new = release(&Settings { executor: Some(ExecutorRbac::Scoped), ..Settings::defaults() });
        let p = plan(&old, &new, "causely");
        assert!(p.added.iter().any(|m| m.key() == "Deployment/causely/causely-executor"));
        assert!(p.removed.is_empty());
        let rbac = p.rbac.unwrap();
        assert!(rbac.components[&Component::Executor].added.iter().any(|l| l.contains("apps/deployments")), "{rbac:?}");
    }

    #[test]
    fn switching_the_executor_to_cluster_admin_is_reported_as_an_rbac_change() {
        let old = release(&Settings { executor: Some(ExecutorRbac::Scoped), ..Settings::defaults() });
        let new = release(&Settings { executor: Some(ExecutorRbac::ClusterAdmin), ..Settings::defaults() });
        let p = plan(&old, &new, "causely");
        assert!(p.removed.iter().any(|m| m.key() == "ClusterRole/causely-executor"));
        let rbac = p.rbac.unwrap();
        assert_eq!(rbac.components[&Component::Executor].added, ["everything (bound to cluster-admin)"]);
    }

    #[test]
    fn a_changed_object_comes_with_a_diff_of_what_changed() {
        let old = release(&Settings::defaults());
        let new = release(&Settings { agent_mode: AgentMode::Privileged, ..Settings::defaults() });
        let p = plan(&old, &new, "causely");
        let (m, diff) = p.changed.iter().find(|(m, _)| m.kind == "DaemonSet").unwrap();
        assert_eq!(m.name, "causely-agent");
        assert!(diff.contains("+          privileged: true"), "{diff}");
        assert!(diff.contains("-          privileged: false"), "{diff}");
    }
}
