//! Pod and container building blocks: security contexts, probes, resources, environment.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, SeccompProfile, SecurityContext,
};

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::meta;
use super::settings::Settings;
use super::values::ComponentValues;
use crate::baseline::Component;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The non-root user the project's images and VictoriaMetrics run as.
pub const NON_ROOT_UID: i64 = 65532;

fn runtime_default_seccomp() -> Option<SeccompProfile> {
    Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), localhost_profile: None })
}

/// Pod-level settings that pass Pod Security "restricted".
pub fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NON_ROOT_UID),
        run_as_group: Some(NON_ROOT_UID),
        fs_group: Some(NON_ROOT_UID),
        seccomp_profile: runtime_default_seccomp(),
        ..PodSecurityContext::default()
    }
}

/// Container-level settings that pass Pod Security "restricted", with a read-only root filesystem.
pub fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { add: None, drop: Some(vec!["ALL".to_owned()]) }),
        seccomp_profile: runtime_default_seccomp(),
        ..SecurityContext::default()
    }
}

/// The least-privilege agent: root (capabilities are only effective for uid 0 in containers),
/// not privileged, every capability dropped but those eBPF needs.
pub fn agent_least_privilege() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_user: Some(0),
        run_as_non_root: Some(false),
        capabilities: Some(Capabilities {
            add: Some(vec![
                // bpf(2): load the programs in ebpf/ and create their maps (kernel 5.8+).
                "BPF".to_owned(),
                // perf_event_open(2) and tracepoint attachment, and reading BPF run statistics.
                "PERFMON".to_owned(),
            ]),
            drop: Some(vec!["ALL".to_owned()]),
        }),
        // The runtime's default profile allows bpf(2) and perf_event_open(2) to holders of
        // CAP_BPF and CAP_PERFMON.
        seccomp_profile: runtime_default_seccomp(),
        ..SecurityContext::default()
    }
}

/// The published agent posture: privileged and root.
pub fn agent_privileged() -> SecurityContext {
    SecurityContext { privileged: Some(true), run_as_user: Some(0), ..SecurityContext::default() }
}

pub fn http_probe(path: &str, port: i32, period_seconds: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(port),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        ..Probe::default()
    }
}

/// Requests and a memory limit; no CPU limit, so that a busy node does not throttle collection.
pub fn resources(cpu: &str, memory: &str, memory_limit: &str) -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_owned());
    ResourceRequirements {
        requests: Some(BTreeMap::from([("cpu".to_owned(), q(cpu)), ("memory".to_owned(), q(memory))])),
        limits: Some(BTreeMap::from([("memory".to_owned(), q(memory_limit))])),
        ..ResourceRequirements::default()
    }
}

pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value.into()), value_from: None }
}

pub fn env_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: field_path.to_owned(), api_version: None }),
            ..EnvVarSource::default()
        }),
    }
}

/// Applies a component's values: node selector, tolerations (replacing the defaults) and the
/// resources of its container.
pub fn apply_values(spec: &mut PodSpec, values: &ComponentValues) {
    if let Some(selector) = &values.node_selector {
        spec.node_selector = Some(selector.clone());
    }
    if let Some(tolerations) = &values.tolerations {
        spec.tolerations = Some(tolerations.clone());
    }
    if let (Some(resources), Some(container)) = (&values.resources, spec.containers.first_mut()) {
        container.resources = Some(resources.clone());
    }
}

/// A component's pod template: its labels and ServiceAccount on `spec`, with the values file's
/// overrides applied.
pub fn template(settings: &Settings, component: Component, spec: PodSpec) -> PodTemplateSpec {
    let mut spec = PodSpec { service_account_name: Some(meta::name(component)), ..spec };
    apply_values(&mut spec, settings.values.component(component));
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(meta::labels(settings, component)), ..ObjectMeta::default() }),
        spec: Some(spec),
    }
}
