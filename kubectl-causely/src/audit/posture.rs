//! Pod security findings: what a component's pod template allows beyond the posture its baseline
//! publishes (privileged, root, host mounts, host namespaces, added capabilities, escalation).

use causely_model::Severity;
use k8s_openapi::api::core::v1::{PodSpec, SecurityContext};
use serde::Serialize;

use crate::baseline::PodPosture;

/// One pod security finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodFinding {
    pub rule: &'static str,
    pub severity: Severity,
    /// What in the template, e.g. `container agent: privileged`.
    pub detail: String,
}

/// Capabilities the "baseline" Pod Security level allows a container to add.
const HARMLESS_CAPABILITIES: [&str; 1] = ["NET_BIND_SERVICE"];

fn runs_as_root(pod: &PodSpec, container: &SecurityContext) -> bool {
    let pod_context = pod.security_context.as_ref();
    let non_root = container.run_as_non_root.or(pod_context.and_then(|c| c.run_as_non_root)).unwrap_or(false);
    let user = container.run_as_user.or(pod_context.and_then(|c| c.run_as_user));
    !non_root && user.is_none_or(|u| u == 0) || user == Some(0)
}

/// The posture a pod template takes: privileged, root, host filesystem.
pub fn of(spec: &PodSpec) -> PodPosture {
    let containers = || spec.init_containers.iter().flatten().chain(&spec.containers);
    let context = |c: &k8s_openapi::api::core::v1::Container| c.security_context.clone().unwrap_or_default();
    PodPosture {
        privileged: containers().any(|c| context(c).privileged == Some(true)),
        run_as_root: containers().any(|c| runs_as_root(spec, &context(c))),
        host_filesystem: spec.volumes.iter().flatten().any(|v| v.host_path.is_some()),
        capabilities: containers()
            .flat_map(|c| context(c).capabilities.and_then(|caps| caps.add).unwrap_or_default())
            .collect(),
    }
}

/// Findings for `spec` against what `posture` allows.
pub fn findings(spec: &PodSpec, posture: &PodPosture) -> Vec<PodFinding> {
    let mut out = Vec::new();
    let mut push = |rule, severity, detail: String| out.push(PodFinding { rule, severity, detail });
    for (flag, name) in [(spec.host_pid, "hostPID"), (spec.host_network, "hostNetwork"), (spec.host_ipc, "hostIPC")] {
        if flag == Some(true) {
            push("pod.host-namespace", Severity::High, format!("pod shares the node's namespace: {name}"));
        }
    }
    if !posture.host_filesystem {
        for volume in spec.volumes.iter().flatten() {
            if let Some(host) = &volume.host_path {
                push("pod.host-path", Severity::High, format!("volume {} mounts host path {}", volume.name, host.path));
            }
        }
    }
    for container in spec.init_containers.iter().flatten().chain(&spec.containers) {
        let context = container.security_context.clone().unwrap_or_default();
        let name = &container.name;
        let privileged = context.privileged == Some(true);
        if privileged && !posture.privileged {
            push("pod.privileged", Severity::Critical, format!("container {name}: privileged"));
        }
        if !posture.run_as_root && runs_as_root(spec, &context) {
            push("pod.root", Severity::Medium, format!("container {name}: may run as root"));
        }
        if !posture.privileged {
            for cap in context.capabilities.as_ref().and_then(|c| c.add.clone()).unwrap_or_default() {
                if !HARMLESS_CAPABILITIES.contains(&cap.as_str()) && !posture.capabilities.contains(&cap) {
                    push("pod.capability", Severity::Medium, format!("container {name}: adds capability {cap}"));
                }
            }
            let seccomp = context
                .seccomp_profile
                .as_ref()
                .or(spec.security_context.as_ref().and_then(|c| c.seccomp_profile.as_ref()))
                .map(|p| p.type_.as_str());
            if !privileged && !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
                push(
                    "pod.seccomp",
                    Severity::Low,
                    format!("container {name}: no seccomp profile (Unconfined or unset)"),
                );
            }
            if !privileged && context.allow_privilege_escalation != Some(false) {
                push(
                    "pod.privilege-escalation",
                    Severity::Low,
                    format!("container {name}: privilege escalation not disallowed"),
                );
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{Baseline, Component};
    use crate::render::settings::{AgentMode, ExecutorRbac, Settings};
    use crate::render::{Manifest, render};

    fn template(manifests: &[Manifest], kind: &str, name: &str) -> PodSpec {
        let m = manifests.iter().find(|m| m.kind == kind && m.name == name).unwrap();
        serde_json::from_value(m.object["spec"]["template"]["spec"].clone()).unwrap()
    }

    fn release(settings: &Settings) -> Vec<Manifest> {
        render(settings, &Baseline::seed().unwrap()).unwrap()
    }

    #[test]
    fn every_rendered_pod_meets_the_published_posture() {
        let seed = Baseline::seed().unwrap();
        for agent_mode in [AgentMode::LeastPrivilege, AgentMode::Privileged] {
            let settings = Settings { agent_mode, executor: Some(ExecutorRbac::Scoped), ..Settings::defaults() };
            let manifests = release(&settings);
            let cases = [
                (Component::Agent, "DaemonSet", "causely-agent"),
                (Component::Mediator, "Deployment", "causely-mediator"),
                (Component::Executor, "Deployment", "causely-executor"),
                (Component::VictoriaMetrics, "StatefulSet", "causely-victoria-metrics"),
            ];
            for (component, kind, name) in cases {
                let found = findings(&template(&manifests, kind, name), &seed.component(component).pod);
                assert!(found.is_empty(), "{component} ({agent_mode:?}): {found:?}");
            }
        }
    }

    #[test]
    fn the_least_privilege_agent_judged_as_the_mediator_shows_each_host_access() {
        let seed = Baseline::seed().unwrap();
        let agent = template(&release(&Settings::defaults()), "DaemonSet", "causely-agent");
        let found = findings(&agent, &seed.component(Component::Mediator).pod);
        let rules: Vec<&str> = found.iter().map(|f| f.rule).collect();
        assert_eq!(rules.iter().filter(|r| **r == "pod.host-path").count(), 3, "{found:?}");
        assert_eq!(rules.iter().filter(|r| **r == "pod.capability").count(), 2, "{found:?}");
        assert!(rules.contains(&"pod.root"));
    }

    #[test]
    fn a_privileged_mediator_is_critical() {
        let seed = Baseline::seed().unwrap();
        let mut mediator = template(&release(&Settings::defaults()), "Deployment", "causely-mediator");
        mediator.containers[0].security_context.as_mut().unwrap().privileged = Some(true);
        mediator.host_network = Some(true);
        let found = findings(&mediator, &seed.component(Component::Mediator).pod);
        assert!(found.iter().any(|f| f.rule == "pod.privileged" && f.severity == Severity::Critical), "{found:?}");
        assert!(found.iter().any(|f| f.rule == "pod.host-namespace"), "{found:?}");
    }

    #[test]
    fn a_pod_without_a_seccomp_profile_is_reported() {
        let seed = Baseline::seed().unwrap();
        let mut mediator = template(&release(&Settings::defaults()), "Deployment", "causely-mediator");
        mediator.security_context.as_mut().unwrap().seccomp_profile = None;
        mediator.containers[0].security_context.as_mut().unwrap().seccomp_profile = None;
        let found = findings(&mediator, &seed.component(Component::Mediator).pod);
        assert_eq!(found.iter().map(|f| f.rule).collect::<Vec<_>>(), ["pod.seccomp"], "{found:?}");
    }
}
