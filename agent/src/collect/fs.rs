//! The file-reading adapter: finds the cgroup hierarchy under a host root, discovers container
//! cgroups, and reads their files and the node's proc files into typed readings.

use std::io;
use std::path::{Path, PathBuf};

use super::parse::{self, ParseError};
use super::{CollectError, ContainerReading, ContainerStats, ErrorCounts, NodeReading, NodeStats};
use crate::cgroup::{self, PodContainer};

/// Where the per-container cgroup files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Unified hierarchy: every controller's files in one directory per cgroup.
    V2 { mount: PathBuf },
    /// Legacy or hybrid: one mount per controller (cpu and cpuacct often co-mounted), and on
    /// hybrid hosts a controller-less cgroup2 mount that only the eBPF cgroup ids refer to.
    V1 { cpu: PathBuf, cpuacct: PathBuf, memory: PathBuf, unified: Option<PathBuf> },
}

impl CgroupLayout {
    /// Inspects `<host_root>/sys/fs/cgroup`.
    pub fn detect(host_root: &Path) -> Result<Self, CollectError> {
        let base = host_root.join("sys/fs/cgroup");
        if base.join("cgroup.controllers").is_file() {
            return Ok(CgroupLayout::V2 { mount: base });
        }
        let first = |names: &[&str]| names.iter().map(|n| base.join(n)).find(|p| p.is_dir());
        let memory = first(&["memory"]).ok_or_else(|| CollectError::NoCgroups(base.clone()))?;
        let cpu = first(&["cpu,cpuacct", "cpu"]).ok_or_else(|| CollectError::NoCgroups(base.clone()))?;
        let cpuacct = first(&["cpu,cpuacct", "cpuacct"]).ok_or_else(|| CollectError::NoCgroups(base.clone()))?;
        let unified = Some(base.join("unified")).filter(|p| p.join("cgroup.controllers").is_file());
        Ok(CgroupLayout::V1 { cpu, cpuacct, memory, unified })
    }

    /// The cgroup2 mount, whose directory inodes are the ids eBPF reports.
    pub fn cgroup2_mount(&self) -> Option<&Path> {
        match self {
            CgroupLayout::V2 { mount } => Some(mount),
            CgroupLayout::V1 { unified, .. } => unified.as_deref(),
        }
    }

    /// The hierarchy that holds every pod's cgroups: the unified one, or v1's memory controller
    /// (the kubelet always creates pod cgroups there).
    fn pod_hierarchy(&self) -> &Path {
        match self {
            CgroupLayout::V2 { mount } => mount,
            CgroupLayout::V1 { memory, .. } => memory,
        }
    }
}

/// Where to read from and how to label what is read.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// The host's root as the agent sees it: `/` on the host, `/host` in the DaemonSet (which
    /// mounts the host's `/sys/fs/cgroup` and `/proc` there).
    pub host_root: PathBuf,
    /// The node name, for labels.
    pub node: String,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig { host_root: PathBuf::from("/"), node: String::new() }
    }
}

/// Reads container and node files; keeps running error counts.
#[derive(Debug)]
pub struct Collector {
    host_root: PathBuf,
    node: String,
    layout: CgroupLayout,
    errors: ErrorCounts,
}

/// Discovery walks at most this deep below the mount: kind's systemd layout nests a container
/// five levels down and k3d adds two more.
const MAX_DISCOVERY_DEPTH: usize = 8;
/// And visits at most this many directories, so a node with a runaway cgroup tree costs a
/// bounded amount per scrape.
const MAX_DISCOVERY_DIRS: usize = 50_000;

impl Collector {
    pub fn new(config: CollectorConfig) -> Result<Self, CollectError> {
        let layout = CgroupLayout::detect(&config.host_root)?;
        Ok(Collector { host_root: config.host_root, node: config.node, layout, errors: ErrorCounts::default() })
    }

    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn error_counts(&self) -> ErrorCounts {
        self.errors
    }

    /// Every container cgroup on the node, as `(path relative to the mount, attribution)`.
    /// Does not descend below a container: its sub-cgroups are part of it.
    pub fn discover(&self) -> Vec<(String, PodContainer)> {
        let mut found = Vec::new();
        let mut stack = vec![(self.layout.pod_hierarchy().to_path_buf(), String::new(), 0usize)];
        let mut visited = 0;
        while let Some((dir, relative, depth)) = stack.pop() {
            visited += 1;
            if visited > MAX_DISCOVERY_DIRS {
                break;
            }
            if let Some(pod) = cgroup::parse_cgroup_path(&relative)
                && pod.container_id.is_some()
            {
                found.push((relative, pod));
                continue;
            }
            if depth >= MAX_DISCOVERY_DEPTH {
                continue;
            }
            // A cgroup removed while we walk is simply not there any more.
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    stack.push((entry.path(), format!("{relative}/{name}"), depth + 1));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// Reads every discovered container.
    pub fn scrape_containers(&mut self) -> Vec<ContainerReading> {
        self.discover().into_iter().map(|(path, pod)| self.read_container(path, pod)).collect()
    }

    /// Reads one container's cgroup files. Every file that cannot be read leaves its field
    /// `None` and adds an error; the others are still read.
    pub fn read_container(&mut self, cgroup: String, pod: PodContainer) -> ContainerReading {
        let mut errors = Vec::new();
        let stats = match &self.layout {
            CgroupLayout::V2 { mount } => read_v2(mount, &cgroup, &mut errors),
            CgroupLayout::V1 { cpu, cpuacct, memory, .. } => read_v1(cpu, cpuacct, memory, &cgroup, &mut errors),
        };
        for error in &errors {
            self.errors.count(error);
        }
        ContainerReading { cgroup, pod, stats, errors }
    }

    /// Reads `/proc/stat`, `/proc/meminfo` and `/proc/pressure/*`. Absent PSI files are `None`,
    /// not errors: kernels without `CONFIG_PSI` or booted with `psi=0` have none.
    pub fn read_node(&mut self) -> NodeReading {
        let proc = self.host_root.join("proc");
        let mut errors = Vec::new();
        let stats = NodeStats {
            cpu: read_parsed(&proc.join("stat"), &mut errors, parse::proc_stat),
            memory: read_parsed(&proc.join("meminfo"), &mut errors, parse::meminfo),
            psi_cpu: read_psi(&proc.join("pressure/cpu"), &mut errors),
            psi_memory: read_psi(&proc.join("pressure/memory"), &mut errors),
            psi_io: read_psi(&proc.join("pressure/io"), &mut errors),
        };
        for error in &errors {
            self.errors.count(error);
        }
        NodeReading { stats, errors }
    }
}

fn read_v2(mount: &Path, cgroup: &str, errors: &mut Vec<CollectError>) -> ContainerStats {
    let Some(dir) = dir_or_error(mount, cgroup, errors) else { return ContainerStats::default() };
    let cpu = read_parsed(&dir.join("cpu.stat"), errors, parse::cpu_stat_v2);
    ContainerStats {
        cpu_usage_usec: cpu.map(|c| c.usage_usec),
        throttling: cpu.map(|c| parse::Throttling {
            nr_periods: c.nr_periods,
            nr_throttled: c.nr_throttled,
            throttled_usec: c.throttled_usec,
        }),
        cpu_limit: read_parsed(&dir.join("cpu.max"), errors, parse::cpu_max).flatten(),
        memory_usage_bytes: read_parsed(&dir.join("memory.current"), errors, parse::single_u64),
        memory_limit_bytes: read_parsed(&dir.join("memory.max"), errors, parse::memory_max).flatten(),
        oom_kills: read_parsed(&dir.join("memory.events"), errors, parse::oom_kills),
    }
}

fn read_v1(cpu: &Path, cpuacct: &Path, memory: &Path, cgroup: &str, errors: &mut Vec<CollectError>) -> ContainerStats {
    let mut stats = ContainerStats::default();
    if let Some(dir) = dir_or_error(cpuacct, cgroup, errors) {
        stats.cpu_usage_usec = read_parsed(&dir.join("cpuacct.usage"), errors, parse::single_u64).map(|ns| ns / 1_000);
    }
    if let Some(dir) = dir_or_error(cpu, cgroup, errors) {
        stats.throttling = read_parsed(&dir.join("cpu.stat"), errors, parse::cpu_stat_v1);
        let quota = read_text(&dir.join("cpu.cfs_quota_us"), errors);
        let period = read_text(&dir.join("cpu.cfs_period_us"), errors);
        if let (Some(quota), Some(period)) = (quota, period) {
            stats.cpu_limit = parse::cfs_quota(&quota, &period)
                .map_err(|source| errors.push(CollectError::Parse { file: dir.join("cpu.cfs_quota_us"), source }))
                .ok()
                .flatten();
        }
    }
    if let Some(dir) = dir_or_error(memory, cgroup, errors) {
        stats.memory_usage_bytes = read_parsed(&dir.join("memory.usage_in_bytes"), errors, parse::single_u64);
        stats.memory_limit_bytes =
            read_parsed(&dir.join("memory.limit_in_bytes"), errors, parse::memory_limit_v1).flatten();
        stats.oom_kills = read_parsed(&dir.join("memory.oom_control"), errors, parse::oom_kills);
    }
    stats
}

fn dir_or_error(mount: &Path, cgroup: &str, errors: &mut Vec<CollectError>) -> Option<PathBuf> {
    match cgroup::cgroup_dir_for(mount, cgroup) {
        Ok(dir) => Some(dir),
        Err(err) => {
            errors.push(CollectError::Io {
                file: mount.join(cgroup.trim_start_matches('/')),
                source: io::Error::other(err),
            });
            None
        }
    }
}

fn read_text(file: &Path, errors: &mut Vec<CollectError>) -> Option<String> {
    match std::fs::read_to_string(file) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            errors.push(CollectError::Missing { file: file.to_path_buf() });
            None
        }
        Err(source) => {
            errors.push(CollectError::Io { file: file.to_path_buf(), source });
            None
        }
    }
}

fn read_parsed<T>(
    file: &Path,
    errors: &mut Vec<CollectError>,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Option<T> {
    let text = read_text(file, errors)?;
    parse(&text).map_err(|source| errors.push(CollectError::Parse { file: file.to_path_buf(), source })).ok()
}

fn read_psi(file: &Path, errors: &mut Vec<CollectError>) -> Option<parse::Psi> {
    match std::fs::read_to_string(file) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        // Reading PSI with psi=0 fails with EOPNOTSUPP: the same "no PSI here".
        Err(err) if err.raw_os_error() == Some(95) => None,
        Err(source) => {
            errors.push(CollectError::Io { file: file.to_path_buf(), source });
            None
        }
        Ok(text) => parse::psi(&text)
            .map_err(|source| errors.push(CollectError::Parse { file: file.to_path_buf(), source }))
            .ok(),
    }
}
