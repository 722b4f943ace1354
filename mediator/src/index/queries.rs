//! Lookups over the cluster index, answering with model entity ids.

use std::net::IpAddr;

use causely_model::EntityId;

use super::records::{PodRecord, ServiceRecord};
use super::{ClusterIndex, ObjRef};

/// Owner chains are short (pod, ReplicaSet, Deployment); the bound only guards against a reference cycle.
const MAX_CHAIN: usize = 8;

fn pod_id(at: &ObjRef) -> EntityId {
    EntityId::pod(at.namespace.as_ref(), at.name.as_ref())
}

impl ClusterIndex {
    /// The pod that has `ip`. Pods on the host network are never the answer (their IP is the node's), nor
    /// are finished pods (their IP may be reused).
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<EntityId> {
        self.pod_at_ip(ip).map(pod_id)
    }

    pub fn pod_by_uid(&self, uid: &str) -> Option<EntityId> {
        self.pod_with_uid(uid).map(pod_id)
    }

    /// The service with ClusterIP `ip` that has a port `port`.
    pub fn service_by_cluster_ip(&self, ip: IpAddr, port: u16) -> Option<EntityId> {
        let at = self.service_at_ip(ip)?;
        let service = self.namespace(&at.namespace)?.services.get(at.name.as_ref())?;
        service.ports.iter().any(|p| p.port == port).then(|| EntityId::service(at.namespace.as_ref(), at.name.as_ref()))
    }

    pub fn node_of(&self, pod: &EntityId) -> Option<EntityId> {
        let (_, _, record) = self.pod_of(pod)?;
        record.node.as_deref().map(EntityId::node)
    }

    /// The pod's containers, init containers first, in the pod's order.
    pub fn containers_of(&self, pod: &EntityId) -> Vec<EntityId> {
        let Some((ns, name, record)) = self.pod_of(pod) else { return Vec::new() };
        record.containers.iter().map(|c| EntityId::container(ns, name, c.name.as_ref())).collect()
    }

    /// The controllers above a pod or workload, nearest first: pod → ReplicaSet → Deployment, pod → Job →
    /// CronJob, pod → StatefulSet. The first link comes from the object's own ownerReference, so it is named
    /// even before the owner itself has been indexed; later links need the owner's record.
    pub fn owner_chain(&self, id: &EntityId) -> Vec<EntityId> {
        let (ns, mut owner) = match id {
            EntityId::Pod { namespace, name } => {
                (namespace.as_str(), self.pod_record(namespace, name).and_then(|p| p.owner.clone()))
            }
            EntityId::Workload { kind, namespace, name } => (
                namespace.as_str(),
                self.namespace(namespace).and_then(|b| b.workload(*kind, name)).and_then(|w| w.owner.clone()),
            ),
            _ => return Vec::new(),
        };
        let mut chain = Vec::new();
        while let Some(link) = owner.take() {
            if chain.len() == MAX_CHAIN {
                break;
            }
            chain.push(EntityId::workload(link.kind, ns, link.name.as_ref()));
            owner = self.namespace(ns).and_then(|b| b.workload(link.kind, &link.name)).and_then(|w| w.owner.clone());
        }
        chain
    }

    /// The top of the pod's owner chain: the workload a user deployed.
    pub fn workload_of(&self, pod: &EntityId) -> Option<EntityId> {
        self.owner_chain(pod).pop()
    }

    /// Services in the pod's namespace whose non-empty selector the pod's labels satisfy, by name.
    pub fn services_selecting(&self, pod: &EntityId) -> Vec<EntityId> {
        let Some((ns, _, record)) = self.pod_of(pod) else { return Vec::new() };
        let Some(bucket) = self.namespace(ns) else { return Vec::new() };
        bucket
            .services
            .iter()
            .filter(|(_, service)| record.labels.selected_by(&service.selector))
            .map(|(name, _)| EntityId::service(ns, name.as_ref()))
            .collect()
    }

    /// Pods in the service's namespace that its selector selects, by name.
    pub fn pods_selected_by(&self, service: &EntityId) -> Vec<EntityId> {
        let mut pods: Vec<EntityId> =
            self.selected_pods(service).map(|(ns, name, _)| EntityId::pod(ns, name)).collect();
        pods.sort();
        pods
    }

    /// The pods bound to `node`, with their containers' names and runtime ids, sorted by namespace
    /// and name.
    pub fn pods_on_node(&self, node: &str) -> Vec<causely_model::api::NodePod> {
        let mut pods = Vec::new();
        for (ns, bucket) in self.namespaces() {
            for (name, record) in bucket.pods.iter().filter(|(_, p)| p.node.as_deref() == Some(node)) {
                pods.push(causely_model::api::NodePod {
                    uid: record.uid.text(),
                    namespace: ns.to_owned(),
                    name: name.to_string(),
                    containers: record
                        .containers
                        .iter()
                        .map(|c| causely_model::api::NodeContainer {
                            name: c.name.to_string(),
                            id: c.id.as_deref().map(str::to_owned),
                        })
                        .collect(),
                });
            }
        }
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        pods
    }

    /// Whether the index holds the entity `id` names. Namespaces exist while they hold an indexed object.
    pub fn contains(&self, id: &EntityId) -> bool {
        match id {
            EntityId::Node { name } => self.has_node(name),
            EntityId::Namespace { name } => self.namespace(name).is_some(),
            EntityId::Pod { namespace, name } => self.pod_record(namespace, name).is_some(),
            EntityId::Container { namespace, pod, name } => {
                self.pod_record(namespace, pod).is_some_and(|p| p.containers.iter().any(|c| c.name.as_ref() == name))
            }
            EntityId::Service { namespace, name } => self.service_record(namespace, name).is_some(),
            EntityId::Workload { kind, namespace, name } => {
                self.namespace(namespace).and_then(|b| b.workload(*kind, name)).is_some()
            }
        }
    }

    /// Services selecting `pod` and the service ports that forward to `container_port` on it.
    pub(crate) fn services_exposing(&self, pod: &EntityId, container_port: u16) -> Vec<(EntityId, u16)> {
        let Some((ns, _, record)) = self.pod_of(pod) else { return Vec::new() };
        let Some(bucket) = self.namespace(ns) else { return Vec::new() };
        bucket
            .services
            .iter()
            .filter(|(_, service)| record.labels.selected_by(&service.selector))
            .flat_map(|(name, service)| {
                service
                    .ports_targeting(container_port, record)
                    .map(move |port| (EntityId::service(ns, name.as_ref()), port))
            })
            .collect()
    }

    /// The pods behind `service`'s port `port`, each with the container port it forwards to there.
    pub(crate) fn backends_of(&self, service: &EntityId, port: u16) -> Vec<(EntityId, u16)> {
        let Some(record) = self.service_of(service) else { return Vec::new() };
        self.selected_pods(service)
            .filter_map(|(ns, name, pod)| Some((EntityId::pod(ns, name), record.target_on(port, pod)?)))
            .collect()
    }

    /// The workload a pod belongs to, or the pod itself when no workload controls it.
    pub(crate) fn workload_or_pod(&self, pod: &EntityId) -> EntityId {
        self.workload_of(pod).unwrap_or_else(|| pod.clone())
    }

    fn pod_of<'a>(&'a self, id: &'a EntityId) -> Option<(&'a str, &'a str, &'a PodRecord)> {
        let EntityId::Pod { namespace, name } = id else { return None };
        Some((namespace, name, self.pod_record(namespace, name)?))
    }

    fn service_record(&self, ns: &str, name: &str) -> Option<&ServiceRecord> {
        self.namespace(ns)?.services.get(name)
    }

    fn service_of(&self, id: &EntityId) -> Option<&ServiceRecord> {
        let EntityId::Service { namespace, name } = id else { return None };
        self.service_record(namespace, name)
    }

    fn selected_pods<'a>(&'a self, service: &'a EntityId) -> impl Iterator<Item = (&'a str, &'a str, &'a PodRecord)> {
        let found = match service {
            EntityId::Service { namespace, name } => {
                self.namespace(namespace).and_then(|b| Some((namespace.as_str(), b, b.services.get(name.as_str())?)))
            }
            _ => None,
        };
        found.into_iter().flat_map(|(ns, bucket, svc)| {
            bucket
                .pods
                .iter()
                .filter(move |(_, pod)| pod.labels.selected_by(&svc.selector))
                .map(move |(name, pod)| (ns, name.as_ref(), pod))
        })
    }
}
