//! The agent's eBPF side: loading the C programs built from `ebpf/` by `build.rs`, and reading their maps.
//!
//! Kernel programs aggregate into maps; this module only drains counters, so the per-event cost stays in
//! the kernel program and user space work scales with the number of distinct aggregates, not events.

mod raw;
mod sched;
mod tcp;

use std::os::fd::OwnedFd;

use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader, Pod};

pub use raw::{ConnectionCounters, DecodeError, HIST_SLOTS, RunqueueLatency};
pub use sched::SchedProbe;
pub use tcp::TcpProbe;

/// (program name in the object, BTF tracepoint it attaches to). tp_btf rather than classic tracepoints: no
/// tracefs mount is needed and the arguments are typed kernel pointers.
type Tracepoints<const N: usize> = [(&'static str, &'static str); N];

/// Run statistics of one loaded program; the kernel counts them only while stats are enabled
/// ([`TcpProbe::enable_run_stats`], [`SchedProbe::enable_run_stats`] or `sysctl kernel.bpf_stats_enabled=1`).
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

/// Loads an embedded object and attaches each of its tp_btf programs.
fn load_and_attach(object: &[u8], programs: &[(&'static str, &'static str)]) -> Result<Ebpf, EbpfError> {
    let (mut ebpf, btf) = load_object(object)?;
    for &(name, tracepoint) in programs {
        attach(&mut ebpf, &btf, name, tracepoint)?;
    }
    Ok(ebpf)
}

/// The object with its maps created in the kernel, and the kernel BTF its programs are loaded against.
fn load_object(object: &[u8]) -> Result<(Ebpf, Btf), EbpfError> {
    raise_memlock();
    let btf = Btf::from_sys_fs()?;
    // aya 0.14 has no user-space type for task-local storage; sched.bpf.c uses it only in the kernel.
    let ebpf = EbpfLoader::new().allow_unsupported_maps().load(object)?;
    Ok((ebpf, btf))
}

/// Loads one program (the kernel's verifier runs here) and attaches it to its BTF tracepoint.
fn attach(ebpf: &mut Ebpf, btf: &Btf, name: &'static str, tracepoint: &'static str) -> Result<(), EbpfError> {
    let program: &mut BtfTracePoint = ebpf
        .program_mut(name)
        .ok_or(EbpfError::Missing { kind: "program", name })?
        .try_into()
        .map_err(|source| EbpfError::Program { name, source })?;
    program.load(tracepoint, btf).map_err(|source| EbpfError::Program { name, source })?;
    program.attach().map_err(|source| EbpfError::Program { name, source })?;
    Ok(())
}

/// Whether one of the agent's programs loads and attaches in this kernel, in this process's
/// privileges: what `causely-agent check` reports per program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramCheck {
    pub program: &'static str,
    /// The BTF tracepoint it attaches to.
    pub tracepoint: &'static str,
    /// The kernel's (or the loader's) error, with its causes; `None` when it loaded and attached.
    pub error: Option<String>,
}

/// Tries every program of `object` on its own, so that one refused program does not hide whether
/// the others load; everything is detached and unloaded again before this returns.
fn check_programs(object: &[u8], programs: &[(&'static str, &'static str)]) -> Vec<ProgramCheck> {
    let check = |program, tracepoint, error: Option<&EbpfError>| ProgramCheck {
        program,
        tracepoint,
        error: error.map(kernel_message),
    };
    let (mut ebpf, btf) = match load_object(object) {
        Ok(loaded) => loaded,
        // Without the object (maps refused, no BTF) no program of it can load.
        Err(err) => return programs.iter().map(|&(p, t)| check(p, t, Some(&err))).collect(),
    };
    programs.iter().map(|&(p, t)| check(p, t, attach(&mut ebpf, &btf, p, t).err().as_ref())).collect()
}

/// The probe's own load, which is what the agent runs; only when it fails is each program tried
/// on its own to name every one the kernel refuses.
fn check_probe<P>(
    load: impl FnOnce() -> Result<P, EbpfError>,
    object: &[u8],
    programs: &[(&'static str, &'static str)],
) -> Vec<ProgramCheck> {
    match load() {
        Ok(probe) => {
            drop(probe);
            programs.iter().map(|&(program, tracepoint)| ProgramCheck { program, tracepoint, error: None }).collect()
        }
        Err(err) => {
            let mut checks = check_programs(object, programs);
            // Every program loads on its own but the probe does not (e.g. a map it needs): the probe's
            // error is then every program's.
            if checks.iter().all(|c| c.error.is_none()) {
                checks.iter_mut().for_each(|c| c.error = Some(kernel_message(&err)));
            }
            checks
        }
    }
}

/// The error without the agent's own advice around it: the kernel's words and their causes, each
/// once (many errors repeat their source in their own message).
fn kernel_message(err: &EbpfError) -> String {
    let first: &dyn std::error::Error = match err {
        EbpfError::Program { source, .. } => source,
        EbpfError::Map { source, .. } => source,
        other => other,
    };
    let mut text = first.to_string();
    let mut source = first.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, EbpfError> {
    ebpf.take_map(name).ok_or(EbpfError::Missing { kind: "map", name })
}

/// Switches the kernel side to the other key generation and returns the one to drain. Draining only the
/// old generation means increments made while draining land in the next interval instead of being lost;
/// only an event already in flight on another CPU at the flip can still touch a drained key.
fn flip_generation(map: &mut Array<MapData, u32>, current: &mut u32, name: &'static str) -> Result<u32, EbpfError> {
    let old = *current;
    let next = old ^ 1;
    map.set(0, next, 0).map_err(|source| EbpfError::Map { name, source })?;
    *current = next;
    Ok(old)
}

/// Reads and removes one entry; `None` if it vanished in between.
fn take<K: Pod, V: Pod>(map: &mut HashMap<MapData, K, V>, key: &K, name: &'static str) -> Result<Option<V>, EbpfError> {
    let value = match map.get(key, 0) {
        Ok(value) => value,
        Err(MapError::KeyNotFound) => return Ok(None),
        Err(source) => return Err(EbpfError::Map { name, source }),
    };
    match map.remove(key) {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(Some(value)),
        Err(source) => Err(EbpfError::Map { name, source }),
    }
}

fn per_cpu_sum(map: &PerCpuArray<MapData, u64>, slot: u32, name: &'static str) -> Result<u64, EbpfError> {
    let values = map.get(&slot, 0).map_err(|source| EbpfError::Map { name, source })?;
    Ok(values.iter().sum())
}

/// While the returned descriptor is held, the kernel accounts run_time_ns / run_cnt for every BPF program.
fn enable_run_stats(holder: &mut Option<OwnedFd>) -> Result<(), EbpfError> {
    if holder.is_none() {
        *holder = Some(aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(EbpfError::Stats)?);
    }
    Ok(())
}

fn run_stats(ebpf: &Ebpf, programs: &[(&'static str, &'static str)]) -> Result<Vec<ProgramRunStats>, EbpfError> {
    let mut out = Vec::new();
    for &(name, _) in programs {
        let program = ebpf.program(name).ok_or(EbpfError::Missing { kind: "program", name })?;
        let info = program.info().map_err(|source| EbpfError::Program { name, source })?;
        out.push(ProgramRunStats {
            name: name.to_owned(),
            run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
            run_count: info.run_count(),
        })
    }
    Ok(out)
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK. Newer kernels charge the memory cgroup instead,
/// and the raise needs CAP_SYS_RESOURCE which a container may lack, so a failure is not an error.
fn raise_memlock() {
    let unlimited = rustix::process::Rlimit { current: None, maximum: None };
    // If loading then fails for lack of locked memory, aya's load error says so.
    let _ = rustix::process::setrlimit(rustix::process::Resource::Memlock, unlimited);
}
