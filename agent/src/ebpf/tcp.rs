//! `TcpProbe`: loads and attaches `ebpf/tcp.bpf.c` (connection lifecycle and retransmits) and drains its
//! per-(cgroup, addresses, direction) counters.

use std::os::fd::OwnedFd;

use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf};

use super::raw::{self, AGG_KEY_LEN, AGG_VAL_LEN, ConnectionCounters};
use super::{EbpfError, ProgramRunStats};

/// The compiled object, embedded so the agent binary carries its kernel programs.
static TCP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcp.bpf.o"));

/// (program, BTF tracepoint) pairs. tp_btf rather than classic tracepoints: no tracefs mount needed, and the
/// arguments are typed kernel pointers.
const PROGRAMS: [(&str, &str); 2] =
    [("tcp_set_state", "inet_sock_set_state"), ("tcp_retransmit", "tcp_retransmit_skb")];

type AggMap = HashMap<MapData, [u8; AGG_KEY_LEN], [u8; AGG_VAL_LEN]>;

/// The loaded and attached TCP programs; detached and unloaded when dropped.
pub struct TcpProbe {
    // Owns the programs and their links: dropping it detaches them.
    ebpf: Ebpf,
    aggs: AggMap,
    lost: PerCpuArray<MapData, u64>,
    generation_map: Array<MapData, u32>,
    generation: u32,
    // While held, the kernel accounts run_time_ns / run_cnt for every BPF program.
    stats: Option<OwnedFd>,
}

impl TcpProbe {
    /// Loads the programs into the kernel and attaches them. Needs root (or CAP_BPF + CAP_PERFMON).
    pub fn load() -> Result<TcpProbe, EbpfError> {
        raise_memlock();
        let btf = Btf::from_sys_fs()?;
        let mut ebpf = Ebpf::load(TCP_OBJECT)?;
        for (name, tracepoint) in PROGRAMS {
            let program: &mut BtfTracePoint = ebpf
                .program_mut(name)
                .ok_or(EbpfError::Missing { kind: "program", name })?
                .try_into()
                .map_err(|source| EbpfError::Program { name, source })?;
            program.load(tracepoint, &btf).map_err(|source| EbpfError::Program { name, source })?;
            program.attach().map_err(|source| EbpfError::Program { name, source })?;
        }
        let aggs = AggMap::try_from(take_map(&mut ebpf, "tcp_aggs")?)
            .map_err(|source| EbpfError::Map { name: "tcp_aggs", source })?;
        let lost = PerCpuArray::try_from(take_map(&mut ebpf, "tcp_lost")?)
            .map_err(|source| EbpfError::Map { name: "tcp_lost", source })?;
        let generation_map = Array::try_from(take_map(&mut ebpf, "tcp_gen")?)
            .map_err(|source| EbpfError::Map { name: "tcp_gen", source })?;
        Ok(TcpProbe { ebpf, aggs, lost, generation_map, generation: 0, stats: None })
    }

    /// Returns the counters accumulated since the previous call and removes them from the kernel map.
    ///
    /// The kernel writes into one of two key generations; this flips the generation, then drains the old
    /// one, so increments made while draining land in the next interval instead of being lost. Only an
    /// event already in flight on another CPU at the flip can still touch a drained key.
    pub fn read(&mut self) -> Result<Vec<ConnectionCounters>, EbpfError> {
        let old = self.generation;
        let next = old ^ 1;
        self.generation_map.set(0, next, 0).map_err(|source| EbpfError::Map { name: "tcp_gen", source })?;
        self.generation = next;

        let keys = self
            .aggs
            .keys()
            .filter(|key| key.as_ref().map_or(true, |k| u32::from(raw::key_generation(k)) == old))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| EbpfError::Map { name: "tcp_aggs", source })?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = match self.aggs.get(&key, 0) {
                Ok(value) => value,
                // Removed between listing and reading: nothing to report.
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(source) => return Err(EbpfError::Map { name: "tcp_aggs", source }),
            };
            match self.aggs.remove(&key) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(source) => return Err(EbpfError::Map { name: "tcp_aggs", source }),
            }
            // A key the decoder does not understand is a layout mismatch with tcp.bpf.c; skip it rather
            // than fail the whole interval.
            if let Ok(counters) = raw::decode(&key, &value) {
                out.push(counters);
            }
        }
        Ok(out)
    }

    /// Updates the kernel side could not make since load (a full map, a failed insert), summed over CPUs.
    pub fn lost(&self) -> Result<u64, EbpfError> {
        raw::LOST_SLOTS.iter().try_fold(0u64, |sum, slot| Ok(sum + self.slot(*slot)?))
    }

    /// Events on sockets opened before the programs were attached; they are not attributed.
    pub fn untracked(&self) -> Result<u64, EbpfError> {
        self.slot(raw::UNTRACKED_SLOT)
    }

    fn slot(&self, slot: u32) -> Result<u64, EbpfError> {
        let values = self.lost.get(&slot, 0).map_err(|source| EbpfError::Map { name: "tcp_lost", source })?;
        Ok(values.iter().sum())
    }

    /// Turns on the kernel's run-time accounting of BPF programs for as long as this probe lives.
    pub fn enable_run_stats(&mut self) -> Result<(), EbpfError> {
        if self.stats.is_none() {
            self.stats = Some(aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(EbpfError::Stats)?);
        }
        Ok(())
    }

    /// Kernel run time and invocation count of each program, from the kernel's program info.
    pub fn run_stats(&self) -> Result<Vec<ProgramRunStats>, EbpfError> {
        let mut out = Vec::new();
        for (name, _) in PROGRAMS {
            let program = self.ebpf.program(name).ok_or(EbpfError::Missing { kind: "program", name })?;
            let info = program.info().map_err(|source| EbpfError::Program { name, source })?;
            out.push(ProgramRunStats {
                name: name.to_owned(),
                run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                run_count: info.run_count(),
            })
        }
        Ok(out)
    }
}

// By hand: aya's Array and PerCpuArray do not implement Debug.
impl std::fmt::Debug for TcpProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpProbe")
            .field("ebpf", &self.ebpf)
            .field("generation", &self.generation)
            .field("run_stats_enabled", &self.stats.is_some())
            .finish_non_exhaustive()
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, EbpfError> {
    ebpf.take_map(name).ok_or(EbpfError::Missing { kind: "map", name })
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK. Newer kernels charge the memory cgroup instead,
/// and the raise needs CAP_SYS_RESOURCE which a container may lack, so a failure is not an error.
fn raise_memlock() {
    let unlimited = rustix::process::Rlimit { current: None, maximum: None };
    // If loading then fails for lack of locked memory, aya's load error says so.
    let _ = rustix::process::setrlimit(rustix::process::Resource::Memlock, unlimited);
}
