//! The judgements of `check` over literal facts: the cgroup files of a cgroupfs and a systemd-driver
//! kubelet, a missing BTF, a refusing kernel, and a report too long for a termination message.

use causely_model::NodeCheckStatus::{Error, Ok as Passed, Warning};

use super::*;
use crate::cgroup::Qos;

const UID: &str = "d46ccb44-9ffb-4205-b457-49a8deda3077";
const ID: &str = "bc699ebadff32ad7c1b62c2c6866ac923892851872a8b40f3db41fd6393f7ffd";

/// `/proc/self/cgroup` of a container of a cgroupfs-driver kubelet on a hybrid host (runc puts it in
/// the v1 controllers and in the unified hierarchy at the same path), as this repository's real node
/// writes it.
fn cgroupfs_hybrid() -> String {
    let path = format!("/kubepods/besteffort/pod{UID}/{ID}");
    format!("9:name=systemd:{path}\n4:memory:{path}\n2:cpuacct:{path}\n1:cpu:{path}\n0::{path}\n")
}

/// A hybrid host's layout as the agent's pod sees it under `/host`.
fn hybrid() -> CgroupLayout {
    CgroupLayout::V1 {
        cpu: "/host/sys/fs/cgroup/cpu".into(),
        cpuacct: "/host/sys/fs/cgroup/cpuacct".into(),
        memory: "/host/sys/fs/cgroup/memory".into(),
        unified: Some("/host/sys/fs/cgroup/unified".into()),
    }
}

fn program(name: &'static str, tracepoint: &'static str, error: Option<&str>) -> ProgramCheck {
    ProgramCheck { program: name, tracepoint, error: error.map(str::to_owned) }
}

/// A node where everything works, seen from the agent's pod.
fn healthy() -> Inputs {
    Inputs {
        host_root: "/host".into(),
        kernel: "6.1.0-18-amd64".into(),
        btf: Btf::Present { bytes: 5_482_429 },
        programs: vec![
            program("tcp_set_state", "inet_sock_set_state", None),
            program("tcp_retransmit", "tcp_retransmit_skb", None),
            program("sched_switch", "sched_switch", None),
        ],
        layout: Ok(hybrid()),
        own: OwnCgroup {
            source: "/host/proc/self/cgroup".into(),
            contents: Ok(cgroupfs_hybrid()),
            by_inode: None,
            counter_errors: Some(vec![]),
        },
        node: NodeFiles {
            cpu: true,
            memory: true,
            pressure: vec!["cpu".into(), "memory".into(), "io".into()],
            errors: vec![],
        },
    }
}

fn find<'a>(report: &'a NodeCheckReport, id: &str) -> &'a NodeCheck {
    report.checks.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no check {id} in {report:#?}"))
}

#[test]
fn a_healthy_hybrid_node_passes_every_check_and_names_what_it_found() {
    let report = evaluate(&healthy());
    assert!(report.passed(), "{report:#?}");
    assert!(report.checks.iter().all(|c| c.status == Passed), "{report:#?}");
    let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "btf",
            "ebpf/tcp_set_state",
            "ebpf/tcp_retransmit",
            "ebpf/sched_switch",
            "cgroup-layout",
            "cgroup-self",
            "cgroup-counters",
            "cgroup-ebpf",
            "proc",
            "pressure"
        ]
    );
    assert_eq!(find(&report, "btf").description, "kernel BTF is present (/sys/kernel/btf/vmlinux, 5353 KiB)");
    assert_eq!(
        find(&report, "ebpf/tcp_set_state").description,
        "eBPF program tcp_set_state loads and attaches (tp_btf/inet_sock_set_state)"
    );
    // Host paths as the host names them, not under the pod's /host.
    assert_eq!(
        find(&report, "cgroup-layout").description,
        "cgroup hybrid: v1 controllers (memory at /sys/fs/cgroup/memory), cgroup2 at /sys/fs/cgroup/unified"
    );
    assert_eq!(
        find(&report, "cgroup-self").description,
        format!(
            "maps its own container: pod {UID}, container bc699ebadff3 (besteffort QoS, cgroup /kubepods/besteffort/pod{UID}/{ID})"
        )
    );
    assert_eq!(find(&report, "proc").description, "reads the node's CPU and memory (/proc/stat, /proc/meminfo)");
    assert_eq!(report.kernel, "6.1.0-18-amd64");
}

#[test]
fn a_systemd_driver_container_in_a_cgroup_namespace_is_found_by_its_inode() {
    let uid_us = UID.replace('-', "_");
    let path = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_us}.slice/cri-containerd-{ID}.scope"
    );
    let mut inputs = healthy();
    inputs.layout = Ok(CgroupLayout::V2 { mount: "/host/sys/fs/cgroup".into() });
    // A private cgroup namespace shows the container only its own root.
    inputs.own.contents = Ok("0::/\n".into());
    inputs.own.by_inode = Some(path.clone());
    let report = evaluate(&inputs);
    assert!(report.checks.iter().all(|c| c.status == Passed), "{report:#?}");
    assert_eq!(find(&report, "cgroup-layout").description, "cgroup v2: the unified hierarchy at /sys/fs/cgroup");
    assert!(
        find(&report, "cgroup-self")
            .description
            .contains(&format!("pod {UID}, container bc699ebadff3 (burstable QoS, cgroup {path})"))
    );
    assert_eq!(
        own_container("0::/\n", Some(&path)),
        Some((path.clone(), PodContainer { pod_uid: UID.into(), container_id: Some(ID.into()), qos: Qos::Burstable }))
    );
}

#[test]
fn a_process_outside_any_pod_cannot_map_its_container_and_fails() {
    let mut inputs = healthy();
    inputs.host_root = "/".into();
    inputs.own = OwnCgroup {
        source: "/proc/self/cgroup".into(),
        contents: Ok(
            "4:memory:/user.slice/user-0.slice/session-3.scope\n0::/user.slice/user-0.slice/session-3.scope\n".into(),
        ),
        by_inode: None,
        counter_errors: None,
    };
    let report = evaluate(&inputs);
    assert!(!report.passed());
    let own = find(&report, "cgroup-self");
    assert_eq!(own.status, Error);
    assert_eq!(
        own.description,
        "cannot map its own container: /proc/self/cgroup names no kubelet cgroup (its path: /user.slice/user-0.slice/session-3.scope)"
    );
    // Nothing to read counters of, nor to attribute eBPF events to.
    assert!(report.checks.iter().all(|c| c.id != "cgroup-counters" && c.id != "cgroup-ebpf"));
}

#[test]
fn a_missing_btf_fails_and_explains_the_programs_that_fail_with_it() {
    let mut inputs = healthy();
    inputs.btf = Btf::Missing;
    inputs.programs = vec![program(
        "tcp_set_state",
        "inet_sock_set_state",
        Some("error parsing BTF: No such file or directory (os error 2)"),
    )];
    let report = evaluate(&inputs);
    assert!(!report.passed());
    let btf = find(&report, "btf");
    assert_eq!(
        (btf.status, btf.description.as_str()),
        (Error, "kernel BTF is missing: /sys/kernel/btf/vmlinux does not exist")
    );
    assert!(btf.hint.as_deref().is_some_and(|h| h.contains("CONFIG_DEBUG_INFO_BTF")), "{btf:?}");
    let tcp = find(&report, "ebpf/tcp_set_state");
    assert_eq!(tcp.status, Error);
    assert!(tcp.hint.as_deref().is_some_and(|h| h.contains("see the btf check")), "{tcp:?}");
}

#[test]
fn a_verifier_refusal_names_the_program_and_the_verifiers_last_words() {
    let refusal = "the BPF_PROG_LOAD syscall returned Permission denied (os error 13). Verifier output: \
                   0: R1=ctx() R10=fp0\n; int BPF_PROG(tcp_set_state, ...)\n0: (79) r6 = *(u64 *)(r1 +0)\n\
                   1: (61) r2 = *(u32 *)(r6 +16)\nR6 invalid mem access 'scalar'\n\
                   processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n";
    let mut inputs = healthy();
    inputs.programs[1] = program("tcp_retransmit", "tcp_retransmit_skb", Some(refusal));
    let report = evaluate(&inputs);
    assert!(!report.passed());
    let failed = find(&report, "ebpf/tcp_retransmit");
    assert_eq!(failed.status, Error);
    assert_eq!(
        failed.description,
        "eBPF program tcp_retransmit does not load or attach (tp_btf/tcp_retransmit_skb): the BPF_PROG_LOAD syscall \
         returned Permission denied (os error 13); verifier: 1: (61) r2 = *(u32 *)(r6 +16) | R6 invalid mem access \
         'scalar' | processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0"
    );
    assert!(failed.hint.as_deref().is_some_and(|h| h.contains("verifier refused")), "{failed:?}");
    // The other programs still pass: each is judged on its own.
    assert_eq!(find(&report, "ebpf/tcp_set_state").status, Passed);
}

#[test]
fn a_kernel_refusing_the_privileges_points_at_the_capabilities() {
    let mut inputs = healthy();
    inputs.programs[0] = program(
        "tcp_set_state",
        "inet_sock_set_state",
        Some("map tcp_aggs: failed to create map: Operation not permitted (os error 1)"),
    );
    let check = evaluate(&inputs).checks.into_iter().find(|c| c.id == "ebpf/tcp_set_state").expect("the check");
    assert_eq!(check.status, Error);
    assert!(check.hint.as_deref().is_some_and(|h| h.contains("CAP_BPF and CAP_PERFMON")), "{check:?}");
}

#[test]
fn pure_cgroup_v1_and_missing_psi_are_warnings_not_failures() {
    let mut inputs = healthy();
    inputs.layout = Ok(CgroupLayout::V1 {
        cpu: "/host/sys/fs/cgroup/cpu,cpuacct".into(),
        cpuacct: "/host/sys/fs/cgroup/cpu,cpuacct".into(),
        memory: "/host/sys/fs/cgroup/memory".into(),
        unified: None,
    });
    inputs.node.pressure.clear();
    let report = evaluate(&inputs);
    assert!(report.passed(), "{report:#?}");
    assert_eq!(find(&report, "cgroup-layout").status, Warning);
    assert_eq!(find(&report, "pressure").status, Warning);
    assert!(report.checks.iter().all(|c| c.id != "cgroup-ebpf"), "the layout warning covers attribution");
}

#[test]
fn a_container_only_in_v1_cannot_have_its_ebpf_events_attributed() {
    let mut inputs = healthy();
    let path = format!("/kubepods/besteffort/pod{UID}/{ID}");
    inputs.own.contents = Ok(format!("4:memory:{path}\n0::/\n"));
    let report = evaluate(&inputs);
    assert_eq!(find(&report, "cgroup-self").status, Passed);
    let ebpf = find(&report, "cgroup-ebpf");
    assert_eq!(ebpf.status, Warning, "{ebpf:?}");
    assert!(ebpf.description.contains("/sys/fs/cgroup/unified"), "{ebpf:?}");
}

#[test]
fn unreadable_host_files_fail_naming_each_file() {
    let mut inputs = healthy();
    inputs.own.counter_errors = Some(vec![format!(
        "/host/sys/fs/cgroup/memory/kubepods/besteffort/pod{UID}/{ID}/memory.usage_in_bytes: no such file"
    )]);
    inputs.node = NodeFiles {
        cpu: false,
        memory: true,
        pressure: vec![],
        errors: vec!["/host/proc/stat: Permission denied (os error 13)".into()],
    };
    inputs.layout =
        Err("no cgroup hierarchy under /host/sys/fs/cgroup (neither cgroup.controllers nor a v1 memory controller)"
            .into());
    let report = evaluate(&inputs);
    assert!(!report.passed());
    assert_eq!(
        find(&report, "proc").description,
        "cannot read the node's CPU and memory: /host/proc/stat: Permission denied (os error 13)"
    );
    assert!(find(&report, "cgroup-counters").description.contains("memory.usage_in_bytes: no such file"));
    let layout = find(&report, "cgroup-layout");
    assert_eq!(layout.status, Error);
    assert!(layout.hint.as_deref().is_some_and(|h| h.contains("/host/sys/fs/cgroup")), "{layout:?}");
}

#[test]
fn an_unreadable_cgroup_file_of_its_own_fails_the_mapping() {
    let mut inputs = healthy();
    inputs.own.contents = Err("Permission denied (os error 13)".into());
    let report = evaluate(&inputs);
    let own = find(&report, "cgroup-self");
    assert_eq!(
        (own.status, own.description.as_str()),
        (Error, "cannot read /host/proc/self/cgroup: Permission denied (os error 13)")
    );
}

#[test]
fn the_encoded_report_always_fits_a_termination_message_and_keeps_the_failures() {
    let huge_log = format!(
        "the BPF_PROG_LOAD syscall returned Invalid argument (os error 22). Verifier output: {}",
        "0: (b7) r0 = 0\n".repeat(5000)
    );
    let mut inputs = healthy();
    inputs.programs = (0..40).map(|_| program("tcp_set_state", "inet_sock_set_state", None)).collect();
    inputs.programs[7].error = Some(huge_log);
    let report = evaluate(&inputs);
    let text = encode(&report, TERMINATION_MESSAGE_LIMIT);
    assert!(text.len() <= TERMINATION_MESSAGE_LIMIT, "{} bytes", text.len());
    let decoded: NodeCheckReport = serde_json::from_str(&text).expect("valid JSON");
    assert!(!decoded.passed(), "the failure survived the cut");
    assert!(
        decoded
            .checks
            .iter()
            .any(|c| c.status == Error && c.description.starts_with("eBPF program tcp_set_state does not load"))
    );

    // A report that fits is written as it is.
    let small = evaluate(&healthy());
    assert_eq!(serde_json::from_str::<NodeCheckReport>(&encode(&small, TERMINATION_MESSAGE_LIMIT)).ok(), Some(small));
}

#[test]
fn a_report_with_too_many_checks_says_how_many_were_left_out() {
    let mut report = evaluate(&healthy());
    let filler = report.checks[0].clone();
    report.checks.extend(std::iter::repeat_n(filler, 200));
    report.checks.push(NodeCheck { id: "proc".into(), status: Error, description: "cannot read".into(), hint: None });
    let text = encode(&report, 1024);
    assert!(text.len() <= 1024, "{} bytes", text.len());
    let decoded: NodeCheckReport = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(decoded.checks[0].status, Error, "errors first");
    let last = decoded.checks.last().expect("checks");
    assert_eq!(last.id, "truncated");
    let kept = decoded.checks.len() - 1;
    assert!(last.description.starts_with(&format!("{} more checks", report.checks.len() - kept)), "{last:?}");
}

#[test]
fn kernel_errors_without_a_verifier_log_stay_whole_on_one_line() {
    assert_eq!(kernel_error("map tcp_aggs:\n failed to create map"), "map tcp_aggs: failed to create map");
    assert_eq!(
        kernel_error("the BPF_PROG_LOAD syscall returned Argument list too long (os error 7). Verifier output: "),
        "the BPF_PROG_LOAD syscall returned Argument list too long (os error 7)"
    );
}
