//! `kubectl rollout undo` semantics as a pure function: among the ReplicaSets a Deployment owns,
//! the one with the second-highest `deployment.kubernetes.io/revision` holds the previous
//! template; it comes back without the `pod-template-hash` label the controller added.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;

pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
const HASH_LABEL: &str = "pod-template-hash";

/// Why there is nothing to roll back to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    #[error("deployment {0} has no previous revision to roll back to")]
    NoHistory(String),
    #[error("deployment {0} is paused; resume it before rolling back")]
    Paused(String),
    #[error("deployment {name} already runs the template of revision {revision}")]
    AlreadyThere { name: String, revision: i64 },
}

/// The previous revision and its template, ready to be put back into the Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Previous {
    pub revision: i64,
    pub template: PodTemplateSpec,
}

fn revision(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata.annotations.as_ref()?.get(REVISION_ANNOTATION)?.parse().ok()
}

fn owned_by(rs: &ReplicaSet, uid: &str) -> bool {
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind == "Deployment" && o.uid == uid)
}

fn without_hash(mut template: PodTemplateSpec) -> PodTemplateSpec {
    if let Some(meta) = template.metadata.as_mut()
        && let Some(labels) = meta.labels.as_mut()
    {
        labels.remove(HASH_LABEL);
    }
    template
}

/// Finds the template to roll `deployment` back to among `replica_sets` (any ReplicaSets of its
/// namespace; those it does not control are ignored).
pub fn previous(deployment: &Deployment, replica_sets: &[ReplicaSet]) -> Result<Previous, RollbackError> {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let spec = deployment.spec.as_ref().ok_or_else(|| RollbackError::NoHistory(name.clone()))?;
    if spec.paused == Some(true) {
        return Err(RollbackError::Paused(name));
    }
    let uid = deployment.metadata.uid.as_deref().unwrap_or_default();
    // As kubectl's LastRevision: the highest and second-highest revisions.
    let mut newest: Option<(i64, &ReplicaSet)> = None;
    let mut before: Option<(i64, &ReplicaSet)> = None;
    for rs in replica_sets.iter().filter(|rs| owned_by(rs, uid)) {
        let Some(rev) = revision(rs) else { continue };
        if newest.is_none_or(|(max, _)| rev >= max) {
            before = newest;
            newest = Some((rev, rs));
        } else if before.is_none_or(|(second, _)| rev > second) {
            before = Some((rev, rs));
        }
    }
    let (revision, rs) = before.ok_or_else(|| RollbackError::NoHistory(name.clone()))?;
    let template =
        rs.spec.as_ref().and_then(|s| s.template.clone()).ok_or_else(|| RollbackError::NoHistory(name.clone()))?;
    let template = without_hash(template);
    if template == without_hash(spec.template.clone()) {
        return Err(RollbackError::AlreadyThere { name, revision });
    }
    Ok(Previous { revision, template })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(image: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "d-uid"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": image}]}}
            }
        }))
        .unwrap()
    }

    fn rs(name: &str, revision: &str, image: &str, owner: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "namespace": "shop",
                "annotations": {REVISION_ANNOTATION: revision},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                     "uid": owner, "controller": true}]
            },
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": name}},
                             "spec": {"containers": [{"name": "web", "image": image}]}}
            }
        }))
        .unwrap()
    }

    fn image(template: &PodTemplateSpec) -> String {
        template.spec.as_ref().unwrap().containers[0].image.clone().unwrap()
    }

    #[test]
    fn the_previous_revisions_template_comes_back_without_the_hash_label() {
        let sets = [
            rs("web-1", "1", "web:1", "d-uid"),
            rs("web-3", "3", "web:3", "d-uid"),
            rs("web-2", "2", "web:2", "d-uid"),
        ];
        let prev = previous(&deployment("web:3"), &sets).unwrap();
        assert_eq!(prev.revision, 2);
        assert_eq!(image(&prev.template), "web:2");
        let labels = prev.template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert!(!labels.contains_key("pod-template-hash"));
    }

    #[test]
    fn replica_sets_of_other_owners_are_ignored() {
        let sets = [rs("web-1", "1", "web:1", "other"), rs("web-2", "2", "web:2", "d-uid")];
        assert_eq!(previous(&deployment("web:2"), &sets), Err(RollbackError::NoHistory("web".into())));
    }

    #[test]
    fn a_deployment_with_one_revision_has_nothing_to_roll_back_to() {
        let sets = [rs("web-1", "1", "web:1", "d-uid")];
        assert_eq!(previous(&deployment("web:1"), &sets), Err(RollbackError::NoHistory("web".into())));
    }

    #[test]
    fn a_paused_deployment_is_not_rolled_back() {
        let mut d = deployment("web:2");
        d.spec.as_mut().unwrap().paused = Some(true);
        let sets = [rs("web-1", "1", "web:1", "d-uid"), rs("web-2", "2", "web:2", "d-uid")];
        assert_eq!(previous(&d, &sets), Err(RollbackError::Paused("web".into())));
    }

    #[test]
    fn rolling_back_to_the_template_already_running_is_refused() {
        // Revision 2 was a rollback to revision 1's template already.
        let sets = [
            rs("web-a", "1", "web:1", "d-uid"),
            rs("web-b", "2", "web:1", "d-uid"),
            rs("web-c", "3", "web:2", "d-uid"),
        ];
        let mut d = deployment("web:1");
        d.metadata.uid = Some("d-uid".into());
        assert_eq!(previous(&d, &sets), Err(RollbackError::AlreadyThere { name: "web".into(), revision: 2 }));
    }
}
