//! Names the containers behind cgroups: the agent knows a cgroup's pod UID and container id; the
//! mediator's `GET /v1/pods?node=` says which namespace, pod and container those are, and so do
//! the labels of the kubelet's cAdvisor metrics when the kubelet can be read.

use std::collections::HashMap;

use causely_model::EntityId;
use causely_model::api::{NodePod, NodePods};

use crate::cgroup::PodContainer;

/// The pods on this node, by UID.
#[derive(Debug, Default, Clone)]
pub struct PodNames {
    by_uid: HashMap<String, NodePod>,
}

impl PodNames {
    pub fn new(pods: NodePods) -> Self {
        PodNames { by_uid: pods.pods.into_iter().map(|p| (p.uid.clone(), p)).collect() }
    }

    /// These names, with the pods and containers they lack filled in from `kubelet` (cAdvisor's
    /// labels). The mediator's answer wins where both know a pod: it is the API server's view.
    pub fn with_fallback(mut self, kubelet: &NodePods) -> Self {
        for pod in &kubelet.pods {
            match self.by_uid.get_mut(&pod.uid) {
                None => {
                    self.by_uid.insert(pod.uid.clone(), pod.clone());
                }
                Some(known) => {
                    for container in &pod.containers {
                        let has_id = known.containers.iter().any(|c| c.id.is_some() && c.id == container.id);
                        let same_name = known.containers.iter_mut().find(|c| c.name == container.name);
                        match (has_id, same_name) {
                            (true, _) => {}
                            (false, Some(named)) if named.id.is_none() => named.id.clone_from(&container.id),
                            (false, Some(_)) => {}
                            (false, None) => known.containers.push(container.clone()),
                        }
                    }
                }
            }
        }
        self
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }

    /// Whether a cgroup is its pod's sandbox (the "pause" container every pod has, which the API
    /// server never lists): the pod is known, every one of its containers has a runtime id, and
    /// this cgroup's id is none of them. Such a cgroup is not waiting for a name.
    pub fn is_sandbox(&self, cgroup: &PodContainer) -> bool {
        let (Some(pod), Some(id)) = (self.by_uid.get(&cgroup.pod_uid), cgroup.container_id.as_deref()) else {
            return false;
        };
        !pod.containers.is_empty() && pod.containers.iter().all(|c| c.id.as_deref().is_some_and(|known| known != id))
    }

    /// The container entity for a cgroup: by runtime id when the kubelet reported ids, else the
    /// only container of a single-container pod. `None` when it cannot be told.
    pub fn container(&self, cgroup: &PodContainer) -> Option<EntityId> {
        let pod = self.by_uid.get(&cgroup.pod_uid)?;
        let id = cgroup.container_id.as_deref()?;
        let by_id = pod.containers.iter().find(|c| c.id.as_deref() == Some(id));
        let only = match pod.containers.as_slice() {
            [only] if only.id.is_none() => Some(only),
            _ => None,
        };
        let container = by_id.or(only)?;
        Some(EntityId::container(pod.namespace.clone(), pod.name.clone(), container.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use causely_model::api::NodeContainer;

    use super::*;
    use crate::cgroup::Qos;

    fn names() -> PodNames {
        let container = |name: &str, id: Option<&str>| NodeContainer { name: name.into(), id: id.map(Into::into) };
        PodNames::new(NodePods {
            pods: vec![
                NodePod {
                    uid: "u1".into(),
                    namespace: "shop".into(),
                    name: "web-1".into(),
                    containers: vec![container("app", Some("aa")), container("proxy", Some("bb"))],
                },
                NodePod {
                    uid: "u2".into(),
                    namespace: "shop".into(),
                    name: "db-0".into(),
                    containers: vec![container("db", None)],
                },
                NodePod {
                    uid: "u3".into(),
                    namespace: "shop".into(),
                    name: "two".into(),
                    containers: vec![container("a", None), container("b", None)],
                },
            ],
        })
    }

    fn cgroup(uid: &str, id: &str) -> PodContainer {
        PodContainer { pod_uid: uid.into(), container_id: Some(id.into()), qos: Qos::Burstable }
    }

    #[test]
    fn containers_are_named_by_their_runtime_id() {
        assert_eq!(names().container(&cgroup("u1", "bb")), Some(EntityId::container("shop", "web-1", "proxy")));
        assert_eq!(names().container(&cgroup("u1", "cc")), None, "an id the pod does not have");
    }

    #[test]
    fn a_cgroup_that_is_none_of_a_fully_known_pods_containers_is_its_sandbox() {
        assert!(names().is_sandbox(&cgroup("u1", "pause-id")), "web-1 reported both its containers' ids");
        assert!(!names().is_sandbox(&cgroup("u1", "aa")), "a container of the pod");
        assert!(!names().is_sandbox(&cgroup("u3", "pause-id")), "two's containers have no ids yet: cannot tell");
        assert!(!names().is_sandbox(&cgroup("u9", "pause-id")), "an unknown pod");
    }

    #[test]
    fn the_kubelets_names_fill_in_pods_and_container_ids_the_mediator_did_not_give() {
        let kubelet = NodePods {
            pods: vec![
                NodePod {
                    uid: "u3".into(),
                    namespace: "elsewhere".into(),
                    name: "renamed".into(),
                    containers: vec![NodeContainer { name: "b".into(), id: Some("b3".into()) }],
                },
                NodePod {
                    uid: "u4".into(),
                    namespace: "ops".into(),
                    name: "new-0".into(),
                    containers: vec![NodeContainer { name: "main".into(), id: Some("d4".into()) }],
                },
            ],
        };
        let names = names().with_fallback(&kubelet);
        assert_eq!(names.container(&cgroup("u4", "d4")), Some(EntityId::container("ops", "new-0", "main")));
        assert_eq!(
            names.container(&cgroup("u3", "b3")),
            Some(EntityId::container("shop", "two", "b")),
            "the id fills the mediator's container; the mediator's pod name stays"
        );
        assert_eq!(names.container(&cgroup("u1", "aa")), Some(EntityId::container("shop", "web-1", "app")));
    }

    #[test]
    fn a_single_container_pod_without_reported_ids_names_its_only_container() {
        assert_eq!(names().container(&cgroup("u2", "anything")), Some(EntityId::container("shop", "db-0", "db")));
        assert_eq!(names().container(&cgroup("u3", "anything")), None, "two containers, no ids: ambiguous");
        assert_eq!(names().container(&cgroup("u9", "aa")), None, "an unknown pod");
    }
}
