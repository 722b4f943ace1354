//! Finding the pods the cluster tests look at: by component label, on a node, once Ready.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use crate::poll;

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Causely component a pod belongs to (`app.kubernetes.io/name`).
pub fn component(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get("app.kubernetes.io/name").map(String::as_str)
}

/// The node the pod was placed on.
pub fn node(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// The first container's runtime id without its `containerd://` scheme.
pub fn containerd_id(pod: &Pod) -> Option<&str> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.first()?.container_id.as_deref()?.strip_prefix("containerd://")
}

/// Waits until a pod of `component` on `node` is Ready, not being deleted, and passes `also`.
pub async fn ready_on(
    pods: &Api<Pod>,
    component: &str,
    node: &str,
    timeout: Duration,
    also: impl Fn(&Pod) -> bool,
) -> anyhow::Result<Pod> {
    let selector = format!("app.kubernetes.io/name={component}");
    poll::until(&format!("a Ready {component} pod on {node}"), timeout, || async {
        let list = pods.list(&ListParams::default().labels(&selector)).await?;
        Ok(list
            .items
            .into_iter()
            .find(|p| self::node(p) == Some(node) && is_ready(p) && p.metadata.deletion_timestamp.is_none() && also(p)))
    })
    .await
}
