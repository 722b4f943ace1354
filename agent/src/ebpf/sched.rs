//! `SchedProbe`: loads and attaches `ebpf/sched.bpf.c` (run-queue latency) and drains its per-cgroup
//! log2 histograms.

use std::os::fd::OwnedFd;

use aya::Ebpf;
use aya::maps::{Array, HashMap, MapData, PerCpuArray};

use super::raw::{self, HIST_KEY_LEN, HIST_VAL_LEN, RunqueueLatency};
use super::{EbpfError, ProgramRunStats, Tracepoints};

/// The compiled object, embedded so the agent binary carries its kernel programs.
static SCHED_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sched.bpf.o"));

const PROGRAMS: Tracepoints<3> =
    [("sched_wakeup", "sched_wakeup"), ("sched_wakeup_new", "sched_wakeup_new"), ("sched_switch", "sched_switch")];

type HistMap = HashMap<MapData, [u8; HIST_KEY_LEN], [u8; HIST_VAL_LEN]>;

/// The loaded and attached scheduler programs; detached and unloaded when dropped.
pub struct SchedProbe {
    // Owns the programs and their links: dropping it detaches them.
    ebpf: Ebpf,
    hists: HistMap,
    lost: PerCpuArray<MapData, u64>,
    generation_map: Array<MapData, u32>,
    generation: u32,
    stats: Option<OwnedFd>,
}

impl SchedProbe {
    /// Loads the programs into the kernel and attaches them. Needs root (or CAP_BPF + CAP_PERFMON).
    pub fn load() -> Result<SchedProbe, EbpfError> {
        let mut ebpf = super::load_and_attach(SCHED_OBJECT, &PROGRAMS)?;
        let hists = HistMap::try_from(super::take_map(&mut ebpf, "sched_hists")?)
            .map_err(|source| EbpfError::Map { name: "sched_hists", source })?;
        let lost = PerCpuArray::try_from(super::take_map(&mut ebpf, "sched_lost")?)
            .map_err(|source| EbpfError::Map { name: "sched_lost", source })?;
        let generation_map = Array::try_from(super::take_map(&mut ebpf, "sched_gen")?)
            .map_err(|source| EbpfError::Map { name: "sched_gen", source })?;
        Ok(SchedProbe { ebpf, hists, lost, generation_map, generation: 0, stats: None })
    }

    /// Loads and attaches the programs as [`SchedProbe::load`] does, then releases them again: whether each
    /// program loads in this kernel with this process's privileges, for `causely-agent check`.
    pub fn check() -> Vec<super::ProgramCheck> {
        super::check_probe(SchedProbe::load, SCHED_OBJECT, &PROGRAMS)
    }

    /// Returns the histograms accumulated since the previous call and removes them from the kernel map.
    pub fn read(&mut self) -> Result<Vec<RunqueueLatency>, EbpfError> {
        let old = super::flip_generation(&mut self.generation_map, &mut self.generation, "sched_gen")?;
        let keys = self
            .hists
            .keys()
            .filter(|key| key.as_ref().map_or(true, |k| raw::hist_key_generation(k) == old))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| EbpfError::Map { name: "sched_hists", source })?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(value) = super::take(&mut self.hists, &key, "sched_hists")? {
                out.push(raw::decode_hist(&key, &value));
            }
        }
        Ok(out)
    }

    /// Histogram updates the kernel side could not make since load (a full map), summed over CPUs.
    pub fn lost(&self) -> Result<u64, EbpfError> {
        raw::LOST_SLOTS
            .iter()
            .try_fold(0u64, |sum, slot| Ok(sum + super::per_cpu_sum(&self.lost, *slot, "sched_lost")?))
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
impl std::fmt::Debug for SchedProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedProbe")
            .field("ebpf", &self.ebpf)
            .field("generation", &self.generation)
            .field("run_stats_enabled", &self.stats.is_some())
            .finish_non_exhaustive()
    }
}
