//! Node grouping and selection, the check pod against the DaemonSet it is made from, and pod
//! statuses (as the API server returns them) turned into results.

use serde_json::json;

use super::*;
use crate::baseline::Component;
use crate::checks::Status;
use crate::render::settings::AgentMode;

fn node(name: &str, kernel: &str, runtime: &str, ready: bool) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        kernel: kernel.into(),
        os_image: "Debian GNU/Linux 12 (bookworm)".into(),
        runtime: runtime.into(),
        architecture: "amd64".into(),
        operating_system: "linux".into(),
        ready,
        labels: BTreeMap::new(),
    }
}

#[test]
fn nodes_are_grouped_by_what_the_check_depends_on_and_one_ready_node_speaks_for_each() {
    let kwok = |name: &str| {
        let mut n = node(name, "6.18.44", "kwok", true);
        n.os_image = "Debian GNU/Linux 12 (kwok)".into();
        n
    };
    let nodes = vec![
        node("worker-b", "6.1.0-18-amd64", "containerd://1.7.2", true),
        // Alike, first by name but not Ready: worker-b speaks for both.
        node("worker-a", "6.1.0-18-amd64", "containerd://1.7.2", false),
        node("old-1", "5.4.0-150-generic", "containerd://1.7.2", true),
        kwok("kwok-node-2"),
        kwok("kwok-node-1"),
        node("down-1", "6.8.0-1", "cri-o://1.30.0", false),
    ];
    let groups = plan(&nodes, None);
    let by_first: BTreeMap<&str, &Group> = groups.iter().map(|g| (g.nodes[0].as_str(), g)).collect();
    assert_eq!(groups.len(), 4, "{groups:#?}");
    assert_eq!(by_first["worker-a"].nodes, ["worker-a", "worker-b"]);
    assert_eq!(by_first["worker-a"].target, Target::Check("worker-b".into()));
    assert_eq!(by_first["old-1"].target, Target::Check("old-1".into()));
    assert_eq!(by_first["kwok-node-1"].nodes, ["kwok-node-1", "kwok-node-2"]);
    let Target::Skip(reason) = &by_first["kwok-node-1"].target else { panic!("kwok checked") };
    assert!(reason.starts_with("container runtime \"kwok\" is not a container runtime URL"), "{reason}");
    assert_eq!(by_first["down-1"].target, Target::Skip("no node of this group is Ready".into()));
    assert_eq!(by_first["kwok-node-1"].category(), "node-check: kwok-node-1, kwok-node-2");
}

#[test]
fn windows_nodes_and_nodes_the_agent_would_not_run_on_are_skipped() {
    let mut windows = node("win-1", "10.0.20348.2227", "containerd://1.7.2", true);
    windows.operating_system = "windows".into();
    let mut gpu = node("gpu-1", "6.1.0", "containerd://1.7.2", true);
    gpu.labels.insert("pool".into(), "gpu".into());
    let cpu = node("cpu-1", "6.1.0", "containerd://1.7.2", true);
    let other = node("cpu-2", "6.2.0", "containerd://1.7.2", true);
    let selector = BTreeMap::from([("pool".to_owned(), "gpu".to_owned())]);
    let groups = plan(&[windows, gpu, cpu, other], Some(&selector));
    let target = |first: &str| groups.iter().find(|g| g.nodes[0] == first).map(|g| g.target.clone());
    assert_eq!(target("win-1"), Some(Target::Skip("windows nodes: the agent runs on Linux only".into())));
    // cpu-1 comes first by name, but only gpu-1 is selected.
    assert_eq!(target("cpu-1"), Some(Target::Check("gpu-1".into())));
    assert!(matches!(target("cpu-2"), Some(Target::Skip(r)) if r.contains("nodeSelector")));
}

#[test]
fn a_long_group_is_named_by_its_first_nodes() {
    let nodes: Vec<NodeFacts> = (1..=5).map(|i| node(&format!("n{i}"), "6.1.0", "containerd://1.7.2", true)).collect();
    assert_eq!(plan(&nodes, None)[0].category(), "node-check: n1, n2, n3 and 2 more");
}

#[test]
fn the_check_pod_is_the_agent_daemonsets_pod_with_only_what_makes_it_a_one_shot_check() {
    for mode in [AgentMode::LeastPrivilege, AgentMode::Privileged] {
        let settings = Settings { agent_mode: mode, registry: "127.0.0.1:35000".into(), ..Settings::defaults() };
        let daemon = crate::render::agent::daemon_set(&settings).spec.and_then(|s| s.template.spec).expect("template");
        let pod = check_pod(&settings, "causely-node-check-x", "check-0", "real-node-1", Duration::from_secs(90));
        let spec = pod.spec.expect("spec");
        let (container, agent) = (&spec.containers[0], &daemon.containers[0]);
        // The posture, image, mounts and environment the install deploys.
        assert_eq!(container.image, Some(settings.image(Component::Agent)));
        assert_eq!(container.security_context, agent.security_context, "{mode:?}");
        assert_eq!(container.volume_mounts, agent.volume_mounts);
        assert_eq!(container.env, agent.env);
        assert_eq!(container.resources, agent.resources);
        assert_eq!(spec.volumes, daemon.volumes);
        assert_eq!(spec.host_pid, daemon.host_pid);
        assert_eq!(spec.host_network, daemon.host_network);
        // A one-shot check on that node.
        assert_eq!(container.args.as_deref(), Some(["check".to_owned()].as_slice()));
        assert_eq!(container.termination_message_policy.as_deref(), Some("File"));
        assert_eq!((container.liveness_probe.as_ref(), container.readiness_probe.as_ref()), (None, None));
        assert_eq!(spec.node_name.as_deref(), Some("real-node-1"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.active_deadline_seconds, Some(90));
        let tolerations = spec.tolerations.expect("tolerations");
        assert_eq!(tolerations.len(), 1);
        assert_eq!((tolerations[0].operator.as_deref(), tolerations[0].key.as_deref()), (Some("Exists"), None));
        assert_eq!(spec.priority_class_name, None, "a check must not preempt workloads");
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("causely-node-check-x"));
        assert!(!pod.metadata.labels.expect("labels").contains_key("app.kubernetes.io/part-of"));
    }
    // An image override is what the check runs.
    let mut settings = Settings::defaults();
    settings.images.insert(Component::Agent, "127.0.0.1:35000/does-not-exist:1".into());
    let pod = check_pod(&settings, "ns", "check-0", "n", Duration::from_secs(60));
    assert_eq!(pod.spec.expect("spec").containers[0].image.as_deref(), Some("127.0.0.1:35000/does-not-exist:1"));
}

fn pod(status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "check-0"}, "status": status})).expect("a pod")
}

const IMAGE: &str = "127.0.0.1:35000/causely-agent:0.1.0";

fn report_json() -> String {
    json!({
        "agentVersion": "0.1.0",
        "kernel": "6.18.44-fc-v1300",
        "checks": [
            {"id": "btf", "status": "ok", "description": "kernel BTF is present (/sys/kernel/btf/vmlinux, 5353 KiB)"},
            {"id": "ebpf/tcp_set_state", "status": "error", "description": "eBPF program tcp_set_state does not load or attach", "hint": "give it CAP_BPF"},
            {"id": "pressure", "status": "warning", "description": "no pressure (PSI) files", "hint": "boot with psi=1"}
        ]
    })
    .to_string()
}

#[test]
fn a_terminated_check_with_a_report_gives_the_agents_own_results() {
    let finished = pod(json!({
        "phase": "Failed",
        "containerStatuses": [{"name": "agent", "image": IMAGE, "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": report_json()}}}]
    }));
    let Some(Outcome::Report(report)) = judge(&finished, "real-node-1", IMAGE) else { panic!("no report") };
    assert_eq!(report.checks.len(), 3);
    let group = Group {
        key: GroupKey {
            kernel: "6.18.44-fc-v1300".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            runtime: "containerd://1.6.20".into(),
            architecture: "amd64".into(),
        },
        nodes: vec!["real-node-1".into()],
        target: Target::Check("real-node-1".into()),
    };
    let lines = results(&group, Some(&Outcome::Report(report)));
    assert_eq!(lines[0].status, Status::Ok);
    assert_eq!(
        lines[0].description,
        "causely-agent 0.1.0 checked real-node-1 (kernel 6.18.44-fc-v1300, Debian GNU/Linux 12 (bookworm), containerd://1.6.20, amd64)"
    );
    let statuses: Vec<Status> = lines.iter().map(|l| l.status).collect();
    assert_eq!(statuses, [Status::Ok, Status::Ok, Status::Error, Status::Warning]);
    assert_eq!(lines[2].hint.as_deref(), Some("give it CAP_BPF"));
    assert!(lines.iter().all(|l| l.category == "node-check: real-node-1"));
}

#[test]
fn an_image_that_cannot_be_pulled_fails_naming_the_image_and_the_reason() {
    for reason in ["ErrImagePull", "ImagePullBackOff"] {
        let stuck = pod(json!({
            "phase": "Pending",
            "containerStatuses": [{"name": "agent", "image": "127.0.0.1:35000/does-not-exist:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason,
                    "message": "Back-off pulling image \"127.0.0.1:35000/does-not-exist:1\": not found"}}}]
        }));
        let Some(Outcome::Failed { description, hint }) =
            judge(&stuck, "real-node-1", "127.0.0.1:35000/does-not-exist:1")
        else {
            panic!("{reason}: not a failure")
        };
        assert_eq!(
            description,
            format!(
                "real-node-1 cannot pull the agent image 127.0.0.1:35000/does-not-exist:1: {reason}: Back-off pulling image \"127.0.0.1:35000/does-not-exist:1\": not found"
            )
        );
        assert!(hint.contains("--registry"), "{hint}");
    }
}

#[test]
fn a_pod_that_cannot_be_placed_fails_at_once_with_the_schedulers_words() {
    let pending = pod(json!({
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/4 nodes are available: 1 Insufficient memory."}]
    }));
    let Some(Outcome::Failed { description, .. }) = judge(&pending, "real-node-1", IMAGE) else { panic!("waits") };
    assert_eq!(
        description,
        "the check pod cannot be placed on real-node-1: Unschedulable: 0/4 nodes are available: 1 Insufficient memory."
    );
}

#[test]
fn a_check_that_ends_without_a_report_says_what_it_left_instead() {
    for (message, said) in [
        ("panicked at main.rs:3", "its termination message is not a check report: \"panicked at main.rs:3\""),
        ("{\"agentVersion\": \"0.1.0\"", "its termination message is not a check report"),
        ("", "no termination message"),
    ] {
        let ended = pod(json!({
            "phase": "Failed",
            "containerStatuses": [{"name": "agent", "image": IMAGE, "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 2, "reason": "Error", "message": message}}}]
        }));
        let Some(Outcome::Failed { description, hint }) = judge(&ended, "real-node-1", IMAGE) else {
            panic!("{message}")
        };
        assert!(
            description.starts_with("the check on real-node-1 ended without a report (exit code 2, Error); "),
            "{description}"
        );
        assert!(description.contains(said), "{description}");
        assert!(hint.contains(IMAGE), "{hint}");
    }
}

#[test]
fn a_pod_the_kubelet_refused_or_stopped_fails_with_its_reason() {
    let refused = pod(json!({"phase": "Failed", "reason": "OutOfmemory",
        "message": "Pod was rejected: Node didn't have enough resource: memory"}));
    let Some(Outcome::Failed { description, .. }) = judge(&refused, "real-node-1", IMAGE) else { panic!("waits") };
    assert_eq!(
        description,
        "the check pod on real-node-1 failed: OutOfmemory: Pod was rejected: Node didn't have enough resource: memory"
    );
    let config = pod(json!({"phase": "Pending",
        "containerStatuses": [{"name": "agent", "image": IMAGE, "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "CreateContainerError", "message": "failed to mount /sys/kernel/btf"}}}]}));
    let Some(Outcome::Failed { description, .. }) = judge(&config, "n1", IMAGE) else { panic!("waits") };
    assert_eq!(description, "the check could not start on n1: CreateContainerError: failed to mount /sys/kernel/btf");
}

#[test]
fn a_check_on_its_way_is_waited_for_and_reported_with_where_it_was_when_time_ran_out() {
    let creating = pod(json!({"phase": "Pending",
        "containerStatuses": [{"name": "agent", "image": IMAGE, "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
    assert_eq!(judge(&creating, "n1", IMAGE), None);
    assert_eq!(judge(&pod(json!({"phase": "Pending"})), "n1", IMAGE), None);
    let Outcome::Failed { description, hint } = timed_out(
        Some(&creating),
        "n1",
        Duration::from_secs(120),
        Some("FailedMount: MountVolume.SetUp failed for volume \"btf\""),
    ) else {
        panic!("not a failure")
    };
    assert_eq!(
        description,
        "the check on n1 did not finish within 120s: its container is waiting (ContainerCreating); last warning: FailedMount: MountVolume.SetUp failed for volume \"btf\""
    );
    assert!(hint.contains("--node-timeout"), "{hint}");
    let Outcome::Failed { description, .. } = timed_out(None, "n1", Duration::from_secs(5), None) else { panic!() };
    assert_eq!(description, "the check on n1 did not finish within 5s: the pod is not started");
}

#[test]
fn a_skipped_group_is_one_skipped_line_that_does_not_fail_the_check() {
    let group = Group {
        key: GroupKey {
            kernel: "6.18.44".into(),
            os_image: "Debian GNU/Linux 12 (kwok)".into(),
            runtime: "kwok".into(),
            architecture: "amd64".into(),
        },
        nodes: vec!["kwok-node-1".into(), "kwok-node-2".into(), "kwok-node-3".into()],
        target: Target::Skip("container runtime \"kwok\" is not a container runtime URL".into()),
    };
    let lines = results(&group, None);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].status, Status::Skipped);
    assert_eq!(lines[0].category, "node-check: kwok-node-1, kwok-node-2, kwok-node-3");
    assert!(
        lines[0]
            .description
            .starts_with("skipped (kernel 6.18.44, Debian GNU/Linux 12 (kwok), kwok, amd64): container runtime")
    );
    assert!(crate::checks::passed(&lines));
}
