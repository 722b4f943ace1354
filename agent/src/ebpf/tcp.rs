//! `TcpProbe`: loads and attaches `ebpf/tcp.bpf.c` (connection lifecycle and retransmits) and drains its
//! per-(cgroup, addresses, direction) counters.

use std::os::fd::OwnedFd;

use aya::Ebpf;
use aya::maps::{Array, HashMap, MapData, PerCpuArray};

use super::raw::{self, AGG_KEY_LEN, AGG_VAL_LEN, ConnectionCounters};
use super::{EbpfError, ProgramRunStats, Tracepoints};

/// The compiled object, embedded so the agent binary carries its kernel programs.
static TCP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcp.bpf.o"));

/// (program, BTF tracepoint) pairs. tp_btf rather than classic tracepoints: no tracefs mount needed, and the
/// arguments are typed kernel pointers.
const PROGRAMS: Tracepoints<2> = [("tcp_set_state", "inet_sock_set_state"), ("tcp_retransmit", "tcp_retransmit_skb")];

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
        let mut ebpf = super::load_and_attach(TCP_OBJECT, &PROGRAMS)?;
        let aggs = AggMap::try_from(super::take_map(&mut ebpf, "tcp_aggs")?)
            .map_err(|source| EbpfError::Map { name: "tcp_aggs", source })?;
        let lost = PerCpuArray::try_from(super::take_map(&mut ebpf, "tcp_lost")?)
            .map_err(|source| EbpfError::Map { name: "tcp_lost", source })?;
        let generation_map = Array::try_from(super::take_map(&mut ebpf, "tcp_gen")?)
            .map_err(|source| EbpfError::Map { name: "tcp_gen", source })?;
        Ok(TcpProbe { ebpf, aggs, lost, generation_map, generation: 0, stats: None })
    }

    /// Loads and attaches the programs as [`TcpProbe::load`] does, then releases them again: whether each
    /// program loads in this kernel with this process's privileges, for `causely-agent check`.
    pub fn check() -> Vec<super::ProgramCheck> {
        super::check_probe(TcpProbe::load, TCP_OBJECT, &PROGRAMS)
    }

    /// Returns the counters accumulated since the previous call and removes them from the kernel map.
    ///
    /// The kernel writes into one of two key generations; this flips the generation, then drains the old
    /// one, so increments made while draining land in the next interval instead of being lost. Only an
    /// event already in flight on another CPU at the flip can still touch a drained key.
    pub fn read(&mut self) -> Result<Vec<ConnectionCounters>, EbpfError> {
        let old = super::flip_generation(&mut self.generation_map, &mut self.generation, "tcp_gen")?;
        let keys = self
            .aggs
            .keys()
            .filter(|key| key.as_ref().map_or(true, |k| u32::from(raw::key_generation(k)) == old))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| EbpfError::Map { name: "tcp_aggs", source })?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(value) = super::take(&mut self.aggs, &key, "tcp_aggs")? else { continue };
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
        super::per_cpu_sum(&self.lost, slot, "tcp_lost")
    }

    /// Turns on the kernel's run-time accounting of BPF programs for as long as this probe lives.
    pub fn enable_run_stats(&mut self) -> Result<(), EbpfError> {
        super::enable_run_stats(&mut self.stats)
    }

    /// Kernel run time and invocation count of each program, from the kernel's program info.
    pub fn run_stats(&self) -> Result<Vec<ProgramRunStats>, EbpfError> {
        super::run_stats(&self.ebpf, &PROGRAMS)
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
