//! What `install` renders: the published ClusterRoles rule for rule, the two agent postures, the
//! "restricted" posture of every other pod, labels, options, and byte-stable output.

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PodSpec, SecurityContext};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kubectl_causely::baseline::{Baseline, Component, Rule};
use kubectl_causely::render::settings::{AgentMode, ExecutorRbac, MediatorStorage, Settings, VictoriaMetrics};
use kubectl_causely::render::{self, Format, Manifest};
use serde::de::DeserializeOwned;

fn release(settings: &Settings) -> Vec<Manifest> {
    render::render(settings, &Baseline::seed().unwrap()).unwrap()
}

fn find<T: DeserializeOwned>(manifests: &[Manifest], kind: &str, name: &str) -> T {
    let m = manifests
        .iter()
        .find(|m| m.kind == kind && m.name == name)
        .unwrap_or_else(|| panic!("{kind}/{name} not rendered"));
    serde_json::from_value(m.object.clone()).unwrap()
}

fn has(manifests: &[Manifest], kind: &str, name: &str) -> bool {
    manifests.iter().any(|m| m.kind == kind && m.name == name)
}

fn with_executor(rbac: ExecutorRbac) -> Settings {
    Settings { executor: Some(rbac), ..Settings::defaults() }
}

fn container_security(spec: &PodSpec) -> SecurityContext {
    spec.containers[0].security_context.clone().unwrap()
}

#[test]
fn agent_and_mediator_cluster_roles_are_the_published_rules_exactly() {
    let seed = Baseline::seed().unwrap();
    let manifests = release(&Settings::defaults());
    for component in [Component::Agent, Component::Mediator] {
        let role: ClusterRole = find(&manifests, "ClusterRole", &format!("causely-{component}"));
        let expected: Vec<_> = seed.component(component).rules.iter().map(Rule::to_policy_rule).collect();
        assert_eq!(role.rules.unwrap(), expected, "{component}");
    }
}

#[test]
fn the_least_privilege_agent_is_unprivileged_with_two_capabilities_and_read_only_mounts() {
    let ds: DaemonSet = find(&release(&Settings::defaults()), "DaemonSet", "causely-agent");
    let spec = ds.spec.unwrap().template.spec.unwrap();
    let sc = container_security(&spec);
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let caps = sc.capabilities.unwrap();
    assert_eq!(caps.add.unwrap(), ["BPF", "PERFMON"]);
    assert_eq!(caps.drop.unwrap(), ["ALL"]);
    let host_paths: Vec<String> =
        spec.volumes.unwrap().iter().filter_map(|v| v.host_path.as_ref().map(|h| h.path.clone())).collect();
    assert_eq!(host_paths, ["/sys/kernel/btf", "/sys/fs/cgroup", "/proc"]);
    let mounts = spec.containers[0].volume_mounts.as_ref().unwrap();
    let writable: Vec<&str> = mounts.iter().filter(|m| m.read_only != Some(true)).map(|m| m.name.as_str()).collect();
    assert_eq!(writable, ["spool"], "only the bounded emptyDir spool is writable");
    assert!(spec.host_pid.is_none() && spec.host_network.is_none() && spec.host_ipc.is_none());
    let tolerations = spec.tolerations.unwrap();
    assert_eq!(tolerations.len(), 1);
    assert_eq!(tolerations[0].operator.as_deref(), Some("Exists"));
    assert!(tolerations[0].key.is_none(), "tolerates every taint");
}

#[test]
fn agents_present_a_short_lived_token_minted_only_for_the_mediator() {
    for mode in [AgentMode::LeastPrivilege, AgentMode::Privileged] {
        let settings = Settings { agent_mode: mode, ..Settings::defaults() };
        let ds: DaemonSet = find(&release(&settings), "DaemonSet", "causely-agent");
        let spec = ds.spec.unwrap().template.spec.unwrap();
        let projected = spec.volumes.unwrap().into_iter().find_map(|v| v.projected).expect("a projected token");
        let token = projected.sources.unwrap().remove(0).service_account_token.unwrap();
        assert_eq!(token.audience.as_deref(), Some(causely_model::AGENT_TOKEN_AUDIENCE));
        assert!(token.expiration_seconds.unwrap() <= 3600);
        let env = spec.containers[0].env.as_ref().unwrap();
        let file = env.iter().find(|e| e.name == "CAUSELY_TOKEN_FILE").and_then(|e| e.value.clone()).unwrap();
        let mount = spec.containers[0].volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "mediator-token");
        assert!(file.starts_with(&mount.unwrap().mount_path), "{file}");
    }
}

#[test]
fn the_privileged_agent_is_the_published_posture() {
    let settings = Settings { agent_mode: AgentMode::Privileged, ..Settings::defaults() };
    let ds: DaemonSet = find(&release(&settings), "DaemonSet", "causely-agent");
    let spec = ds.spec.unwrap().template.spec.unwrap();
    let sc = container_security(&spec);
    assert_eq!(sc.privileged, Some(true));
    assert_eq!(sc.run_as_user, Some(0));
    let volumes = spec.volumes.unwrap();
    assert_eq!(volumes[0].host_path.as_ref().unwrap().path, "/");
}

#[test]
fn every_other_pod_meets_the_restricted_profile() {
    let manifests = release(&with_executor(ExecutorRbac::Scoped));
    let mediator: Deployment = find(&manifests, "Deployment", "causely-mediator");
    let executor: Deployment = find(&manifests, "Deployment", "causely-executor");
    let vm: StatefulSet = find(&manifests, "StatefulSet", "causely-victoria-metrics");
    let specs = [
        mediator.spec.unwrap().template.spec.unwrap(),
        executor.spec.unwrap().template.spec.unwrap(),
        vm.spec.unwrap().template.spec.unwrap(),
    ];
    for spec in specs {
        let pod = spec.security_context.clone().unwrap();
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!(pod.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let sc = container_security(&spec);
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.privileged, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
        assert!(spec.volumes.unwrap_or_default().iter().all(|v| v.host_path.is_none()));
    }
}

#[test]
fn the_executor_is_scoped_by_default_and_cluster_admin_only_when_asked() {
    assert!(!has(&release(&Settings::defaults()), "Deployment", "causely-executor"));

    let scoped = release(&with_executor(ExecutorRbac::Scoped));
    let role: ClusterRole = find(&scoped, "ClusterRole", "causely-executor");
    for rule in role.rules.unwrap() {
        assert!(!rule.verbs.contains(&"*".to_owned()), "{rule:?}");
        let resources = rule.resources.unwrap();
        assert!(!resources.iter().any(|r| r == "*" || r == "secrets"), "{resources:?}");
    }
    let binding: ClusterRoleBinding = find(&scoped, "ClusterRoleBinding", "causely-executor");
    assert_eq!(binding.role_ref.name, "causely-executor");

    let admin = release(&with_executor(ExecutorRbac::ClusterAdmin));
    assert!(!has(&admin, "ClusterRole", "causely-executor"));
    let binding: ClusterRoleBinding = find(&admin, "ClusterRoleBinding", "causely-executor");
    assert_eq!(binding.role_ref.name, "cluster-admin");
}

#[test]
fn the_executor_runs_alone_and_presents_a_mediator_audience_token() {
    let manifests = release(&with_executor(ExecutorRbac::Scoped));
    let executor: Deployment = find(&manifests, "Deployment", "causely-executor");
    let spec = executor.spec.unwrap();
    // Two executors at once (a rolling update) could each take the same action.
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    let pod = spec.template.spec.unwrap();
    let volumes = pod.volumes.unwrap();
    let projected = volumes.iter().find_map(|v| v.projected.as_ref()).unwrap();
    let token = projected.sources.as_ref().unwrap()[0].service_account_token.as_ref().unwrap();
    assert_eq!(token.audience.as_deref(), Some("causely-mediator"));
    let env = pod.containers[0].env.clone().unwrap();
    let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
    assert_eq!(value("CAUSELY_TOKEN_FILE").as_deref(), Some("/var/run/secrets/causely/token"));
    assert_eq!(value("CAUSELY_STATE_DIR").as_deref(), Some("/var/lib/causely-executor"));
}

#[test]
fn external_victoria_metrics_installs_none_and_points_the_agents_at_it() {
    let url = "http://vm.monitoring.svc:8428".to_owned();
    let settings = Settings { victoria_metrics: VictoriaMetrics::External(url.clone()), ..Settings::defaults() };
    let manifests = release(&settings);
    assert!(!manifests.iter().any(|m| m.name == "causely-victoria-metrics"));
    let ds: DaemonSet = find(&manifests, "DaemonSet", "causely-agent");
    let env = ds.spec.unwrap().template.spec.unwrap().containers[0].env.clone().unwrap();
    let vm = env.iter().find(|e| e.name == "CAUSELY_VICTORIA_METRICS_URL").unwrap();
    assert_eq!(vm.value.as_deref(), Some(url.as_str()));
}

#[test]
fn ephemeral_mediator_storage_needs_no_claim() {
    let settings = Settings { mediator_storage: MediatorStorage::Ephemeral, ..Settings::defaults() };
    let manifests = release(&settings);
    assert!(!manifests.iter().any(|m| m.kind == "PersistentVolumeClaim"));
    let d: Deployment = find(&manifests, "Deployment", "causely-mediator");
    let volumes = d.spec.unwrap().template.spec.unwrap().volumes.unwrap();
    assert!(volumes[0].empty_dir.is_some());
}

#[test]
fn every_object_carries_the_release_labels() {
    for m in release(&with_executor(ExecutorRbac::Scoped)) {
        let labels = &m.object["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/part-of"], "causely", "{}", m.key());
        assert_eq!(labels["app.kubernetes.io/managed-by"], "kubectl-causely", "{}", m.key());
        assert_eq!(labels["app.kubernetes.io/version"], env!("CARGO_PKG_VERSION"), "{}", m.key());
    }
}

#[test]
fn the_namespace_enforces_privileged_for_the_agent_and_audits_restricted() {
    let manifests = release(&Settings::defaults());
    let ns = &manifests[0];
    assert_eq!(ns.kind, "Namespace");
    assert_eq!(ns.object["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged");
    assert_eq!(ns.object["metadata"]["labels"]["pod-security.kubernetes.io/audit"], "restricted");
}

#[test]
fn output_is_identical_across_renders_and_json_is_a_list() {
    let settings = with_executor(ExecutorRbac::Scoped);
    let a = render::print(&release(&settings), Format::Yaml).unwrap();
    let b = render::print(&release(&settings), Format::Yaml).unwrap();
    assert_eq!(a, b);
    let json: serde_json::Value =
        serde_json::from_str(&render::print(&release(&settings), Format::Json).unwrap()).unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"].as_array().unwrap().len(), release(&settings).len());
}

#[test]
fn network_policies_deny_by_default_and_allow_only_the_published_paths() {
    let manifests = release(&Settings::defaults());
    let deny = manifests.iter().find(|m| m.name == "causely-default-deny").unwrap();
    assert_eq!(deny.object["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    assert!(deny.object["spec"].get("ingress").is_none() && deny.object["spec"].get("egress").is_none());
    let vm = manifests.iter().find(|m| m.kind == "NetworkPolicy" && m.name == "causely-victoria-metrics").unwrap();
    let from = &vm.object["spec"]["ingress"][0]["from"];
    let callers: Vec<&str> = from
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str().unwrap())
        .collect();
    assert_eq!(callers, ["agent", "mediator"]);
    assert!(vm.object["spec"].get("egress").is_none(), "VictoriaMetrics sends nothing anywhere");
}
