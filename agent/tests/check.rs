//! Component test of `causely-agent check` on this machine (needs root, as CI runs): the real kernel's
//! BTF and eBPF, the real cgroup hierarchy and /proc. Run inside cgroups named as a cgroupfs-driver
//! kubelet names a container's, it must pass everything and name that pod and container; run outside
//! any pod, it must fail the mapping of its own container and exit 1.

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use causely_agent::collect::CgroupLayout;
use causely_model::node_check::TERMINATION_MESSAGE_LIMIT;
use causely_model::{NodeCheckReport, NodeCheckStatus};

const UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const ID: &str = "4c2ac3e1b0a1f7d84e6b1f4e2e9b3f7a0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a";
/// Every program of the agent (agent/src/ebpf/tcp.rs and sched.rs).
const PROGRAMS: [&str; 5] = ["tcp_set_state", "tcp_retransmit", "sched_wakeup", "sched_wakeup_new", "sched_switch"];

/// A kubelet-named container cgroup in every hierarchy the agent reads, below a prefix of its own
/// (the real node's kubelet on this machine owns /kubepods and cleans up pod cgroups it does not
/// know); removed, deepest first, when dropped.
struct FakeContainer {
    dirs: Vec<PathBuf>,
    base: Vec<PathBuf>,
}

impl FakeContainer {
    fn new() -> FakeContainer {
        let prefix = format!("causely-check-test-{}", std::process::id());
        let relative = format!("{prefix}/kubepods/besteffort/pod{UID}/{ID}");
        let mut mounts = match CgroupLayout::detect(Path::new("/")).unwrap() {
            CgroupLayout::V2 { mount } => vec![mount],
            CgroupLayout::V1 { cpu, cpuacct, memory, unified } => {
                [Some(cpu), Some(cpuacct), Some(memory), unified].into_iter().flatten().collect()
            }
        };
        mounts.dedup();
        let dirs: Vec<PathBuf> = mounts.iter().map(|m| m.join(&relative)).collect();
        for dir in &dirs {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("{}: {e} (this test must run as root)", dir.display()));
        }
        FakeContainer { dirs, base: mounts.iter().map(|m| m.join(&prefix)).collect() }
    }

    /// `sh` that moves itself into the container's cgroups, then becomes `causely-agent check`.
    fn run_check(&self, args: &[&str]) -> Output {
        let joins: String = self.dirs.iter().map(|d| format!("echo $$ > '{}/cgroup.procs' && ", d.display())).collect();
        let script = format!("{joins}exec \"$0\" check \"$@\"");
        agent(Command::new("sh").args(["-c", &script, env!("CARGO_BIN_EXE_causely-agent")]).args(args))
    }
}

impl Drop for FakeContainer {
    fn drop(&mut self) {
        for (dir, base) in self.dirs.iter().zip(&self.base) {
            let mut at = dir.as_path();
            while at.starts_with(base) {
                let _ = std::fs::remove_dir(at);
                at = at.parent().unwrap();
            }
        }
    }
}

/// Runs with the DaemonSet's environment for the normal run, which `check` must ignore.
fn agent(command: &mut Command) -> Output {
    command
        .env("NODE_NAME", "real-node-1")
        .env("CAUSELY_MEDIATOR_URL", "http://causely-mediator.causely.svc:8080")
        .env("CAUSELY_VICTORIA_METRICS_URL", "http://causely-victoria-metrics.causely.svc:8428")
        .env("CAUSELY_HOST_ROOT", "/")
        .output()
        .unwrap()
}

fn report(out: &Output) -> NodeCheckReport {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("stdout is not a report ({e}):\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr))
    })
}

fn status(report: &NodeCheckReport, id: &str) -> NodeCheckStatus {
    report.checks.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no check {id}: {report:#?}")).status
}

#[test]
fn inside_a_kubelet_named_container_cgroup_every_check_passes_and_the_report_goes_to_the_termination_log() {
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("termination-log");
    std::fs::write(&log, "").unwrap();
    let container = FakeContainer::new();
    let out = container.run_check(&["--termination-log", log.to_str().unwrap()]);
    let report = report(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#?}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(report.checks.iter().all(|c| c.status != NodeCheckStatus::Error), "{report:#?}");

    assert_eq!(status(&report, "btf"), NodeCheckStatus::Ok);
    for program in PROGRAMS {
        let check = report.checks.iter().find(|c| c.id == format!("ebpf/{program}")).unwrap();
        assert_eq!(check.status, NodeCheckStatus::Ok, "{check:?}");
        assert!(check.description.starts_with(&format!("eBPF program {program} loads and attaches")), "{check:?}");
    }
    let own = report.checks.iter().find(|c| c.id == "cgroup-self").unwrap();
    assert!(own.description.contains(&format!("pod {UID}, container {} (besteffort QoS", &ID[..12])), "{own:?}");
    assert_eq!(status(&report, "cgroup-counters"), NodeCheckStatus::Ok, "the collector read the container's files");
    assert_eq!(status(&report, "proc"), NodeCheckStatus::Ok);
    let layout = report.checks.iter().find(|c| c.id == "cgroup-layout").unwrap();
    match CgroupLayout::detect(Path::new("/")).unwrap() {
        CgroupLayout::V2 { .. } => assert!(layout.description.starts_with("cgroup v2"), "{layout:?}"),
        CgroupLayout::V1 { unified: Some(_), .. } => {
            assert!(layout.description.starts_with("cgroup hybrid"), "{layout:?}");
            assert_eq!(status(&report, "cgroup-ebpf"), NodeCheckStatus::Ok);
        }
        CgroupLayout::V1 { unified: None, .. } => assert_eq!(layout.status, NodeCheckStatus::Warning),
    }
    assert_eq!(report.kernel, std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().trim());

    // The termination message is the same document, within what the kubelet keeps.
    let message = std::fs::read_to_string(&log).unwrap();
    assert!(message.len() <= TERMINATION_MESSAGE_LIMIT, "{} bytes", message.len());
    assert_eq!(serde_json::from_str::<NodeCheckReport>(&message).unwrap(), report);
}

#[test]
fn outside_any_pod_the_check_fails_to_map_its_own_container_and_exits_1() {
    let scratch = tempfile::tempdir().unwrap();
    let absent = scratch.path().join("termination-log");
    let out =
        agent(Command::new(env!("CARGO_BIN_EXE_causely-agent")).args(["check", "--termination-log"]).arg(&absent));
    let report = report(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#?}");
    let own = report.checks.iter().find(|c| c.id == "cgroup-self").unwrap();
    assert_eq!(own.status, NodeCheckStatus::Error);
    assert!(
        own.description.starts_with("cannot map its own container: /proc/self/cgroup names no kubelet cgroup"),
        "{own:?}"
    );
    // What does not depend on the pod still passes here.
    assert_eq!(status(&report, "btf"), NodeCheckStatus::Ok);
    assert!(PROGRAMS.iter().all(|p| status(&report, &format!("ebpf/{p}")) == NodeCheckStatus::Ok), "{report:#?}");
    assert!(!absent.exists(), "a termination log is only written where the kubelet made one");
}

#[test]
fn check_refuses_the_runs_flags_as_a_usage_error() {
    let out = agent(Command::new(env!("CARGO_BIN_EXE_causely-agent")).args(["check", "--mediator-url", "http://m"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
