//! What an upgrade changes: objects added, changed (with a unified diff) and removed between the
//! recorded release and the new one, and the RBAC grants gained or lost. Pure.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role};
use similar::TextDiff;

use crate::checks;
use crate::render::Manifest;

/// The difference between two releases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub added: Vec<Manifest>,
    /// Each changed object with a unified diff of its YAML.
    pub changed: Vec<(Manifest, String)>,
    pub removed: Vec<Manifest>,
    /// RBAC changes, one line each: `ClusterRole/x +group/resource:verb`, bindings re-pointed.
    pub rbac: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

fn yaml(manifest: &Manifest) -> String {
    serde_saphyr::to_string(&manifest.object).unwrap_or_default()
}

fn rules(manifest: Option<&Manifest>) -> Vec<k8s_openapi::api::rbac::v1::PolicyRule> {
    let Some(m) = manifest else { return Vec::new() };
    match m.kind.as_str() {
        "ClusterRole" => serde_json::from_value::<ClusterRole>(m.object.clone()).ok().and_then(|r| r.rules),
        "Role" => serde_json::from_value::<Role>(m.object.clone()).ok().and_then(|r| r.rules),
        _ => None,
    }
    .unwrap_or_default()
}

fn role_ref(manifest: Option<&Manifest>) -> Option<String> {
    let m = manifest?;
    (m.kind == "ClusterRoleBinding" || m.kind == "RoleBinding").then_some(())?;
    let binding: ClusterRoleBinding = serde_json::from_value(m.object.clone()).ok()?;
    Some(format!("{}/{}", binding.role_ref.kind, binding.role_ref.name))
}

pub fn plan(old: &[Manifest], new: &[Manifest]) -> Plan {
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

    let mut keys: Vec<String> = old.iter().chain(new).map(Manifest::key).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (before, after) = (find(old, &key), find(new, &key));
        for grant in checks::grant_diff(&rules(before.as_ref()), &rules(after.as_ref())) {
            out.rbac.push(format!("{key} {grant}"));
        }
        let (was, is) = (role_ref(before.as_ref()), role_ref(after.as_ref()));
        if was != is {
            out.rbac.push(format!(
                "{key} binds {} (was {})",
                is.as_deref().unwrap_or("nothing"),
                was.as_deref().unwrap_or("nothing")
            ));
        }
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
    if !plan.rbac.is_empty() {
        out.push_str("\nRBAC changes:\n");
        for line in &plan.rbac {
            out.push_str(&format!("  {line}\n"));
        }
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
    use crate::render::render;
    use crate::render::settings::{AgentMode, ExecutorRbac, Settings};

    fn release(settings: &Settings) -> Vec<Manifest> {
        render(settings, &Baseline::seed().unwrap()).unwrap()
    }

    #[test]
    fn the_same_release_plans_no_change() {
        let r = release(&Settings::defaults());
        assert!(plan(&r, &r).is_empty());
        assert!(describe(&plan(&r, &r)).starts_with("no changes"));
    }

    #[test]
    fn enabling_the_executor_adds_its_objects_and_rbac() {
        let old = release(&Settings::defaults());
        let new = release(&Settings { executor: Some(ExecutorRbac::Scoped), ..Settings::defaults() });
        let p = plan(&old, &new);
        assert!(p.added.iter().any(|m| m.key() == "Deployment/causely/causely-executor"));
        assert!(p.removed.is_empty());
        assert!(p.rbac.iter().any(|l| l == "ClusterRole/causely-executor +apps/deployments:patch"), "{:?}", p.rbac);
        assert!(
            p.rbac
                .iter()
                .any(|l| l == "ClusterRoleBinding/causely-executor binds ClusterRole/causely-executor (was nothing)")
        );
    }

    #[test]
    fn switching_the_executor_to_cluster_admin_is_reported_as_an_rbac_change() {
        let old = release(&Settings { executor: Some(ExecutorRbac::Scoped), ..Settings::defaults() });
        let new = release(&Settings { executor: Some(ExecutorRbac::ClusterAdmin), ..Settings::defaults() });
        let p = plan(&old, &new);
        assert!(p.removed.iter().any(|m| m.key() == "ClusterRole/causely-executor"));
        assert!(p.rbac.contains(&"ClusterRoleBinding/causely-executor binds ClusterRole/cluster-admin (was ClusterRole/causely-executor)".to_owned()), "{:?}", p.rbac);
    }

    #[test]
    fn a_changed_object_comes_with_a_diff_of_what_changed() {
        let old = release(&Settings::defaults());
        let new = release(&Settings { agent_mode: AgentMode::Privileged, ..Settings::defaults() });
        let p = plan(&old, &new);
        let (m, diff) = p.changed.iter().find(|(m, _)| m.kind == "DaemonSet").unwrap();
        assert_eq!(m.name, "causely-agent");
        assert!(diff.contains("+          privileged: true"), "{diff}");
        assert!(diff.contains("-          privileged: false"), "{diff}");
    }
}
