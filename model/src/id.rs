//! Stable entity ids: `node/<name>`, `ns/<name>`, `pod/<ns>/<name>`, `container/<ns>/<pod>/<name>`,
//! `svc/<ns>/<name>` and `workload/<kind>/<ns>/<name>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not an entity id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("entity id {0:?} has no known prefix (node, ns, pod, container, svc, workload)")]
    UnknownPrefix(String),
    #[error("entity id {id:?} needs {expected} segments after its prefix, found {found}")]
    SegmentCount { id: String, expected: usize, found: usize },
    #[error("entity id {id:?} has an invalid name {name:?}: {why}")]
    BadName { id: String, name: String, why: &'static str },
    #[error("entity id {id:?} names unknown workload kind {kind:?}")]
    UnknownWorkloadKind { id: String, kind: String },
}

/// The kinds of workload controller that own pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    ReplicationController,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 7] = [
        WorkloadKind::Deployment,
        WorkloadKind::ReplicaSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::ReplicationController,
    ];

    /// The lowercase form used inside entity ids.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::ReplicaSet => "replicaset",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::Job => "job",
            WorkloadKind::CronJob => "cronjob",
            WorkloadKind::ReplicationController => "replicationcontroller",
        }
    }

    /// The Kubernetes `kind` of the owning object, as it appears in ownerReferences.
    pub fn api_kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::ReplicationController => "ReplicationController",
        }
    }

    /// Maps an ownerReference `kind` to a workload kind, if it is one.
    pub fn from_api_kind(kind: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.api_kind() == kind)
    }

    fn from_id_segment(segment: &str) -> Option<WorkloadKind> {
        WorkloadKind::ALL.into_iter().find(|k| k.as_str() == segment)
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What sort of thing an entity id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityKind {
    Node,
    Namespace,
    Pod,
    Container,
    Service,
    Workload(WorkloadKind),
}

impl fmt::Display for EntityKind {
    /// The prefix an id of this kind starts with: `node`, `ns`, `pod`, `container`, `svc`, or
    /// `workload/<kind>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityKind::Node => f.write_str("node"),
            EntityKind::Namespace => f.write_str("ns"),
            EntityKind::Pod => f.write_str("pod"),
            EntityKind::Container => f.write_str("container"),
            EntityKind::Service => f.write_str("svc"),
            EntityKind::Workload(kind) => write!(f, "workload/{kind}"),
        }
    }
}

/// A stable, human-readable identifier of a cluster entity.
///
/// Ids are built only from Kubernetes object names, never from object contents, so an id carries
/// no data beyond what the topology already reveals.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityId {
    Node { name: String },
    Namespace { name: String },
    Pod { namespace: String, name: String },
    Container { namespace: String, pod: String, name: String },
    Service { namespace: String, name: String },
    Workload { kind: WorkloadKind, namespace: String, name: String },
}

impl EntityId {
    pub fn kind(&self) -> EntityKind {
        match self {
            EntityId::Node { .. } => EntityKind::Node,
            EntityId::Namespace { .. } => EntityKind::Namespace,
            EntityId::Pod { .. } => EntityKind::Pod,
            EntityId::Container { .. } => EntityKind::Container,
            EntityId::Service { .. } => EntityKind::Service,
            EntityId::Workload { kind, .. } => EntityKind::Workload(*kind),
        }
    }

    /// The namespace the entity lives in; `None` for cluster-scoped entities (nodes, namespaces).
    pub fn namespace(&self) -> Option<&str> {
        match self {
            EntityId::Node { .. } | EntityId::Namespace { .. } => None,
            EntityId::Pod { namespace, .. }
            | EntityId::Container { namespace, .. }
            | EntityId::Service { namespace, .. }
            | EntityId::Workload { namespace, .. } => Some(namespace),
        }
    }

    pub fn node(name: impl Into<String>) -> Self {
        EntityId::Node { name: name.into() }
    }

    pub fn pod(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        EntityId::Pod { namespace: namespace.into(), name: name.into() }
    }

    /// A namespace's id. Named after the `ns/` prefix because `namespace()` already reads the
    /// namespace an entity lives in.
    pub fn ns(name: impl Into<String>) -> Self {
        EntityId::Namespace { name: name.into() }
    }

    pub fn container(namespace: impl Into<String>, pod: impl Into<String>, name: impl Into<String>) -> Self {
        EntityId::Container { namespace: namespace.into(), pod: pod.into(), name: name.into() }
    }

    pub fn service(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        EntityId::Service { namespace: namespace.into(), name: name.into() }
    }

    pub fn workload(kind: WorkloadKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        EntityId::Workload { kind, namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityId::Node { name } => write!(f, "node/{name}"),
            EntityId::Namespace { name } => write!(f, "ns/{name}"),
            EntityId::Pod { namespace, name } => write!(f, "pod/{namespace}/{name}"),
            EntityId::Container { namespace, pod, name } => write!(f, "container/{namespace}/{pod}/{name}"),
            EntityId::Service { namespace, name } => write!(f, "svc/{namespace}/{name}"),
            EntityId::Workload { kind, namespace, name } => write!(f, "workload/{kind}/{namespace}/{name}"),
        }
    }
}

/// Longest Kubernetes object name (a DNS subdomain).
const MAX_NAME_LEN: usize = 253;

/// Checks one name segment against the characters Kubernetes allows in object names.
fn check_name<'a>(id: &str, name: &'a str) -> Result<&'a str, IdError> {
    let bad = |why| IdError::BadName { id: id.to_owned(), name: name.to_owned(), why };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("it is longer than 253 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') {
        return Err(bad("only lowercase letters, digits, '-' and '.' are allowed"));
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err(bad("it must start and end with a letter or digit"));
    }
    Ok(name)
}

impl FromStr for EntityId {
    type Err = IdError;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        let (prefix, rest) = id.split_once('/').ok_or_else(|| IdError::UnknownPrefix(id.to_owned()))?;
        let segments: Vec<&str> = rest.split('/').collect();
        let expect = |n: usize| {
            if segments.len() == n {
                Ok(())
            } else {
                Err(IdError::SegmentCount { id: id.to_owned(), expected: n, found: segments.len() })
            }
        };
        let name = |i: usize| check_name(id, segments[i]).map(str::to_owned);
        match prefix {
            "node" => {
                expect(1)?;
                Ok(EntityId::Node { name: name(0)? })
            }
            "ns" => {
                expect(1)?;
                Ok(EntityId::Namespace { name: name(0)? })
            }
            "pod" => {
                expect(2)?;
                Ok(EntityId::Pod { namespace: name(0)?, name: name(1)? })
            }
            "container" => {
                expect(3)?;
                Ok(EntityId::Container { namespace: name(0)?, pod: name(1)?, name: name(2)? })
            }
            "svc" => {
                expect(2)?;
                Ok(EntityId::Service { namespace: name(0)?, name: name(1)? })
            }
            "workload" => {
                expect(3)?;
                let kind = WorkloadKind::from_id_segment(segments[0])
                    .ok_or_else(|| IdError::UnknownWorkloadKind { id: id.to_owned(), kind: segments[0].to_owned() })?;
                Ok(EntityId::Workload { kind, namespace: name(1)?, name: name(2)? })
            }
            _ => Err(IdError::UnknownPrefix(id.to_owned())),
        }
    }
}

impl Serialize for EntityId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntityId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<EntityId, IdError> {
        s.parse()
    }

    #[test]
    fn every_id_form_parses_and_prints_back_unchanged() {
        for text in [
            "node/worker-1",
            "ns/kube-system",
            "pod/shop/web-7d9f8-abcde",
            "container/shop/web-7d9f8-abcde/nginx",
            "svc/shop/web",
            "workload/deployment/shop/web",
            "workload/replicaset/shop/web-7d9f8",
            "workload/statefulset/db/postgres",
            "workload/daemonset/causely/causely-agent",
            "workload/job/batch/report-28",
            "workload/cronjob/batch/report",
            "workload/replicationcontroller/legacy/old",
            "node/ip-10-0-0-1.ec2.internal",
        ] {
            let id = parse(text).unwrap();
            assert_eq!(id.to_string(), text);
        }
    }

    #[test]
    fn a_pod_id_splits_into_namespace_and_name() {
        assert_eq!(parse("pod/shop/web-1").unwrap(), EntityId::pod("shop", "web-1"));
        assert_eq!(parse("pod/shop/web-1").unwrap().namespace(), Some("shop"));
        assert_eq!(parse("node/n1").unwrap().namespace(), None);
    }

    #[test]
    fn the_constructors_build_the_ids_they_print() {
        assert_eq!(EntityId::ns("shop").to_string(), "ns/shop");
        assert_eq!(EntityId::container("shop", "web-1", "nginx").to_string(), "container/shop/web-1/nginx");
        assert_eq!(parse("container/shop/web-1/nginx").unwrap(), EntityId::container("shop", "web-1", "nginx"));
        assert_eq!(EntityId::container("shop", "web-1", "nginx").namespace(), Some("shop"));
        assert_eq!(EntityId::ns("shop").kind(), EntityKind::Namespace);
    }

    #[test]
    fn a_workload_id_carries_its_kind() {
        let id = parse("workload/statefulset/db/pg").unwrap();
        assert_eq!(id.kind(), EntityKind::Workload(WorkloadKind::StatefulSet));
    }

    #[test]
    fn an_unknown_prefix_is_rejected() {
        assert_eq!(parse("secret/ns/x"), Err(IdError::UnknownPrefix("secret/ns/x".into())));
        assert_eq!(parse("node"), Err(IdError::UnknownPrefix("node".into())));
    }

    #[test]
    fn a_wrong_number_of_segments_is_rejected() {
        assert!(matches!(parse("pod/only-name"), Err(IdError::SegmentCount { expected: 2, found: 1, .. })));
        assert!(matches!(parse("node/a/b"), Err(IdError::SegmentCount { expected: 1, found: 2, .. })));
        assert!(matches!(parse("container/ns/pod"), Err(IdError::SegmentCount { expected: 3, found: 2, .. })));
    }

    #[test]
    fn names_outside_the_kubernetes_alphabet_are_rejected() {
        for bad in ["node/", "node/Upper", "node/-lead", "node/trail-", "svc/ns/a b", "pod/ns/x\u{e9}"] {
            assert!(matches!(parse(bad), Err(IdError::BadName { .. })), "{bad} should be rejected");
        }
        let long = format!("node/{}", "a".repeat(254));
        assert!(matches!(parse(&long), Err(IdError::BadName { .. })));
        let longest = format!("node/{}", "a".repeat(253));
        assert!(parse(&longest).is_ok());
    }

    #[test]
    fn an_unknown_workload_kind_is_rejected() {
        assert!(matches!(parse("workload/pod/ns/x"), Err(IdError::UnknownWorkloadKind { .. })));
    }

    #[test]
    fn owner_reference_kinds_map_to_workload_kinds() {
        for kind in WorkloadKind::ALL {
            assert_eq!(WorkloadKind::from_api_kind(kind.api_kind()), Some(kind));
        }
        assert_eq!(WorkloadKind::from_api_kind("Node"), None);
    }

    #[test]
    fn ids_are_json_strings_and_invalid_ones_fail_to_deserialize() {
        let id = EntityId::workload(WorkloadKind::Deployment, "shop", "web");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"workload/deployment/shop/web\"");
        assert_eq!(serde_json::from_str::<EntityId>(&json).unwrap(), id);
        let err = serde_json::from_str::<EntityId>("\"pod/x\"").unwrap_err();
        assert!(err.to_string().contains("segments"), "{err}");
    }
}
