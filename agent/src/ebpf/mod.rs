//! The agent's eBPF side: loading the C programs built from `ebpf/` by `build.rs`, and reading their maps.
//!
//! Kernel programs aggregate into maps; this module only drains counters, so the per-event cost stays in
//! the kernel program and user space work scales with the number of distinct aggregates, not events.

mod raw;
mod tcp;

pub use raw::{ConnectionCounters, DecodeError};
pub use tcp::TcpProbe;

/// Run statistics of one loaded program; the kernel counts them only while stats are enabled
/// ([`TcpProbe::enable_run_stats`] or `sysctl kernel.bpf_stats_enabled=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramRunStats {
    pub name: String,
    pub run_time_ns: u64,
    pub run_count: u64,
}

impl ProgramRunStats {
    /// Mean kernel time per invocation, the figure the design budgets (<= 100 ns per event).
    pub fn ns_per_run(&self) -> Option<f64> {
        (self.run_count > 0).then(|| self.run_time_ns as f64 / self.run_count as f64)
    }
}

/// Errors of loading the programs and reading their maps.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("loading the eBPF object failed (the agent needs root, or CAP_BPF and CAP_PERFMON): {0}")]
    Load(#[from] aya::EbpfError),
    #[error("reading the kernel BTF from /sys/kernel/btf/vmlinux failed: {0}")]
    Btf(#[from] aya::BtfError),
    #[error("the eBPF object has no {kind} named {name}")]
    Missing { kind: &'static str, name: &'static str },
    #[error(
        "eBPF program {name} could not be loaded or attached (the agent needs root, or CAP_BPF and CAP_PERFMON): {source}"
    )]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("enabling BPF run statistics failed: {0}")]
    Stats(#[source] aya::sys::SyscallError),
}
