//! The cluster index: a pure structure kept current by applying watch events, answering the lookups the
//! topology join and the symptom detectors need (pod by IP or UID, service by ClusterIP and port, owners,
//! selection).
//!
//! Each object is converted to a slim record on apply (see `records` for what is kept and why) and the
//! k8s-openapi object is never stored. Events are not stored either: no detector reads them (every symptom is
//! derived from object status, which events only narrate), so the index counts them and drops them.

mod intern;
mod queries;
pub(crate) mod records;

#[cfg(test)]
pub(crate) mod fixtures;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use causely_model::WorkloadKind;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Node, Pod, ReplicationController, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use intern::Interner;
use records::{NodeRecord, PodRecord, ServiceRecord, Uid, WorkloadRecord};

/// One object as a watch delivers it.
#[derive(Debug, Clone)]
pub enum ClusterObject {
    Pod(Box<Pod>),
    Node(Box<Node>),
    Service(Box<Service>),
    Event(Box<Event>),
    Deployment(Box<Deployment>),
    ReplicaSet(Box<ReplicaSet>),
    ReplicationController(Box<ReplicationController>),
    Job(Box<Job>),
    CronJob(Box<CronJob>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
}

/// The kinds of object the index watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    Pod,
    Node,
    Service,
    Event,
    Deployment,
    ReplicaSet,
    ReplicationController,
    Job,
    CronJob,
    StatefulSet,
    DaemonSet,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 11] = [
        ObjectKind::Pod,
        ObjectKind::Node,
        ObjectKind::Service,
        ObjectKind::Event,
        ObjectKind::Deployment,
        ObjectKind::ReplicaSet,
        ObjectKind::ReplicationController,
        ObjectKind::Job,
        ObjectKind::CronJob,
        ObjectKind::StatefulSet,
        ObjectKind::DaemonSet,
    ];

    /// The workload kind this object kind is, if it is one.
    pub fn workload_kind(self) -> Option<WorkloadKind> {
        match self {
            ObjectKind::Deployment => Some(WorkloadKind::Deployment),
            ObjectKind::ReplicaSet => Some(WorkloadKind::ReplicaSet),
            ObjectKind::ReplicationController => Some(WorkloadKind::ReplicationController),
            ObjectKind::Job => Some(WorkloadKind::Job),
            ObjectKind::CronJob => Some(WorkloadKind::CronJob),
            ObjectKind::StatefulSet => Some(WorkloadKind::StatefulSet),
            ObjectKind::DaemonSet => Some(WorkloadKind::DaemonSet),
            ObjectKind::Pod | ObjectKind::Node | ObjectKind::Service | ObjectKind::Event => None,
        }
    }
}

impl From<Pod> for ClusterObject {
    fn from(o: Pod) -> Self {
        ClusterObject::Pod(Box::new(o))
    }
}
impl From<Node> for ClusterObject {
    fn from(o: Node) -> Self {
        ClusterObject::Node(Box::new(o))
    }
}
impl From<Service> for ClusterObject {
    fn from(o: Service) -> Self {
        ClusterObject::Service(Box::new(o))
    }
}
impl From<Event> for ClusterObject {
    fn from(o: Event) -> Self {
        ClusterObject::Event(Box::new(o))
    }
}
impl From<Deployment> for ClusterObject {
    fn from(o: Deployment) -> Self {
        ClusterObject::Deployment(Box::new(o))
    }
}
impl From<ReplicaSet> for ClusterObject {
    fn from(o: ReplicaSet) -> Self {
        ClusterObject::ReplicaSet(Box::new(o))
    }
}
impl From<ReplicationController> for ClusterObject {
    fn from(o: ReplicationController) -> Self {
        ClusterObject::ReplicationController(Box::new(o))
    }
}
impl From<Job> for ClusterObject {
    fn from(o: Job) -> Self {
        ClusterObject::Job(Box::new(o))
    }
}
impl From<CronJob> for ClusterObject {
    fn from(o: CronJob) -> Self {
        ClusterObject::CronJob(Box::new(o))
    }
}
impl From<StatefulSet> for ClusterObject {
    fn from(o: StatefulSet) -> Self {
        ClusterObject::StatefulSet(Box::new(o))
    }
}
impl From<DaemonSet> for ClusterObject {
    fn from(o: DaemonSet) -> Self {
        ClusterObject::DaemonSet(Box::new(o))
    }
}

impl ClusterObject {
    pub fn kind(&self) -> ObjectKind {
        match self {
            ClusterObject::Pod(_) => ObjectKind::Pod,
            ClusterObject::Node(_) => ObjectKind::Node,
            ClusterObject::Service(_) => ObjectKind::Service,
            ClusterObject::Event(_) => ObjectKind::Event,
            ClusterObject::Deployment(_) => ObjectKind::Deployment,
            ClusterObject::ReplicaSet(_) => ObjectKind::ReplicaSet,
            ClusterObject::ReplicationController(_) => ObjectKind::ReplicationController,
            ClusterObject::Job(_) => ObjectKind::Job,
            ClusterObject::CronJob(_) => ObjectKind::CronJob,
            ClusterObject::StatefulSet(_) => ObjectKind::StatefulSet,
            ClusterObject::DaemonSet(_) => ObjectKind::DaemonSet,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            ClusterObject::Pod(o) => &o.metadata,
            ClusterObject::Node(o) => &o.metadata,
            ClusterObject::Service(o) => &o.metadata,
            ClusterObject::Event(o) => &o.metadata,
            ClusterObject::Deployment(o) => &o.metadata,
            ClusterObject::ReplicaSet(o) => &o.metadata,
            ClusterObject::ReplicationController(o) => &o.metadata,
            ClusterObject::Job(o) => &o.metadata,
            ClusterObject::CronJob(o) => &o.metadata,
            ClusterObject::StatefulSet(o) => &o.metadata,
            ClusterObject::DaemonSet(o) => &o.metadata,
        }
    }
}

/// How many objects of each kind the index holds, for the mediator's status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexCounts {
    pub pods: usize,
    pub nodes: usize,
    pub services: usize,
    pub deployments: usize,
    pub replica_sets: usize,
    pub replication_controllers: usize,
    pub jobs: usize,
    pub cron_jobs: usize,
    pub stateful_sets: usize,
    pub daemon_sets: usize,
    /// Event objects applied (watch deliveries and re-lists); events are counted, never stored.
    pub events_seen: u64,
    /// Of those, events of type Warning.
    pub warning_events_seen: u64,
    pub namespaces: usize,
    pub interned_strings: usize,
}

impl IndexCounts {
    /// The number held of `kind`; for events, the number seen.
    pub fn of(&self, kind: ObjectKind) -> u64 {
        let held = match kind {
            ObjectKind::Pod => self.pods,
            ObjectKind::Node => self.nodes,
            ObjectKind::Service => self.services,
            ObjectKind::Event => return self.events_seen,
            ObjectKind::Deployment => self.deployments,
            ObjectKind::ReplicaSet => self.replica_sets,
            ObjectKind::ReplicationController => self.replication_controllers,
            ObjectKind::Job => self.jobs,
            ObjectKind::CronJob => self.cron_jobs,
            ObjectKind::StatefulSet => self.stateful_sets,
            ObjectKind::DaemonSet => self.daemon_sets,
        };
        held as u64
    }
}

/// A namespaced object's place in the index; both strings are shared with the record's map key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjRef {
    pub(crate) namespace: Arc<str>,
    pub(crate) name: Arc<str>,
}

/// Everything the index holds in one namespace.
#[derive(Debug, Default)]
pub(crate) struct NamespaceIndex {
    pub(crate) pods: HashMap<Arc<str>, PodRecord>,
    pub(crate) services: BTreeMap<Arc<str>, ServiceRecord>,
    pub(crate) workloads: BTreeMap<WorkloadKind, HashMap<Arc<str>, WorkloadRecord>>,
}

impl NamespaceIndex {
    fn is_empty(&self) -> bool {
        self.pods.is_empty() && self.services.is_empty() && self.workloads.values().all(HashMap::is_empty)
    }

    pub(crate) fn workload(&self, kind: WorkloadKind, name: &str) -> Option<&WorkloadRecord> {
        self.workloads.get(&kind)?.get(name)
    }
}

/// The cluster's objects as slim records, with the secondary indexes the lookups need.
#[derive(Debug, Default)]
pub struct ClusterIndex {
    strings: Interner,
    namespaces: HashMap<Arc<str>, NamespaceIndex>,
    nodes: BTreeMap<Arc<str>, NodeRecord>,
    pods_by_uid: HashMap<Uid, ObjRef>,
    pods_by_ip: HashMap<IpAddr, ObjRef>,
    services_by_ip: HashMap<IpAddr, ObjRef>,
    events_seen: u64,
    warning_events_seen: u64,
}

fn namespaced(meta: &ObjectMeta) -> Option<(&str, &str)> {
    Some((meta.namespace.as_deref()?, meta.name.as_deref()?))
}

/// Removes `key` from a secondary index only if it still points at `at`: a newer object may have taken the
/// key over (a pod IP reused by the next pod), and that entry must survive the old object's removal.
fn unlink<K: std::hash::Hash + Eq>(map: &mut HashMap<K, ObjRef>, key: &K, at: &ObjRef) {
    if map.get(key) == Some(at) {
        map.remove(key);
    }
}

fn unlink_pod(by_uid: &mut HashMap<Uid, ObjRef>, by_ip: &mut HashMap<IpAddr, ObjRef>, at: &ObjRef, pod: &PodRecord) {
    unlink(by_uid, &pod.uid, at);
    for ip in &pod.ips {
        unlink(by_ip, ip, at);
    }
}

fn link_pod(by_uid: &mut HashMap<Uid, ObjRef>, by_ip: &mut HashMap<IpAddr, ObjRef>, at: &ObjRef, pod: &PodRecord) {
    if !pod.uid.is_empty() {
        by_uid.insert(pod.uid.clone(), at.clone());
    }
    if pod.owns_its_ips() {
        for ip in &pod.ips {
            by_ip.insert(*ip, at.clone());
        }
    }
}

impl ClusterIndex {
    pub fn new() -> Self {
        ClusterIndex::default()
    }

    /// Adds or updates an object (a watch's Added or Modified event).
    pub fn apply(&mut self, obj: &ClusterObject) {
        match obj {
            ClusterObject::Pod(pod) => self.apply_pod(pod),
            ClusterObject::Node(node) => {
                let Some(name) = node.metadata.name.as_deref() else { return };
                let record = records::node_record(node, &mut self.strings);
                let name = self.strings.intern(name);
                if self.nodes.insert(name, record).is_some() {
                    self.strings.note_change();
                }
            }
            ClusterObject::Service(service) => self.apply_service(service),
            ClusterObject::Event(event) => {
                self.events_seen += 1;
                if event.type_.as_deref() == Some("Warning") {
                    self.warning_events_seen += 1;
                }
            }
            ClusterObject::Deployment(o) => {
                let record = records::deployment_record(o, &mut self.strings);
                self.put_workload(WorkloadKind::Deployment, &o.metadata, record);
            }
            ClusterObject::ReplicaSet(o) => {
                let record = records::replica_set_record(o, &mut self.strings);
                self.put_workload(WorkloadKind::ReplicaSet, &o.metadata, record);
            }
            ClusterObject::ReplicationController(o) => {
                let record = records::replication_controller_record(o, &mut self.strings);
                self.put_workload(WorkloadKind::ReplicationController, &o.metadata, record);
            }
            ClusterObject::Job(o) => {
                let record = records::job_record(o, &mut self.strings);
                self.put_workload(WorkloadKind::Job, &o.metadata, record);
            }
            ClusterObject::CronJob(o) => {
                let record = records::cron_job_record(o, &mut self.strings);
                self.put_workload(WorkloadKind::CronJob, &o.metadata, record);
            }
            ClusterObject::StatefulSet(o) => {
                let record = records::stateful_set_record(o, &mut self.strings);
                self.put_workload(WorkloadKind::StatefulSet, &o.metadata, record);
            }
            ClusterObject::DaemonSet(o) => {
                let record = records::daemon_set_record(o, &mut self.strings);
                self.put_workload(WorkloadKind::DaemonSet, &o.metadata, record);
            }
        }
    }

    /// Removes an object (a watch's Deleted event). A pod is removed only if its UID matches the one held, so
    /// a late delete of an earlier pod with the same name (a StatefulSet replica) leaves its successor alone.
    pub fn delete(&mut self, obj: &ClusterObject) {
        let meta = obj.metadata();
        match obj.kind() {
            ObjectKind::Event => {}
            ObjectKind::Node => {
                if let Some(name) = meta.name.as_deref() {
                    self.remove(ObjectKind::Node, "", name);
                }
            }
            ObjectKind::Pod => {
                let Some((ns, name)) = namespaced(meta) else { return };
                let held_uid = self.namespaces.get(ns).and_then(|b| b.pods.get(name)).map(|p| &p.uid);
                let uid = Uid::parse(meta.uid.as_deref().unwrap_or_default());
                if held_uid.is_some_and(|held| uid.is_empty() || *held == uid) {
                    self.remove(ObjectKind::Pod, ns, name);
                }
            }
            kind => {
                if let Some((ns, name)) = namespaced(meta) {
                    self.remove(kind, ns, name);
                }
            }
        }
    }

    /// Replaces every object of `kind` with `objs`, as after a re-list: objects of that kind not in `objs` are
    /// dropped. Objects of another kind in `objs` are ignored.
    pub fn replace(&mut self, kind: ObjectKind, objs: &[ClusterObject]) {
        let objs: Vec<&ClusterObject> = objs.iter().filter(|o| o.kind() == kind).collect();
        let listed: HashSet<(&str, &str)> = objs
            .iter()
            .filter_map(|o| {
                let meta = o.metadata();
                Some((meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref()?))
            })
            .collect();
        let vanished: Vec<(Arc<str>, Arc<str>)> =
            self.keys(kind).into_iter().filter(|(ns, name)| !listed.contains(&(ns.as_ref(), name.as_ref()))).collect();
        for (ns, name) in vanished {
            self.remove(kind, &ns, &name);
        }
        for obj in objs {
            self.apply(obj);
        }
        self.strings.collect();
    }

    pub fn counts(&self) -> IndexCounts {
        let mut counts = IndexCounts {
            nodes: self.nodes.len(),
            events_seen: self.events_seen,
            warning_events_seen: self.warning_events_seen,
            namespaces: self.namespaces.len(),
            interned_strings: self.strings.len(),
            ..IndexCounts::default()
        };
        for bucket in self.namespaces.values() {
            counts.pods += bucket.pods.len();
            counts.services += bucket.services.len();
            for (kind, objects) in &bucket.workloads {
                let n = objects.len();
                match kind {
                    WorkloadKind::Deployment => counts.deployments += n,
                    WorkloadKind::ReplicaSet => counts.replica_sets += n,
                    WorkloadKind::ReplicationController => counts.replication_controllers += n,
                    WorkloadKind::Job => counts.jobs += n,
                    WorkloadKind::CronJob => counts.cron_jobs += n,
                    WorkloadKind::StatefulSet => counts.stateful_sets += n,
                    WorkloadKind::DaemonSet => counts.daemon_sets += n,
                }
            }
        }
        counts
    }

    fn apply_pod(&mut self, pod: &Pod) {
        let Some((ns, name)) = namespaced(&pod.metadata) else { return };
        let record = records::pod_record(pod, &mut self.strings);
        let namespace = self.strings.intern(ns);
        let bucket = self.namespaces.entry(Arc::clone(&namespace)).or_default();
        let name = bucket.pods.get_key_value(name).map_or_else(|| Arc::from(name), |(key, _)| Arc::clone(key));
        let at = ObjRef { namespace, name: Arc::clone(&name) };
        if let Some(old) = bucket.pods.get(&name) {
            unlink_pod(&mut self.pods_by_uid, &mut self.pods_by_ip, &at, old);
            self.strings.note_change();
        }
        link_pod(&mut self.pods_by_uid, &mut self.pods_by_ip, &at, &record);
        bucket.pods.insert(name, record);
    }

    fn apply_service(&mut self, service: &Service) {
        let Some((ns, name)) = namespaced(&service.metadata) else { return };
        let record = records::service_record(service, &mut self.strings);
        let namespace = self.strings.intern(ns);
        let bucket = self.namespaces.entry(Arc::clone(&namespace)).or_default();
        let name = bucket.services.get_key_value(name).map_or_else(|| Arc::from(name), |(key, _)| Arc::clone(key));
        let at = ObjRef { namespace, name: Arc::clone(&name) };
        if let Some(old) = bucket.services.get(&name) {
            for ip in &old.cluster_ips {
                unlink(&mut self.services_by_ip, ip, &at);
            }
            self.strings.note_change();
        }
        for ip in &record.cluster_ips {
            self.services_by_ip.insert(*ip, at.clone());
        }
        bucket.services.insert(name, record);
    }

    fn put_workload(&mut self, kind: WorkloadKind, meta: &ObjectMeta, record: WorkloadRecord) {
        let Some((ns, name)) = namespaced(meta) else { return };
        let namespace = self.strings.intern(ns);
        let objects = self.namespaces.entry(namespace).or_default().workloads.entry(kind).or_default();
        let name = objects.get_key_value(name).map_or_else(|| Arc::from(name), |(key, _)| Arc::clone(key));
        if objects.insert(name, record).is_some() {
            self.strings.note_change();
        }
    }

    /// Every held object of `kind` as (namespace, name); nodes have an empty namespace.
    fn keys(&self, kind: ObjectKind) -> Vec<(Arc<str>, Arc<str>)> {
        let empty: Arc<str> = Arc::from("");
        match kind {
            ObjectKind::Event => Vec::new(),
            ObjectKind::Node => self.nodes.keys().map(|name| (Arc::clone(&empty), Arc::clone(name))).collect(),
            _ => self
                .namespaces
                .iter()
                .flat_map(|(ns, bucket)| {
                    let names: Vec<&Arc<str>> = match kind {
                        ObjectKind::Pod => bucket.pods.keys().collect(),
                        ObjectKind::Service => bucket.services.keys().collect(),
                        other => other
                            .workload_kind()
                            .and_then(|k| bucket.workloads.get(&k))
                            .map(|objects| objects.keys().collect())
                            .unwrap_or_default(),
                    };
                    names.into_iter().map(move |name| (Arc::clone(ns), Arc::clone(name)))
                })
                .collect(),
        }
    }

    fn remove(&mut self, kind: ObjectKind, ns: &str, name: &str) {
        if kind == ObjectKind::Node {
            if self.nodes.remove(name).is_some() {
                self.strings.note_change();
            }
            return;
        }
        let Some(namespace) = self.namespaces.get_key_value(ns).map(|(key, _)| Arc::clone(key)) else { return };
        let Some(bucket) = self.namespaces.get_mut(ns) else { return };
        let removed = match kind {
            ObjectKind::Pod => match bucket.pods.remove_entry(name) {
                Some((name, old)) => {
                    let at = ObjRef { namespace: Arc::clone(&namespace), name };
                    unlink_pod(&mut self.pods_by_uid, &mut self.pods_by_ip, &at, &old);
                    true
                }
                None => false,
            },
            ObjectKind::Service => match bucket.services.remove_entry(name) {
                Some((name, old)) => {
                    let at = ObjRef { namespace: Arc::clone(&namespace), name };
                    for ip in &old.cluster_ips {
                        unlink(&mut self.services_by_ip, ip, &at);
                    }
                    true
                }
                None => false,
            },
            other => other
                .workload_kind()
                .and_then(|k| bucket.workloads.get_mut(&k))
                .is_some_and(|objects| objects.remove(name).is_some()),
        };
        if removed {
            self.strings.note_change();
        }
        if bucket.is_empty() {
            self.namespaces.remove(ns);
        }
    }

    pub(crate) fn namespace(&self, ns: &str) -> Option<&NamespaceIndex> {
        self.namespaces.get(ns)
    }

    pub(crate) fn namespaces(&self) -> impl Iterator<Item = (&str, &NamespaceIndex)> {
        self.namespaces.iter().map(|(ns, bucket)| (ns.as_ref(), bucket))
    }

    pub(crate) fn node_records(&self) -> impl Iterator<Item = (&str, &NodeRecord)> {
        self.nodes.iter().map(|(name, node)| (name.as_ref(), node))
    }

    pub(crate) fn pod_record(&self, ns: &str, name: &str) -> Option<&PodRecord> {
        self.namespaces.get(ns)?.pods.get(name)
    }

    pub(crate) fn pod_at_ip(&self, ip: IpAddr) -> Option<&ObjRef> {
        self.pods_by_ip.get(&ip)
    }

    pub(crate) fn pod_with_uid(&self, uid: &str) -> Option<&ObjRef> {
        self.pods_by_uid.get(&Uid::parse(uid))
    }

    pub(crate) fn service_at_ip(&self, ip: IpAddr) -> Option<&ObjRef> {
        self.services_by_ip.get(&ip)
    }

    pub(crate) fn has_node(&self, name: &str) -> bool {
        self.nodes.contains_key(name)
    }
}

#[cfg(test)]
mod tests;
