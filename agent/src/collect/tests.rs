//! Collector tests: parsers on literal file contents, derivations on readings, the file adapter
//! over v1 and v2 fixture trees, and a smoke test over this host's own files.

use std::fs;
use std::path::Path;

use super::parse::*;
use super::*;
use crate::cgroup::Qos;

const UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const UID_US: &str = "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0";
const ID_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const ID_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

const CPU_STAT_V2: &str = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 200\n\
nr_throttled 50\nthrottled_usec 125000\nnr_bursts 0\nburst_usec 0\n";

#[test]
fn v2_cpu_stat_gives_usage_and_throttling() {
    assert_eq!(
        cpu_stat_v2(CPU_STAT_V2).unwrap(),
        CpuStat { usage_usec: 2_500_000, nr_periods: 200, nr_throttled: 50, throttled_usec: 125_000 }
    );
}

#[test]
fn v2_cpu_stat_without_the_cpu_controller_has_zero_throttling_but_needs_usage() {
    let stat = cpu_stat_v2("usage_usec 7\nuser_usec 5\nsystem_usec 2\n").unwrap();
    assert_eq!(stat, CpuStat { usage_usec: 7, ..CpuStat::default() });
    assert_eq!(cpu_stat_v2("user_usec 5\n"), Err(ParseError::MissingKey("usage_usec")));
}

#[test]
fn v1_cpu_stat_converts_throttled_nanoseconds_to_microseconds() {
    let text = "nr_periods 10\nnr_throttled 4\nthrottled_time 3000000\nnr_bursts 0\nburst_time 0\n";
    assert_eq!(cpu_stat_v1(text).unwrap(), Throttling { nr_periods: 10, nr_throttled: 4, throttled_usec: 3_000 });
}

#[test]
fn cpu_max_reads_a_quota_or_unlimited() {
    assert_eq!(cpu_max("50000 100000\n").unwrap(), Some(CpuLimit { quota_us: 50_000, period_us: 100_000 }));
    assert_eq!(cpu_max("max 100000\n").unwrap(), None);
    assert!((CpuLimit { quota_us: 150_000, period_us: 100_000 }.cores() - 1.5).abs() < 1e-12);
    assert!(cpu_max("").is_err());
    assert!(cpu_max("50000 0").is_err(), "a zero period would divide by zero later");
    assert_eq!(cpu_max("lots 100000"), Err(ParseError::NotANumber("lots".into())));
}

#[test]
fn v1_cfs_quota_of_minus_one_is_unlimited() {
    assert_eq!(cfs_quota("-1\n", "100000\n").unwrap(), None);
    assert_eq!(cfs_quota("25000\n", "100000\n").unwrap(), Some(CpuLimit { quota_us: 25_000, period_us: 100_000 }));
    assert!(cfs_quota("x", "100000").is_err());
}

#[test]
fn memory_limits_recognise_both_versions_of_unlimited() {
    assert_eq!(memory_max("max\n").unwrap(), None);
    assert_eq!(memory_max("268435456\n").unwrap(), Some(268_435_456));
    assert_eq!(memory_limit_v1("9223372036854771712\n").unwrap(), None);
    assert_eq!(memory_limit_v1("268435456\n").unwrap(), Some(268_435_456));
    assert_eq!(single_u64("123\n").unwrap(), 123);
    assert!(single_u64("12a").is_err());
}

#[test]
fn oom_kills_come_from_memory_events_or_oom_control_and_a_missing_key_is_an_error() {
    assert_eq!(oom_kills("low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n").unwrap(), 2);
    assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n").unwrap(), 5);
    assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), Err(ParseError::MissingKey("oom_kill")));
}

#[test]
fn proc_stat_reads_the_aggregate_cpu_line_only() {
    let text = "cpu  779171 5 146153 2058323 10726 1 4997 413 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1 2\n";
    let cpu = proc_stat(text).unwrap();
    assert_eq!(cpu.user, 779_171);
    assert_eq!(cpu.nice, 5);
    assert_eq!(cpu.steal, 413);
    assert_eq!(cpu.busy(), 779_171 + 5 + 146_153 + 1 + 4_997 + 413);
    assert_eq!(cpu.total(), cpu.busy() + 2_058_323 + 10_726);
    assert_eq!(proc_stat("cpu0 1 2 3 4\n"), Err(ParseError::MissingKey("cpu")));
    assert!(proc_stat("cpu 1 2\n").is_err());
}

#[test]
fn meminfo_gives_total_and_available_in_bytes() {
    let text = "MemTotal:       16000 kB\nMemFree:         1000 kB\nMemAvailable:    4000 kB\n";
    assert_eq!(meminfo(text).unwrap(), MemInfo { total_bytes: 16_000 * 1024, available_bytes: 4_000 * 1024 });
    assert_eq!(meminfo("MemTotal: 1 kB\n"), Err(ParseError::MissingKey("MemAvailable")));
}

#[test]
fn psi_reads_some_and_optional_full() {
    let text = "some avg10=12.13 avg60=10.78 avg300=10.97 total=1546638045\n\
full avg10=0.50 avg60=0.00 avg300=0.00 total=17\n";
    let psi = psi(text).unwrap();
    assert_eq!(psi.some.avg10, 12.13);
    assert_eq!(psi.some.total_usec, 1_546_638_045);
    assert_eq!(psi.full.unwrap().avg10, 0.5);
    let cpu_only = super::parse::psi("some avg10=1.00 avg60=2.00 avg300=3.00 total=4\n").unwrap();
    assert_eq!(cpu_only.full, None);
    assert!(super::parse::psi("some avg10=1.00\n").is_err());
    assert!(super::parse::psi("full avg10=1.00 avg60=2.00 avg300=3.00 total=4\n").is_err());
}

fn limited(usage_usec: u64, periods: u64, throttled: u64) -> ContainerStats {
    ContainerStats {
        cpu_usage_usec: Some(usage_usec),
        throttling: Some(Throttling { nr_periods: periods, nr_throttled: throttled, throttled_usec: 0 }),
        cpu_limit: Some(CpuLimit { quota_us: 50_000, period_us: 100_000 }),
        memory_usage_bytes: Some(450),
        memory_limit_bytes: Some(500),
        oom_kills: Some(1),
    }
}

#[test]
fn container_rates_relate_usage_to_the_limit_between_two_scrapes() {
    // 0.4 cores used over 10 s against a half-core limit: 80 % of the limit.
    let rates = container_rates(&limited(1_000_000, 100, 10), 0, &limited(5_000_000, 200, 40), 10_000);
    assert!((rates.cpu_cores.unwrap() - 0.4).abs() < 1e-9);
    assert!((rates.cpu_utilization.unwrap() - 0.8).abs() < 1e-9);
    assert!((rates.throttled_fraction.unwrap() - 0.3).abs() < 1e-9);
    assert!((rates.memory_utilization.unwrap() - 0.9).abs() < 1e-9);
    assert_eq!(rates.new_oom_kills, Some(0));
}

#[test]
fn container_rates_are_absent_when_a_counter_goes_backwards_or_time_does_not_advance() {
    let reset = container_rates(&limited(5_000_000, 200, 40), 0, &limited(1_000, 2, 0), 10_000);
    assert_eq!(reset.cpu_cores, None);
    assert_eq!(reset.throttled_fraction, None);
    let same_time = container_rates(&limited(1, 1, 0), 5, &limited(2, 2, 0), 5);
    assert_eq!(same_time.cpu_cores, None);
}

#[test]
fn an_unlimited_container_has_no_utilization_or_throttling_ratio() {
    let mut a = limited(0, 0, 0);
    a.cpu_limit = None;
    a.memory_limit_bytes = None;
    let mut b = limited(1_000_000, 0, 0);
    b.cpu_limit = None;
    b.memory_limit_bytes = None;
    let rates = container_rates(&a, 0, &b, 1_000);
    assert!((rates.cpu_cores.unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(rates.cpu_utilization, None);
    assert_eq!(rates.throttled_fraction, None);
    assert_eq!(rates.memory_utilization, None);
    // A limited container that did not run in the interval was not throttled.
    let idle = container_rates(&limited(0, 7, 1), 0, &limited(0, 7, 1), 1_000);
    assert_eq!(idle.throttled_fraction, Some(0.0));
}

#[test]
fn node_rates_give_busy_share_and_available_memory() {
    let cpu = |busy: u64, idle: u64| CpuTimes { user: busy, idle, ..CpuTimes::default() };
    let earlier = NodeStats { cpu: Some(cpu(100, 100)), ..NodeStats::default() };
    let psi_line = PsiLine { avg10: 25.0, avg60: 0.0, avg300: 0.0, total_usec: 0 };
    let later = NodeStats {
        cpu: Some(cpu(190, 110)),
        memory: Some(MemInfo { total_bytes: 1_000, available_bytes: 40 }),
        psi_memory: Some(Psi { some: psi_line, full: None }),
        ..NodeStats::default()
    };
    let rates = node_rates(&earlier, &later);
    assert!((rates.cpu_utilization.unwrap() - 0.9).abs() < 1e-9);
    assert!((rates.memory_available_ratio.unwrap() - 0.04).abs() < 1e-9);
    assert_eq!(rates.psi_memory_some_avg10, Some(25.0));
    assert_eq!(rates.psi_cpu_some_avg10, None);
}

fn write(root: &Path, relative: &str, contents: &str) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

fn proc_files(root: &Path) {
    write(root, "proc/stat", "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\n");
    write(root, "proc/meminfo", "MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 300 kB\n");
    write(root, "proc/pressure/cpu", "some avg10=21.50 avg60=1.00 avg300=1.00 total=1000000\n");
    write(
        root,
        "proc/pressure/memory",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    );
}

/// A v2 (systemd driver) tree: container A complete, container B without `memory.events`, a
/// conmon scope and a system service that must not be collected.
fn v2_tree(root: &Path) {
    write(root, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
    let pod = format!("sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_US}.slice");
    let a = format!("{pod}/cri-containerd-{ID_A}.scope");
    write(root, &format!("{a}/cpu.stat"), CPU_STAT_V2);
    write(root, &format!("{a}/cpu.max"), "50000 100000\n");
    write(root, &format!("{a}/memory.current"), "104857600\n");
    write(root, &format!("{a}/memory.max"), "209715200\n");
    write(root, &format!("{a}/memory.events"), "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n");
    let b = format!("{pod}/cri-containerd-{ID_B}.scope");
    write(root, &format!("{b}/cpu.stat"), "usage_usec 10\n");
    write(root, &format!("{b}/cpu.max"), "max 100000\n");
    write(root, &format!("{b}/memory.current"), "not a number\n");
    write(root, &format!("{b}/memory.max"), "max\n");
    write(root, &format!("{pod}/crio-conmon-{ID_B}.scope/cpu.stat"), "usage_usec 1\n");
    write(root, "sys/fs/cgroup/system.slice/containerd.service/cpu.stat", "usage_usec 1\n");
    proc_files(root);
}

/// A v1 hybrid tree (cgroupfs driver), shaped like this host: one mount per controller plus a
/// controller-less cgroup2 at `unified`.
fn v1_tree(root: &Path) {
    write(root, "sys/fs/cgroup/unified/cgroup.controllers", "");
    let rel = format!("kubepods/pod{UID}/{ID_A}");
    write(root, &format!("sys/fs/cgroup/cpuacct/{rel}/cpuacct.usage"), "3000000000\n");
    write(
        root,
        &format!("sys/fs/cgroup/cpu/{rel}/cpu.stat"),
        "nr_periods 20\nnr_throttled 5\nthrottled_time 4000000\n",
    );
    write(root, &format!("sys/fs/cgroup/cpu/{rel}/cpu.cfs_quota_us"), "200000\n");
    write(root, &format!("sys/fs/cgroup/cpu/{rel}/cpu.cfs_period_us"), "100000\n");
    write(root, &format!("sys/fs/cgroup/memory/{rel}/memory.usage_in_bytes"), "1048576\n");
    write(root, &format!("sys/fs/cgroup/memory/{rel}/memory.limit_in_bytes"), "9223372036854771712\n");
    write(
        root,
        &format!("sys/fs/cgroup/memory/{rel}/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
    );
    write(root, "sys/fs/cgroup/memory/user.slice/memory.usage_in_bytes", "1\n");
    proc_files(root);
}

fn collector(root: &Path) -> Collector {
    Collector::new(CollectorConfig { host_root: root.to_path_buf(), node: "n1".into() }).unwrap()
}

#[test]
fn a_v2_tree_is_collected_per_container_with_errors_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    v2_tree(dir.path());
    let mut collector = collector(dir.path());
    assert!(matches!(collector.layout(), CgroupLayout::V2 { .. }));
    assert!(collector.layout().cgroup2_mount().is_some());
    let readings = collector.scrape_containers();
    let ids: Vec<_> = readings.iter().map(|r| r.pod.container_id.clone().unwrap()).collect();
    assert_eq!(ids, [ID_A, ID_B], "conmon and system services are not containers");

    let a = &readings[0];
    assert_eq!(a.pod.pod_uid, UID);
    assert_eq!(a.pod.qos, Qos::Burstable);
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    assert_eq!(a.stats.cpu_usage_usec, Some(2_500_000));
    assert_eq!(a.stats.throttling.unwrap().nr_throttled, 50);
    assert_eq!(a.stats.cpu_limit, Some(CpuLimit { quota_us: 50_000, period_us: 100_000 }));
    assert_eq!(a.stats.memory_usage_bytes, Some(104_857_600));
    assert_eq!(a.stats.memory_limit_bytes, Some(209_715_200));
    assert_eq!(a.stats.oom_kills, Some(1));

    let b = &readings[1];
    assert_eq!(b.stats.cpu_usage_usec, Some(10));
    assert_eq!(b.stats.cpu_limit, None);
    assert_eq!(b.stats.memory_usage_bytes, None);
    assert_eq!(b.stats.oom_kills, None);
    assert_eq!(b.errors.len(), 2, "{:?}", b.errors);
    assert!(b.errors.iter().any(|e| matches!(e, CollectError::Parse { file, .. } if file.ends_with("memory.current"))));
    assert!(b.errors.iter().any(|e| matches!(e, CollectError::Missing { file } if file.ends_with("memory.events"))));
    assert_eq!(collector.error_counts(), ErrorCounts { missing: 1, io: 0, parse: 1 });

    let samples = container_samples("n1", a, 42);
    let usage = samples.iter().find(|s| s.metric == "container_cpu_usage_seconds_total").unwrap();
    assert_eq!(usage.value, 2.5);
    assert_eq!(usage.time_ms, 42);
    assert!(usage.labels.contains(&("container_id".into(), ID_A.into())));
    assert!(usage.labels.contains(&("pod_uid".into(), UID.into())));
    assert_eq!(samples.len(), 8);
    // A field that could not be read produces no sample rather than a zero.
    assert!(!container_samples("n1", b, 42).iter().any(|s| s.metric == "container_memory_usage_bytes"));
}

#[test]
fn a_v1_hybrid_tree_is_collected_from_each_controller() {
    let dir = tempfile::tempdir().unwrap();
    v1_tree(dir.path());
    let mut collector = collector(dir.path());
    let CgroupLayout::V1 { unified, .. } = collector.layout() else { panic!("expected v1: {:?}", collector.layout()) };
    assert!(unified.is_some());
    let readings = collector.scrape_containers();
    assert_eq!(readings.len(), 1);
    let a = &readings[0];
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    assert_eq!(a.pod.qos, Qos::Guaranteed);
    assert_eq!(a.stats.cpu_usage_usec, Some(3_000_000));
    assert_eq!(a.stats.throttling, Some(Throttling { nr_periods: 20, nr_throttled: 5, throttled_usec: 4_000 }));
    assert_eq!(a.stats.cpu_limit.map(CpuLimit::cores), Some(2.0));
    assert_eq!(a.stats.memory_usage_bytes, Some(1_048_576));
    assert_eq!(a.stats.memory_limit_bytes, None, "the v1 sentinel means unlimited");
    assert_eq!(a.stats.oom_kills, Some(3));
}

#[test]
fn a_container_whose_cgroup_vanished_reads_as_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    v1_tree(dir.path());
    let mut collector = collector(dir.path());
    let (path, pod) = collector.discover().remove(0);
    fs::remove_dir_all(dir.path().join("sys/fs/cgroup/memory").join(path.trim_start_matches('/'))).unwrap();
    let reading = collector.read_container(path, pod);
    assert_eq!(reading.stats.memory_usage_bytes, None);
    assert_eq!(reading.stats.cpu_usage_usec, Some(3_000_000));
    assert_eq!(reading.errors.len(), 3);
    assert!(reading.errors.iter().all(|e| matches!(e, CollectError::Missing { .. })));
}

#[test]
fn node_files_are_read_and_absent_psi_is_none_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    v2_tree(dir.path());
    let mut collector = collector(dir.path());
    let node = collector.read_node();
    assert!(node.errors.is_empty(), "{:?}", node.errors);
    assert_eq!(node.stats.cpu.unwrap().busy(), 150);
    assert_eq!(node.stats.memory.unwrap().available_bytes, 300 * 1024);
    assert_eq!(node.stats.psi_cpu.unwrap().some.avg10, 21.5);
    assert!(node.stats.psi_memory.unwrap().full.is_some());
    assert_eq!(node.stats.psi_io, None);
    let samples = node_samples("n1", &node.stats, 7);
    assert_eq!(samples.iter().filter(|s| s.metric == "node_cpu_seconds_total").count(), 8);
    let pressure: Vec<_> = samples.iter().filter(|s| s.metric == "node_pressure_avg10_percent").collect();
    assert_eq!(pressure.len(), 3, "cpu some, memory some and full");

    fs::write(dir.path().join("proc/meminfo"), "garbage").unwrap();
    let broken = collector.read_node();
    assert_eq!(broken.stats.memory, None);
    assert_eq!(broken.errors.len(), 1);
    assert_eq!(collector.error_counts().parse, 1);
    let errors = error_samples("n1", &collector.error_counts(), 7);
    assert!(errors.iter().any(|s| s.labels.contains(&("kind".into(), "parse".into())) && s.value == 1.0));
}

#[test]
fn a_root_without_cgroups_is_refused_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Collector::new(CollectorConfig { host_root: dir.path().into(), node: "n1".into() }).unwrap_err();
    assert!(matches!(err, CollectError::NoCgroups(_)), "{err}");
}

#[test]
fn this_hosts_own_proc_and_cgroup_files_are_collected_without_failure() {
    let mut collector = Collector::new(CollectorConfig::default()).expect("this host has a cgroup hierarchy");
    let node = collector.read_node();
    assert!(node.errors.is_empty(), "{:?}", node.errors);
    let cpu = node.stats.cpu.expect("/proc/stat");
    assert!(cpu.total() > 0);
    let memory = node.stats.memory.expect("/proc/meminfo");
    assert!(memory.available_bytes <= memory.total_bytes);
    if Path::new("/proc/pressure/cpu").exists() {
        assert!(node.stats.psi_cpu.is_some());
    }
    // There may be no pods on this host; the walk must still finish and every reading be sane.
    for reading in collector.scrape_containers() {
        assert!(reading.pod.container_id.is_some());
    }
    // Root-level cgroup files exist on every layout: read them through the same parsers.
    match collector.layout() {
        CgroupLayout::V2 { mount } => {
            let _ = fs::read_to_string(mount.join("cgroup.controllers")).expect("cgroup2 root");
        }
        CgroupLayout::V1 { cpu, memory, .. } => {
            cpu_stat_v1(&fs::read_to_string(cpu.join("cpu.stat")).unwrap()).expect("v1 cpu.stat parses");
            single_u64(&fs::read_to_string(memory.join("memory.usage_in_bytes")).unwrap()).expect("usage parses");
            oom_kills(&fs::read_to_string(memory.join("memory.oom_control")).unwrap()).expect("oom_kill key");
        }
    }
}
