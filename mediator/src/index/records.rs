//! The slim records the index keeps in place of Kubernetes objects, and their conversion from k8s-openapi types.
//!
//! Only the facts a query, the topology or a symptom detector reads are kept; strings that repeat across
//! objects are interned. What each record holds and who reads it:
//! - pod: uid and IPs (lookups from agents' observations), node, labels (service selection, entity labels),
//!   controlling owner (owner chain), named container ports (service `targetPort` names), phase, creation
//!   time and the time it became unschedulable (pending and unschedulable detectors), hostNetwork (its IP is
//!   the node's, so it is never an IP lookup answer), and per container its name, whether it waits in
//!   CrashLoopBackOff or an image pull back-off, and when it was last OOM-killed.
//! - node: labels, since when it is not Ready, and since when it reports memory, disk or PID pressure.
//! - service: labels, selector, cluster IPs and ports with their target ports.
//! - workload: labels, controlling owner, creation time, and per kind what its detector reads: replica
//!   counts (Deployment, StatefulSet, DaemonSet), the Failed condition (Job), the schedule (CronJob).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use causely_model::{UnixMillis, WorkloadKind};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Node, Pod, ReplicationController, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::intern::{Interner, LabelPairs, NamedPorts};

/// An object's labels as interned pairs, sorted by key; objects with equal labels share one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Labels(Arc<LabelPairs>);

impl Labels {
    fn from_map(map: Option<&BTreeMap<String, String>>, strings: &mut Interner) -> Self {
        let pairs: Vec<_> =
            map.into_iter().flatten().map(|(key, value)| (strings.intern(key), strings.intern(value))).collect();
        // BTreeMap iteration is already ordered by key, which `get` relies on.
        Labels(strings.intern_labels(pairs))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        let at = self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok()?;
        Some(&self.0[at].1)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Whether a non-empty `selector` is a subset of these labels. An empty selector selects nothing, as
    /// for Services: a Service without a selector has its endpoints managed by someone else.
    pub(crate) fn selected_by(&self, selector: &Labels) -> bool {
        !selector.is_empty() && selector.iter().all(|(k, v)| self.get(k) == Some(v))
    }

    /// Objects with equal labels share one copy; this names the copy, so they can be grouped without comparing.
    pub(crate) fn identity(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<()>().addr()
    }

    pub(crate) fn to_map(&self) -> BTreeMap<String, String> {
        self.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }
}

/// A pod UID. The API server issues lowercase UUIDs, kept as 16 bytes instead of a 36-character string;
/// any other text is kept as it is, so two UIDs are equal exactly when their texts are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Uid {
    Uuid(u128),
    Text(Box<str>),
}

impl Uid {
    pub(crate) fn parse(text: &str) -> Uid {
        parse_uuid(text).map_or_else(|| Uid::Text(text.into()), Uid::Uuid)
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Uid::Text(text) if text.is_empty())
    }

    /// The UID as the API server wrote it.
    pub(crate) fn text(&self) -> String {
        match self {
            Uid::Text(text) => text.to_string(),
            Uid::Uuid(value) => {
                let hex = format!("{value:032x}");
                format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
            }
        }
    }
}

fn parse_uuid(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut value: u128 = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let digit = match byte {
            b'-' if matches!(at, 8 | 13 | 18 | 23) => continue,
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return None,
        };
        if matches!(at, 8 | 13 | 18 | 23) {
            return None;
        }
        value = value << 4 | u128::from(digit);
    }
    Some(value)
}

/// The workload that controls an object (its ownerReference with `controller: true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) kind: WorkloadKind,
    pub(crate) name: Arc<str>,
}

/// A condition that holds, with the time it last changed when the object says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Active {
    pub(crate) since: Option<UnixMillis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl PodPhase {
    /// A pod that has finished keeps its IP in its status, but the IP may already belong to another pod.
    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

/// The waiting reasons a detector reads; any other reason is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    None,
    CrashLoop,
    ImagePull,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerRecord {
    pub(crate) name: Arc<str>,
    /// The runtime's container id (status `containerID` without its `runtime://` prefix), which
    /// names the container's cgroup: agents map their cgroups to containers with it.
    pub(crate) id: Option<Box<str>>,
    pub(crate) waiting: Waiting,
    /// When the container was last OOM-killed (current or last terminated state).
    pub(crate) oom_killed_at: Option<UnixMillis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodRecord {
    pub(crate) uid: Uid,
    pub(crate) node: Option<Arc<str>>,
    pub(crate) ips: Box<[IpAddr]>,
    pub(crate) labels: Labels,
    pub(crate) owner: Option<Owner>,
    pub(crate) containers: Box<[ContainerRecord]>,
    /// Container ports that have a name, for Services whose `targetPort` names one.
    pub(crate) named_ports: Arc<NamedPorts>,
    pub(crate) created: UnixMillis,
    pub(crate) unschedulable: Option<Active>,
    pub(crate) phase: PodPhase,
    pub(crate) host_network: bool,
}

impl PodRecord {
    /// Whether the pod's IPs name the pod itself, so an IP lookup may answer with it.
    pub(crate) fn owns_its_ips(&self) -> bool {
        !self.host_network && !self.phase.is_terminal()
    }

    pub(crate) fn named_port(&self, name: &str) -> Option<u16> {
        self.named_ports.iter().find(|(n, _)| n.as_ref() == name).map(|&(_, port)| port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeRecord {
    pub(crate) labels: Labels,
    pub(crate) not_ready: Option<Active>,
    pub(crate) memory_pressure: Option<Active>,
    pub(crate) disk_pressure: Option<Active>,
    pub(crate) pid_pressure: Option<Active>,
}

/// The port a Service port forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetPort {
    Number(u16),
    Named(Arc<str>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServicePortRecord {
    pub(crate) port: u16,
    pub(crate) target: TargetPort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceRecord {
    pub(crate) labels: Labels,
    pub(crate) selector: Labels,
    /// Empty for headless and ExternalName services.
    pub(crate) cluster_ips: Box<[IpAddr]>,
    pub(crate) ports: Box<[ServicePortRecord]>,
}

impl ServiceRecord {
    /// The container port `port` of this service forwards to on `pod`, if it is one of its ports.
    pub(crate) fn target_on(&self, port: u16, pod: &PodRecord) -> Option<u16> {
        let entry = self.ports.iter().find(|p| p.port == port)?;
        match &entry.target {
            TargetPort::Number(n) => Some(*n),
            TargetPort::Named(name) => pod.named_port(name),
        }
    }

    /// The service ports that forward to container port `container_port` on `pod`.
    pub(crate) fn ports_targeting(&self, container_port: u16, pod: &PodRecord) -> impl Iterator<Item = u16> {
        self.ports.iter().filter_map(move |p| (self.target_on(p.port, pod) == Some(container_port)).then_some(p.port))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CronRecord {
    pub(crate) schedule: Box<str>,
    pub(crate) time_zone: Option<Box<str>>,
    pub(crate) last_schedule: Option<UnixMillis>,
    pub(crate) suspended: bool,
    /// A run still active under `concurrencyPolicy: Forbid` makes the controller skip schedules on purpose.
    pub(crate) skipping_while_active: bool,
}

/// What the detector of each workload kind reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WorkloadState {
    Replicas {
        desired: u32,
        available: u32,
        unavailable: u32,
    },
    Job {
        failed: Option<Active>,
    },
    CronJob(Box<CronRecord>),
    /// ReplicaSets and ReplicationControllers: their rollout is watched through their Deployment, or not at all.
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkloadRecord {
    pub(crate) labels: Labels,
    pub(crate) owner: Option<Owner>,
    pub(crate) created: UnixMillis,
    pub(crate) state: WorkloadState,
}

pub(crate) fn millis(time: &Time) -> UnixMillis {
    UnixMillis(u64::try_from(time.0.as_millisecond()).unwrap_or(0))
}

fn count(n: Option<i32>) -> u32 {
    n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

fn port(n: i32) -> Option<u16> {
    u16::try_from(n).ok()
}

fn created(meta: &ObjectMeta) -> UnixMillis {
    meta.creation_timestamp.as_ref().map(millis).unwrap_or(UnixMillis(0))
}

/// The API group each workload kind lives in, so a custom resource that reuses a kind name (a `Job` of some
/// batch system) is not mistaken for it.
fn api_group(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment | WorkloadKind::ReplicaSet | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet => {
            "apps"
        }
        WorkloadKind::Job | WorkloadKind::CronJob => "batch",
        WorkloadKind::ReplicationController => "",
    }
}

fn controller_owner(meta: &ObjectMeta, strings: &mut Interner) -> Option<Owner> {
    let owner = meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))?;
    let kind = WorkloadKind::from_api_kind(&owner.kind)?;
    let group = owner.api_version.split_once('/').map_or("", |(group, _)| group);
    (group == api_group(kind)).then(|| Owner { kind, name: strings.intern(&owner.name) })
}

fn condition_since<'a>(
    conditions: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a Time>)>,
    type_: &str,
    holds: impl Fn(&str) -> bool,
) -> Option<Active> {
    conditions
        .into_iter()
        .find(|(t, status, _)| *t == type_ && holds(status))
        .map(|(_, _, since)| Active { since: since.map(millis) })
}

fn oom_time(state: Option<&ContainerState>) -> Option<UnixMillis> {
    let terminated = state?.terminated.as_ref()?;
    if terminated.reason.as_deref() != Some("OOMKilled") {
        return None;
    }
    terminated.finished_at.as_ref().map(millis)
}

fn waiting(status: &ContainerStatus) -> Waiting {
    let reason = status.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref());
    match reason {
        Some("CrashLoopBackOff") => Waiting::CrashLoop,
        Some("ImagePullBackOff" | "ErrImagePull") => Waiting::ImagePull,
        _ => Waiting::None,
    }
}

fn pod_phase(phase: Option<&str>) -> PodPhase {
    match phase {
        Some("Pending") => PodPhase::Pending,
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        _ => PodPhase::Unknown,
    }
}

pub(crate) fn pod_record(pod: &Pod, strings: &mut Interner) -> PodRecord {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();

    let mut containers: Vec<ContainerRecord> = Vec::new();
    let mut named_ports = Vec::new();
    let spec_containers = spec.into_iter().flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers));
    for container in spec_containers {
        containers.push(ContainerRecord {
            name: strings.intern(&container.name),
            id: None,
            waiting: Waiting::None,
            oom_killed_at: None,
        });
        for p in container.ports.iter().flatten() {
            if let (Some(name), Some(number)) = (&p.name, port(p.container_port)) {
                named_ports.push((strings.intern(name), number));
            }
        }
    }
    let statuses = status
        .into_iter()
        .flat_map(|s| s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten()));
    for cs in statuses {
        let oom = oom_time(cs.state.as_ref()).max(oom_time(cs.last_state.as_ref()));
        let at = match containers.iter().position(|c| c.name.as_ref() == cs.name) {
            Some(at) => at,
            None => {
                containers.push(ContainerRecord {
                    name: strings.intern(&cs.name),
                    id: None,
                    waiting: Waiting::None,
                    oom_killed_at: None,
                });
                containers.len() - 1
            }
        };
        containers[at].waiting = waiting(cs);
        containers[at].id = cs
            .container_id
            .as_deref()
            .map(|id| id.rsplit_once("://").map_or(id, |(_, id)| id))
            .filter(|id| !id.is_empty())
            .map(Into::into);
        containers[at].oom_killed_at = oom;
    }

    let mut ips: Vec<IpAddr> = status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .map(|ip| ip.ip.as_str())
        .chain(status.and_then(|s| s.pod_ip.as_deref()))
        .filter_map(|ip| ip.parse().ok())
        .collect();
    ips.sort_unstable();
    ips.dedup();

    let unschedulable = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
        .map(|c| Active { since: c.last_transition_time.as_ref().map(millis) });

    PodRecord {
        uid: Uid::parse(pod.metadata.uid.as_deref().unwrap_or_default()),
        node: spec.and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty()).map(|n| strings.intern(n)),
        ips: ips.into_boxed_slice(),
        labels: Labels::from_map(pod.metadata.labels.as_ref(), strings),
        owner: controller_owner(&pod.metadata, strings),
        containers: containers.into_boxed_slice(),
        named_ports: strings.intern_ports(named_ports),
        created: created(&pod.metadata),
        unschedulable,
        phase: pod_phase(status.and_then(|s| s.phase.as_deref())),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
    }
}

pub(crate) fn node_record(node: &Node, strings: &mut Interner) -> NodeRecord {
    let conditions = || {
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.last_transition_time.as_ref()))
    };
    NodeRecord {
        labels: Labels::from_map(node.metadata.labels.as_ref(), strings),
        not_ready: condition_since(conditions(), "Ready", |s| s != "True"),
        memory_pressure: condition_since(conditions(), "MemoryPressure", |s| s == "True"),
        disk_pressure: condition_since(conditions(), "DiskPressure", |s| s == "True"),
        pid_pressure: condition_since(conditions(), "PIDPressure", |s| s == "True"),
    }
}

pub(crate) fn service_record(service: &Service, strings: &mut Interner) -> ServiceRecord {
    let spec = service.spec.as_ref();
    let mut cluster_ips: Vec<IpAddr> = spec
        .and_then(|s| s.cluster_ips.as_ref())
        .into_iter()
        .flatten()
        .map(String::as_str)
        .chain(spec.and_then(|s| s.cluster_ip.as_deref()))
        // "None" marks a headless service and does not parse.
        .filter_map(|ip| ip.parse().ok())
        .collect();
    cluster_ips.sort_unstable();
    cluster_ips.dedup();
    let ports = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let number = port(p.port)?;
            let target = match &p.target_port {
                None => TargetPort::Number(number),
                Some(IntOrString::Int(n)) => TargetPort::Number(port(*n)?),
                Some(IntOrString::String(name)) => match name.parse::<u16>() {
                    Ok(n) => TargetPort::Number(n),
                    Err(_) => TargetPort::Named(strings.intern(name)),
                },
            };
            Some(ServicePortRecord { port: number, target })
        })
        .collect::<Vec<_>>();
    ServiceRecord {
        labels: Labels::from_map(service.metadata.labels.as_ref(), strings),
        selector: Labels::from_map(spec.and_then(|s| s.selector.as_ref()), strings),
        cluster_ips: cluster_ips.into_boxed_slice(),
        ports: ports.into_boxed_slice(),
    }
}

fn workload(meta: &ObjectMeta, state: WorkloadState, strings: &mut Interner) -> WorkloadRecord {
    WorkloadRecord {
        labels: Labels::from_map(meta.labels.as_ref(), strings),
        owner: controller_owner(meta, strings),
        created: created(meta),
        state,
    }
}

pub(crate) fn deployment_record(d: &Deployment, strings: &mut Interner) -> WorkloadRecord {
    let status = d.status.as_ref();
    let state = WorkloadState::Replicas {
        desired: count(Some(d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))),
        available: count(status.and_then(|s| s.available_replicas)),
        unavailable: count(status.and_then(|s| s.unavailable_replicas)),
    };
    workload(&d.metadata, state, strings)
}

pub(crate) fn stateful_set_record(s: &StatefulSet, strings: &mut Interner) -> WorkloadRecord {
    let desired = count(Some(s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)));
    let available = count(s.status.as_ref().and_then(|s| s.available_replicas));
    let state = WorkloadState::Replicas { desired, available, unavailable: desired.saturating_sub(available) };
    workload(&s.metadata, state, strings)
}

pub(crate) fn daemon_set_record(d: &DaemonSet, strings: &mut Interner) -> WorkloadRecord {
    let status = d.status.as_ref();
    let state = WorkloadState::Replicas {
        desired: count(status.map(|s| s.desired_number_scheduled)),
        available: count(status.and_then(|s| s.number_available)),
        unavailable: count(status.and_then(|s| s.number_unavailable)),
    };
    workload(&d.metadata, state, strings)
}

pub(crate) fn replica_set_record(r: &ReplicaSet, strings: &mut Interner) -> WorkloadRecord {
    workload(&r.metadata, WorkloadState::Plain, strings)
}

pub(crate) fn replication_controller_record(r: &ReplicationController, strings: &mut Interner) -> WorkloadRecord {
    workload(&r.metadata, WorkloadState::Plain, strings)
}

pub(crate) fn job_record(job: &Job, strings: &mut Interner) -> WorkloadRecord {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| (c.type_.as_str(), c.status.as_str(), c.last_transition_time.as_ref()));
    let failed = condition_since(conditions, "Failed", |s| s == "True");
    workload(&job.metadata, WorkloadState::Job { failed }, strings)
}

pub(crate) fn cron_job_record(cron: &CronJob, strings: &mut Interner) -> WorkloadRecord {
    let spec = cron.spec.as_ref();
    let status = cron.status.as_ref();
    let active = status.and_then(|s| s.active.as_ref()).is_some_and(|a| !a.is_empty());
    let forbid = spec.and_then(|s| s.concurrency_policy.as_deref()) == Some("Forbid");
    let record = CronRecord {
        schedule: spec.map(|s| s.schedule.as_str()).unwrap_or_default().into(),
        time_zone: spec.and_then(|s| s.time_zone.as_deref()).map(Box::from),
        last_schedule: status.and_then(|s| s.last_schedule_time.as_ref()).map(millis),
        suspended: spec.and_then(|s| s.suspend).unwrap_or(false),
        skipping_while_active: active && forbid,
    };
    workload(&cron.metadata, WorkloadState::CronJob(Box::new(record)), strings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_uid_is_kept_as_a_number_and_other_text_as_text() {
        assert_eq!(
            Uid::parse("0d6f6c1e-4a1b-4b36-9d1c-2f0a7c1e9b11"),
            Uid::Uuid(0x0d6f6c1e_4a1b_4b36_9d1c_2f0a7c1e9b11)
        );
        assert_eq!(Uid::parse("uid-1"), Uid::Text("uid-1".into()));
        let upper = "0D6F6C1E-4A1B-4B36-9D1C-2F0A7C1E9B11";
        assert_eq!(Uid::parse(upper), Uid::Text(upper.into()), "case-distinct texts stay distinct");
        let misplaced = "0d6f6c1e4-a1b-4b36-9d1c-2f0a7c1e9b11";
        assert_eq!(Uid::parse(misplaced), Uid::Text(misplaced.into()));
        assert!(Uid::parse("").is_empty());
    }
}
