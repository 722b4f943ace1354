//! Component test of the run-queue latency program in the running kernel (needs root): the tasks of a
//! cgroup the test creates must show up in that cgroup's histogram.

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use causely_agent::ebpf::{RunqueueLatency, SchedProbe};

/// Where this host mounts cgroup2: /sys/fs/cgroup/unified on a hybrid host, else /sys/fs/cgroup.
fn cgroup2_root() -> PathBuf {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.controllers").exists())
        .expect("no cgroup2 mount found")
}

/// A cgroup2 directory removed again when the test ends (it must be empty by then).
struct TempCgroup(PathBuf);

impl Drop for TempCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn the_tasks_of_a_cgroup_land_in_its_run_queue_histogram() {
    let mut probe = SchedProbe::load()
        .unwrap_or_else(|e| panic!("cannot load the eBPF programs; this test must run as root (CI runs as root): {e}"));
    probe.enable_run_stats().unwrap();
    let dir = TempCgroup(cgroup2_root().join(format!("causely-sched-test-{}", std::process::id())));
    std::fs::create_dir(&dir.0).unwrap();
    let cgroup_id = std::fs::metadata(&dir.0).unwrap().ino();

    // The shell moves itself into the cgroup, then forks 300 short-lived children there: every one is a
    // wakeup (new task) followed by a switch to it.
    let procs = Path::new(&dir.0).join("cgroup.procs");
    let script = format!("echo $$ > {} && for i in $(seq 300); do /bin/true; done", procs.display());
    let status = std::process::Command::new("sh").args(["-c", &script]).status().unwrap();
    assert!(status.success());

    let mut seen: Vec<RunqueueLatency> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.iter().map(|h| h.count).sum::<u64>() < 300 && Instant::now() < deadline {
        seen.extend(probe.read().unwrap().into_iter().filter(|h| h.cgroup_id == cgroup_id));
        std::thread::sleep(Duration::from_millis(50));
    }
    let count: u64 = seen.iter().map(|h| h.count).sum();
    let bucketed: u64 = seen.iter().flat_map(|h| h.buckets).sum();
    assert!(count >= 300, "cgroup {cgroup_id}: {seen:?}");
    assert_eq!(bucketed, count, "every wait lands in exactly one bucket");
    assert!(seen.iter().all(|h| h.sum_ns > 0));
    // Slot i holds waits in [2^i, 2^(i+1)) us (slot 0 from 0), so the total wait lies between the
    // sums of the lower and of the upper bounds of the slots the waits landed in.
    for h in seen.iter().filter(|h| h.count > 0) {
        let total_us = h.sum_ns as f64 / 1_000.0;
        let bounds =
            |edge: fn(usize) -> f64| h.buckets.iter().enumerate().map(|(i, &n)| n as f64 * edge(i)).sum::<f64>();
        let (lower, upper) =
            (bounds(|i| if i == 0 { 0.0 } else { (1u64 << i) as f64 }), bounds(|i| (1u64 << (i + 1)) as f64));
        assert!(lower <= total_us && total_us < upper, "{total_us} us outside [{lower}, {upper}): {:?}", h.buckets);
    }
    assert_eq!(probe.lost().unwrap(), 0);
    let stats = probe.run_stats().unwrap();
    assert!(stats.iter().any(|s| s.name == "sched_switch" && s.run_count > 0), "{stats:?}");
}
