//! Cgroup attribution: which pod and container a cgroup path belongs to, for every kubelet layout.
//!
//! The kubelet names cgroups after the pod UID and the runtime names the container's cgroup after
//! the container id, so a path alone attributes a process or a cgroup to a pod and container
//! without asking the API server. Names and namespaces are joined later from the pod UID.
//!
//! Layouts understood (v1 paths may carry a controller mount prefix such as
//! `/sys/fs/cgroup/memory`, v2 paths the cgroup2 mount; both are found by searching for the
//! `kubepods` segment, which also admits nested prefixes such as kind's `/kubelet/kubepods` or
//! `/kubelet.slice/kubelet-kubepods.slice` and k3s-in-docker's `/docker/<id>/kubepods`):
//! - cgroupfs driver: `kubepods[/burstable|/besteffort]/pod<uid>[/<container>]`
//! - systemd driver: `kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_with_underscores>.slice[/<scope>]`
//!
//! Container segments: a bare 64-hex id (cgroupfs with containerd or docker), or
//! `cri-containerd-<id>`, `crio-<id>`, `docker-<id>`, each optionally with `.scope`.
//!
//! Decision on CRI-O's `crio-conmon-<id>.scope`: conmon is CRI-O's per-container monitor, not
//! the workload, and its cgroup is neither the pod's aggregate nor a container; attributing it
//! to the pod would mix monitor overhead into pod-level readings. It gives `None`.
//!
//! Cgroups nested below a container (a container that manages its own sub-cgroups, e.g. systemd
//! or docker-in-docker inside a pod) are attributed to that container: the processes in them are
//! still the container's.

mod resolve;

use std::fmt;
use std::path::{Component, Path, PathBuf};

pub use resolve::{CgroupIdResolver, ResolveStats};

/// The pod's quality-of-service class, as the kubelet encodes it in the cgroup hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "guaranteed",
            Qos::Burstable => "burstable",
            Qos::BestEffort => "besteffort",
        }
    }
}

impl fmt::Display for Qos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pod (and, below the pod level, the container) a cgroup belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodContainer {
    /// The pod's `metadata.uid` as the API server spells it: a lowercase dashed UUID, or for
    /// static pods the 32-hex config hash the kubelet uses as their UID.
    pub pod_uid: String,
    /// The runtime's 64-hex container id; `None` for the pod-level cgroup.
    pub container_id: Option<String>,
    pub qos: Qos,
}

/// Attributes a cgroup path (relative to a cgroup mount, or an absolute filesystem path under
/// one) to a pod and container. `None` for anything that is not a pod's cgroup: system slices,
/// the `kubepods` and QoS parents, CRI-O's conmon, and malformed names.
pub fn parse_cgroup_path(path: &str) -> Option<PodContainer> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let root = segments.iter().position(|s| is_kubepods_root(s))?;
    let rest = &segments[root + 1..];
    let (pod_segment, after_pod, parent_qos) = match rest.first() {
        Some(first) => match qos_of_parent(first) {
            Some(qos) => (rest.get(1)?, &rest[2.min(rest.len())..], qos),
            None => (first, &rest[1..], Qos::Guaranteed),
        },
        None => return None,
    };
    let (pod_uid, name_qos) = parse_pod_segment(pod_segment)?;
    // A systemd pod slice repeats its QoS class in its name; a disagreement with the parent
    // slice means this is not a kubelet layout we understand.
    if let Some(name_qos) = name_qos
        && name_qos != parent_qos
    {
        return None;
    }
    let container_id = match after_pod.first() {
        None => None,
        Some(segment) => Some(parse_container_segment(segment)?),
    };
    Some(PodContainer { pod_uid, container_id, qos: parent_qos })
}

/// `kubepods` (cgroupfs) or a systemd slice ending in `kubepods.slice` (`kubepods.slice`,
/// kind's `kubelet-kubepods.slice`).
fn is_kubepods_root(segment: &str) -> bool {
    segment == "kubepods" || segment == "kubepods.slice" || segment.ends_with("-kubepods.slice")
}

/// The QoS class of a QoS parent cgroup, or `None` when the segment is not one.
fn qos_of_parent(segment: &str) -> Option<Qos> {
    match segment {
        "burstable" => Some(Qos::Burstable),
        "besteffort" => Some(Qos::BestEffort),
        s if s.ends_with("kubepods-burstable.slice") => Some(Qos::Burstable),
        s if s.ends_with("kubepods-besteffort.slice") => Some(Qos::BestEffort),
        _ => None,
    }
}

/// Parses `pod<uid>` (cgroupfs) or `<prefix>kubepods[-<qos>]-pod<uid_with_underscores>.slice`
/// (systemd). Returns the canonical UID and, for systemd, the QoS class the name carries.
fn parse_pod_segment(segment: &str) -> Option<(String, Option<Qos>)> {
    if let Some(slice) = segment.strip_suffix(".slice") {
        let (prefix, uid) = slice.rsplit_once("-pod")?;
        let qos = if prefix.ends_with("kubepods-burstable") {
            Qos::Burstable
        } else if prefix.ends_with("kubepods-besteffort") {
            Qos::BestEffort
        } else if prefix.ends_with("kubepods") {
            Qos::Guaranteed
        } else {
            return None;
        };
        // systemd reserves '-' as its hierarchy separator, so the kubelet writes the UID's dashes
        // as underscores; a dash here would be a different unit name, not a pod.
        if uid.contains('-') {
            return None;
        }
        return Some((canonical_uid(&uid.replace('_', "-"))?, Some(qos)));
    }
    let uid = segment.strip_prefix("pod")?;
    Some((canonical_uid(uid)?, None))
}

/// A dashed UUID (8-4-4-4-12) or a 32-hex static pod hash, lowercased.
fn canonical_uid(uid: &str) -> Option<String> {
    let lower = uid.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let dashed = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    let hash = bytes.len() == 32 && bytes.iter().all(u8::is_ascii_hexdigit);
    (dashed || hash).then_some(lower)
}

/// The container id of a container cgroup segment; `None` for conmon and for anything else.
fn parse_container_segment(segment: &str) -> Option<String> {
    let name = segment.strip_suffix(".scope").unwrap_or(segment);
    if name.starts_with("crio-conmon-") {
        return None;
    }
    let id = ["cri-containerd-", "crio-", "docker-"].iter().find_map(|p| name.strip_prefix(p)).unwrap_or(name);
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then(|| id.to_owned())
}

/// Why a cgroup path cannot be joined under a mount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupPathError {
    #[error("cgroup path {0:?} climbs out of its mount with '..'")]
    Escapes(String),
}

/// The directory of `cgroup_path` (as `/proc/<pid>/cgroup` or the resolver spells it) under a
/// cgroup mount. Refuses `..` so that a path read from a process cannot point the agent at files
/// outside the cgroup tree.
pub fn cgroup_dir_for(mount: &Path, cgroup_path: &str) -> Result<PathBuf, CgroupPathError> {
    let relative = Path::new(cgroup_path.trim_start_matches('/'));
    let mut dir = mount.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(part) => dir.push(part),
            Component::CurDir => {}
            _ => return Err(CgroupPathError::Escapes(cgroup_path.to_owned())),
        }
    }
    Ok(dir)
}

/// The cgroup path that attributes a process, from the contents of `/proc/<pid>/cgroup`: the
/// cgroup2 (`0::`) path when it names a pod, else the v1 memory hierarchy's path when that does
/// (hybrid hosts keep pods only in v1), else the cgroup2 path.
pub fn path_from_proc_cgroup(contents: &str) -> Option<&str> {
    let mut unified = None;
    let mut memory = None;
    for line in contents.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if controllers.is_empty() {
            unified = Some(path);
        } else if controllers.split(',').any(|c| c == "memory") {
            memory = Some(path);
        }
    }
    let names_pod = |p: &Option<&str>| p.is_some_and(|p| parse_cgroup_path(p).is_some());
    if names_pod(&unified) {
        unified
    } else if names_pod(&memory) {
        memory
    } else {
        unified.or(memory)
    }
}

#[cfg(test)]
mod tests;
