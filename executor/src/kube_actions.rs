//! The actions as API calls, each usable as a server-side dry run (`dryRun=All`: authorised,
//! admitted and validated, nothing stored) or for real. Every call is one the scoped ClusterRole
//! grants (docs/executor.md lists them per action).

use causely_model::{Action, ActionKind, EntityId, WorkloadKind};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde_json::json;

use crate::rollback::{self, RollbackError};

/// The field manager of every change, so `managedFields` show who changed what.
pub const FIELD_MANAGER: &str = "causely-executor";
/// The pod template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Why an action did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum KubeActionError {
    /// The API server refused (forbidden, not found, invalid, conflict).
    #[error("the API server refused: {0}")]
    Refused(String),
    /// No answer from the API server.
    #[error("the API server could not be reached: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Rollback(#[from] RollbackError),
}

impl From<kube::Error> for KubeActionError {
    fn from(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => {
                let reason = if status.reason.is_empty() { "Error".to_owned() } else { status.reason.clone() };
                KubeActionError::Refused(format!(
                    "{} {reason}: {}",
                    status.code,
                    causely_runtime::one_line(&status.message)
                ))
            }
            other => KubeActionError::Unreachable(causely_runtime::one_line(&other.to_string())),
        }
    }
}

fn params(dry_run: bool) -> PatchParams {
    PatchParams { dry_run, field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() }
}

/// What an Event about `target` names as its subject, before the API server gave a uid.
pub fn reference(target: &EntityId) -> ObjectReference {
    let (api_version, kind, namespace, name) = match target {
        EntityId::Node { name } => ("v1", "Node", None, name.clone()),
        EntityId::Namespace { name } => ("v1", "Namespace", None, name.clone()),
        EntityId::Pod { namespace, name } => ("v1", "Pod", Some(namespace.clone()), name.clone()),
        EntityId::Container { namespace, pod, .. } => ("v1", "Pod", Some(namespace.clone()), pod.clone()),
        EntityId::Service { namespace, name } => ("v1", "Service", Some(namespace.clone()), name.clone()),
        EntityId::Workload { kind, namespace, name } => {
            let api_version = match kind {
                WorkloadKind::Job | WorkloadKind::CronJob => "batch/v1",
                WorkloadKind::ReplicationController => "v1",
                _ => "apps/v1",
            };
            (api_version, kind.api_kind(), Some(namespace.clone()), name.clone())
        }
    };
    ObjectReference {
        api_version: Some(api_version.to_owned()),
        kind: Some(kind.to_owned()),
        namespace,
        name: Some(name),
        ..ObjectReference::default()
    }
}

fn with_uid(mut reference: ObjectReference, uid: Option<String>) -> ObjectReference {
    reference.uid = uid;
    reference
}

fn workload_resource(kind: WorkloadKind) -> Option<ApiResource> {
    match kind {
        WorkloadKind::Deployment => Some(ApiResource::erase::<Deployment>(&())),
        WorkloadKind::StatefulSet => Some(ApiResource::erase::<StatefulSet>(&())),
        WorkloadKind::DaemonSet => Some(ApiResource::erase::<DaemonSet>(&())),
        _ => None,
    }
}

/// Carries out `action` once, as a dry run or for real, and returns the target with its uid.
pub async fn perform(client: &Client, action: &Action, dry_run: bool) -> Result<ObjectReference, KubeActionError> {
    let target = reference(&action.target);
    let unsupported = || KubeActionError::Refused(format!("{} cannot target {}", action.kind.name(), action.target));
    match (&action.kind, &action.target) {
        (ActionKind::Restart {}, EntityId::Workload { kind, namespace, name }) => {
            let resource = workload_resource(*kind).ok_or_else(unsupported)?;
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
            let now = k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second).unwrap_or_default();
            let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now.to_string()}}}}});
            let object = api.patch(name, &params(dry_run), &Patch::Strategic(patch)).await?;
            Ok(with_uid(target, object.metadata.uid))
        }
        (ActionKind::DeletePod {}, EntityId::Pod { namespace, name }) => {
            let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let deleted = api.delete(name, &DeleteParams { dry_run, ..DeleteParams::default() }).await?;
            let uid = deleted.left().and_then(|pod| pod.metadata.uid);
            Ok(with_uid(target, uid))
        }
        (ActionKind::Scale { replicas }, EntityId::Workload { kind, namespace, name }) => {
            let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
            let scale = match kind {
                WorkloadKind::Deployment => {
                    Api::<Deployment>::namespaced(client.clone(), namespace)
                        .patch_scale(name, &params(dry_run), &patch)
                        .await?
                }
                WorkloadKind::StatefulSet => {
                    Api::<StatefulSet>::namespaced(client.clone(), namespace)
                        .patch_scale(name, &params(dry_run), &patch)
                        .await?
                }
                _ => return Err(unsupported()),
            };
            Ok(with_uid(target, scale.metadata.uid))
        }
        (ActionKind::Cordon {} | ActionKind::Uncordon {}, EntityId::Node { name }) => {
            let unschedulable = if matches!(action.kind, ActionKind::Cordon {}) { json!(true) } else { json!(null) };
            let patch = Patch::Strategic(json!({"spec": {"unschedulable": unschedulable}}));
            let node = Api::<Node>::all(client.clone()).patch(name, &params(dry_run), &patch).await?;
            Ok(with_uid(target, node.metadata.uid))
        }
        (ActionKind::Rollback {}, EntityId::Workload { kind: WorkloadKind::Deployment, namespace, name }) => {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
            let deployment = deployments.get(name).await?;
            let sets = Api::<ReplicaSet>::namespaced(client.clone(), namespace).list(&ListParams::default()).await?;
            let previous = rollback::previous(&deployment, &sets.items)?;
            // As `kubectl rollout undo`: a JSON patch replacing the template, guarded by the
            // generation read above (it moves with the spec, not with status updates), so a
            // concurrent change of the spec makes it fail instead of being overwritten.
            let generation = deployment.metadata.generation.unwrap_or_default();
            let ops = json!([
                {"op": "test", "path": "/metadata/generation", "value": generation},
                {"op": "replace", "path": "/spec/template", "value": previous.template},
            ]);
            let updated = json_patch(client, &deployment, &ops, dry_run).await?;
            Ok(with_uid(target, updated.metadata.uid))
        }
        _ => Err(unsupported()),
    }
}

/// kube's typed `Patch::Json` needs an extra crate; this one request is built by hand instead.
async fn json_patch(
    client: &Client,
    deployment: &Deployment,
    ops: &serde_json::Value,
    dry_run: bool,
) -> Result<Deployment, KubeActionError> {
    let namespace = deployment.metadata.namespace.as_deref().unwrap_or_default();
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let mut url = format!("{}/{name}?fieldManager={FIELD_MANAGER}", Deployment::url_path(&(), Some(namespace)));
    if dry_run {
        url.push_str("&dryRun=All");
    }
    let body = serde_json::to_vec(ops).map_err(|e| KubeActionError::Refused(e.to_string()))?;
    let request = http::Request::patch(url)
        .header(http::header::CONTENT_TYPE, "application/json-patch+json")
        .body(body)
        .map_err(|e| KubeActionError::Refused(e.to_string()))?;
    Ok(client.request::<Deployment>(request).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_subjects_name_the_api_kind_and_group_of_the_target() {
        let r = reference(&"workload/statefulset/db/pg".parse().unwrap());
        assert_eq!((r.api_version.as_deref(), r.kind.as_deref()), (Some("apps/v1"), Some("StatefulSet")));
        assert_eq!((r.namespace.as_deref(), r.name.as_deref()), (Some("db"), Some("pg")));
        let r = reference(&"node/n1".parse().unwrap());
        assert_eq!((r.api_version.as_deref(), r.kind.as_deref(), r.namespace), (Some("v1"), Some("Node"), None));
    }

    #[test]
    fn api_refusals_keep_the_status_code_reason_and_message_on_one_line() {
        let status =
            kube::core::Status::failure("nodes \"n1\" is forbidden:\n  cannot patch", "Forbidden").with_code(403);
        let err = KubeActionError::from(kube::Error::Api(Box::new(status)));
        assert_eq!(err.to_string(), "the API server refused: 403 Forbidden: nodes \"n1\" is forbidden: cannot patch");
    }
}
