//! Rates between two scrapes: what the detectors watch. Pure arithmetic over two readings.

use super::{ContainerStats, NodeStats};

/// A container's rates over the interval between two scrapes. `None` where an input is missing,
/// a counter went backwards (the cgroup was recreated), or the ratio has no meaning (no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ContainerRates {
    /// CPU used, in cores.
    pub cpu_cores: Option<f64>,
    /// CPU used as a fraction of the CFS limit (1.0 = at the limit).
    pub cpu_utilization: Option<f64>,
    /// Share of CFS periods in which the container was throttled.
    pub throttled_fraction: Option<f64>,
    /// Memory in use as a fraction of the limit, at the later scrape.
    pub memory_utilization: Option<f64>,
    /// OOM kills since the earlier scrape.
    pub new_oom_kills: Option<u64>,
}

fn delta(earlier: Option<u64>, later: Option<u64>) -> Option<u64> {
    later?.checked_sub(earlier?)
}

/// Rates of one container between scrapes at `earlier_ms` and `later_ms`.
pub fn container_rates(
    earlier: &ContainerStats,
    earlier_ms: u64,
    later: &ContainerStats,
    later_ms: u64,
) -> ContainerRates {
    let elapsed_usec = later_ms.checked_sub(earlier_ms).filter(|&ms| ms > 0).map(|ms| ms as f64 * 1_000.0);
    let used_usec = delta(earlier.cpu_usage_usec, later.cpu_usage_usec);
    let cpu_cores = elapsed_usec.zip(used_usec).map(|(elapsed, used)| used as f64 / elapsed);
    let cpu_utilization = cpu_cores.zip(later.cpu_limit).and_then(|(cores, limit)| {
        let limit = limit.cores();
        (limit > 0.0).then(|| cores / limit)
    });
    let throttled_fraction = match (earlier.throttling, later.throttling) {
        (Some(a), Some(b)) => {
            match (b.nr_periods.checked_sub(a.nr_periods), b.nr_throttled.checked_sub(a.nr_throttled)) {
                (Some(0), Some(_)) if later.cpu_limit.is_some() => Some(0.0),
                // A limited container that did not run had no periods and was not throttled; an
                // unlimited one has no periods ever and no throttling to speak of.
                (Some(0), Some(_)) => None,
                (Some(periods), Some(throttled)) => Some((throttled as f64 / periods as f64).min(1.0)),
                _ => None,
            }
        }
        _ => None,
    };
    let memory_utilization = later
        .memory_usage_bytes
        .zip(later.memory_limit_bytes)
        .and_then(|(used, limit)| (limit > 0).then(|| used as f64 / limit as f64));
    ContainerRates {
        cpu_cores,
        cpu_utilization,
        throttled_fraction,
        memory_utilization,
        new_oom_kills: delta(earlier.oom_kills, later.oom_kills),
    }
}

/// The node's rates between two scrapes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeRates {
    /// Busy share of all CPU time across all CPUs.
    pub cpu_utilization: Option<f64>,
    /// `MemAvailable / MemTotal` at the later scrape.
    pub memory_available_ratio: Option<f64>,
    /// PSI `some avg10`, in percent, at the later scrape.
    pub psi_cpu_some_avg10: Option<f64>,
    pub psi_memory_some_avg10: Option<f64>,
    pub psi_io_some_avg10: Option<f64>,
}

pub fn node_rates(earlier: &NodeStats, later: &NodeStats) -> NodeRates {
    let cpu_utilization = earlier.cpu.zip(later.cpu).and_then(|(a, b)| {
        let total = b.total().checked_sub(a.total())?;
        let busy = b.busy().checked_sub(a.busy())?;
        (total > 0).then(|| busy as f64 / total as f64)
    });
    let memory_available_ratio =
        later.memory.and_then(|m| (m.total_bytes > 0).then(|| m.available_bytes as f64 / m.total_bytes as f64));
    NodeRates {
        cpu_utilization,
        memory_available_ratio,
        psi_cpu_some_avg10: later.psi_cpu.map(|p| p.some.avg10),
        psi_memory_some_avg10: later.psi_memory.map(|p| p.some.avg10),
        psi_io_some_avg10: later.psi_io.map(|p| p.some.avg10),
    }
}
