//! Collectors: container and node readings from cgroup and proc files, the raw samples they
//! become (destined only for the in-cluster VictoriaMetrics), and the rates derived between two
//! scrapes that the detectors watch.
//!
//! Parsing ([`parse`]) and derivation ([`derive`]) are pure; [`fs`] is the thin adapter that
//! reads files under a configurable host root, so tests point it at a fixture tree.

pub mod derive;
pub mod fs;
pub mod parse;

use std::path::PathBuf;

pub use derive::{ContainerRates, NodeRates, container_rates, node_rates};
pub use fs::{CgroupLayout, Collector, CollectorConfig};
pub use parse::{CpuLimit, CpuTimes, MemInfo, ParseError, Psi, PsiLine, Throttling};

use crate::cgroup::PodContainer;

/// Raw samples are the shipper's type: they go to VictoriaMetrics and nowhere else.
pub use crate::ship::Sample;

/// Why one file could not be read; recorded against the container or node it belongs to and
/// counted, never fatal to the scrape.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{file}: no such file")]
    Missing { file: PathBuf },
    #[error("{file}: {source}")]
    Io { file: PathBuf, source: std::io::Error },
    #[error("{file}: {source}")]
    Parse { file: PathBuf, source: ParseError },
    #[error("no cgroup hierarchy under {0} (neither cgroup.controllers nor a v1 memory controller)")]
    NoCgroups(PathBuf),
}

/// Running totals of file errors by kind, exported as a self-metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    pub missing: u64,
    pub io: u64,
    pub parse: u64,
}

impl ErrorCounts {
    fn count(&mut self, error: &CollectError) {
        match error {
            CollectError::Missing { .. } => self.missing += 1,
            CollectError::Parse { .. } => self.parse += 1,
            CollectError::Io { .. } | CollectError::NoCgroups(_) => self.io += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.missing + self.io + self.parse
    }
}

/// What one scrape read from a container's cgroup. A field is `None` when its file could not be
/// read (see `errors`) or, for limits, when the container is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ContainerStats {
    pub cpu_usage_usec: Option<u64>,
    pub throttling: Option<Throttling>,
    pub cpu_limit: Option<CpuLimit>,
    pub memory_usage_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub oom_kills: Option<u64>,
}

/// One container's scrape.
#[derive(Debug)]
pub struct ContainerReading {
    /// The cgroup path relative to the hierarchy's mount.
    pub cgroup: String,
    pub pod: PodContainer,
    pub stats: ContainerStats,
    pub errors: Vec<CollectError>,
}

/// The node-wide readings. PSI is `None` per resource where the kernel has no PSI.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeStats {
    pub cpu: Option<CpuTimes>,
    pub memory: Option<MemInfo>,
    pub psi_cpu: Option<Psi>,
    pub psi_memory: Option<Psi>,
    pub psi_io: Option<Psi>,
}

/// One node scrape.
#[derive(Debug, Default)]
pub struct NodeReading {
    pub stats: NodeStats,
    pub errors: Vec<CollectError>,
}

/// `USER_HZ`: the unit of `/proc/stat`. It is 100 on every Linux architecture Kubernetes runs on.
pub const USER_HZ: f64 = 100.0;

fn label(key: &str, value: impl Into<String>) -> (String, String) {
    (key.to_owned(), value.into())
}

/// The raw samples of one container scrape, labelled with the node and the pod UID and container
/// id (names are joined from the pod UID later, by whoever knows the pod).
pub fn container_samples(node: &str, reading: &ContainerReading, time_ms: u64) -> Vec<Sample> {
    let mut labels = vec![label("node", node), label("pod_uid", reading.pod.pod_uid.as_str())];
    if let Some(id) = &reading.pod.container_id {
        labels.push(label("container_id", id.as_str()));
    }
    labels.push(label("qos", reading.pod.qos.as_str()));
    let stats = &reading.stats;
    let mut out = Vec::new();
    let mut push = |metric: &'static str, value: Option<f64>| {
        if let Some(value) = value {
            out.push(Sample { metric: metric.to_owned(), labels: labels.clone(), value, time_ms });
        }
    };
    push("container_cpu_usage_seconds_total", stats.cpu_usage_usec.map(|u| u as f64 / 1e6));
    push("container_cpu_cfs_periods_total", stats.throttling.map(|t| t.nr_periods as f64));
    push("container_cpu_cfs_throttled_periods_total", stats.throttling.map(|t| t.nr_throttled as f64));
    push("container_cpu_cfs_throttled_seconds_total", stats.throttling.map(|t| t.throttled_usec as f64 / 1e6));
    push("container_cpu_limit_cores", stats.cpu_limit.map(CpuLimit::cores));
    push("container_memory_usage_bytes", stats.memory_usage_bytes.map(|b| b as f64));
    push("container_memory_limit_bytes", stats.memory_limit_bytes.map(|b| b as f64));
    push("container_oom_kills_total", stats.oom_kills.map(|n| n as f64));
    out
}

/// The raw samples of one node scrape.
pub fn node_samples(node: &str, stats: &NodeStats, time_ms: u64) -> Vec<Sample> {
    let mut out = Vec::new();
    let sample = |metric: &str, labels: Vec<(String, String)>, value| Sample {
        metric: metric.to_owned(),
        labels,
        value,
        time_ms,
    };
    if let Some(cpu) = stats.cpu {
        for (mode, ticks) in cpu.modes() {
            out.push(sample(
                "node_cpu_seconds_total",
                vec![label("node", node), label("mode", mode)],
                ticks as f64 / USER_HZ,
            ));
        }
    }
    if let Some(memory) = stats.memory {
        out.push(sample("node_memory_total_bytes", vec![label("node", node)], memory.total_bytes as f64));
        out.push(sample("node_memory_available_bytes", vec![label("node", node)], memory.available_bytes as f64));
    }
    for (resource, psi) in [("cpu", stats.psi_cpu), ("memory", stats.psi_memory), ("io", stats.psi_io)] {
        let Some(psi) = psi else { continue };
        for (scope, line) in [("some", Some(psi.some)), ("full", psi.full)] {
            let Some(line) = line else { continue };
            let labels = vec![label("node", node), label("resource", resource), label("scope", scope)];
            out.push(sample("node_pressure_avg10_percent", labels.clone(), line.avg10));
            out.push(sample("node_pressure_stalled_seconds_total", labels, line.total_usec as f64 / 1e6));
        }
    }
    out
}

/// The collector's own error counters as samples, so a node with unreadable cgroups is visible.
pub fn error_samples(node: &str, counts: &ErrorCounts, time_ms: u64) -> Vec<Sample> {
    [("missing", counts.missing), ("io", counts.io), ("parse", counts.parse)]
        .into_iter()
        .map(|(kind, n)| Sample {
            metric: "causely_agent_collect_errors_total".to_owned(),
            labels: vec![label("node", node), label("kind", kind)],
            value: n as f64,
            time_ms,
        })
        .collect()
}

#[cfg(test)]
mod tests;
