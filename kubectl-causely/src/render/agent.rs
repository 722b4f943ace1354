//! The agent DaemonSet, in its two postures.

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, HostPathVolumeSource, PodSpec, ProjectedVolumeSource,
    ServiceAccountTokenProjection, Toleration, Volume, VolumeMount, VolumeProjection,
};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::settings::{AgentMode, Settings};
use super::{meta, pod, ports};
use crate::baseline::Component;

/// A read-only hostPath mount of `host` at `path`.
fn host_mount(name: &str, host: &str, path: &str) -> (Volume, VolumeMount) {
    let volume = Volume {
        name: name.to_owned(),
        host_path: Some(HostPathVolumeSource { path: host.to_owned(), type_: Some("Directory".to_owned()) }),
        ..Volume::default()
    };
    let mount = VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    (volume, mount)
}

/// What the agent reads from its node, mounted read-only.
fn host_mounts(mode: AgentMode) -> Vec<(Volume, VolumeMount)> {
    match mode {
        AgentMode::LeastPrivilege => vec![
            // Kernel type information for CO-RE relocation of the eBPF programs.
            host_mount("btf", "/sys/kernel/btf", "/sys/kernel/btf"),
            // Container CPU, memory, throttling and OOM counters.
            host_mount("cgroup", "/sys/fs/cgroup", "/host/sys/fs/cgroup"),
            // Process to cgroup attribution, node CPU, memory and pressure.
            host_mount("proc", "/proc", "/host/proc"),
        ],
        // The published posture mounts the whole host filesystem.
        AgentMode::Privileged => vec![host_mount("host", "/", "/host")],
    }
}

/// Where the agent finds the token it presents to the mediator.
pub(super) const MEDIATOR_TOKEN_DIR: &str = "/var/run/secrets/causely";

/// A short-lived token for the mediator's audience only, rotated by the kubelet; the mediator
/// verifies it against the API server's issuer keys and the node it is bound to.
pub(super) fn mediator_token() -> (Volume, VolumeMount) {
    let volume = Volume {
        name: "mediator-token".to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(causely_model::AGENT_TOKEN_AUDIENCE.to_owned()),
                    expiration_seconds: Some(3600),
                    path: "token".to_owned(),
                }),
                ..VolumeProjection::default()
            }]),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    };
    let mount = VolumeMount {
        name: "mediator-token".to_owned(),
        mount_path: MEDIATOR_TOKEN_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    (volume, mount)
}

/// Where the agent spools raw samples while VictoriaMetrics is unreachable.
const SPOOL_DIR: &str = "/var/lib/causely-agent";

/// A bounded scratch volume for the spool: it survives container restarts, and its size limit
/// backs the agent's own bound on buffered samples.
fn spool() -> (Volume, VolumeMount) {
    let volume = Volume {
        name: "spool".to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity("256Mi".to_owned())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    };
    let mount = VolumeMount { name: "spool".to_owned(), mount_path: SPOOL_DIR.to_owned(), ..VolumeMount::default() };
    (volume, mount)
}

pub fn daemon_set(settings: &Settings) -> DaemonSet {
    let component = Component::Agent;
    let (volumes, mounts): (Vec<Volume>, Vec<VolumeMount>) =
        host_mounts(settings.agent_mode).into_iter().chain([mediator_token(), spool()]).unzip();
    let security = match settings.agent_mode {
        AgentMode::LeastPrivilege => pod::agent_least_privilege(),
        AgentMode::Privileged => pod::agent_privileged(),
    };
    let container = Container {
        name: "agent".to_owned(),
        image: Some(settings.image(component)),
        env: Some(vec![
            pod::env_field("NODE_NAME", "spec.nodeName"),
            pod::env("CAUSELY_MEDIATOR_URL", super::mediator::url(settings)),
            pod::env("CAUSELY_VICTORIA_METRICS_URL", settings.victoria_metrics_url()),
            pod::env("CAUSELY_HOST_ROOT", "/host"),
            pod::env("CAUSELY_TOKEN_FILE", format!("{MEDIATOR_TOKEN_DIR}/token")),
            pod::env("CAUSELY_STATE_DIR", SPOOL_DIR),
            // The kubelet of its own node, read with the ServiceAccount token (`nodes/metrics`);
            // its serving certificate checked against the cluster CA.
            pod::env_field("NODE_IP", "status.hostIP"),
            pod::env("CAUSELY_KUBELET_URL", format!("https://$(NODE_IP):{}", ports::KUBELET)),
            pod::env("CAUSELY_KUBELET_CA_FILE", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("health".to_owned()),
            container_port: ports::AGENT_HEALTH,
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(pod::http_probe("/healthz", ports::AGENT_HEALTH, 20)),
        readiness_probe: Some(pod::http_probe("/readyz", ports::AGENT_HEALTH, 10)),
        resources: Some(pod::resources("25m", "32Mi", "64Mi")),
        security_context: Some(security),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let spec = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        // Every node, whatever its taints: a node without an agent is a blind spot.
        tolerations: Some(vec![Toleration { operator: Some("Exists".to_owned()), ..Toleration::default() }]),
        priority_class_name: Some("system-node-critical".to_owned()),
        ..PodSpec::default()
    };
    DaemonSet {
        metadata: meta::namespaced(settings, component, meta::name(component)),
        spec: Some(DaemonSetSpec {
            selector: meta::selector(component),
            template: pod::template(settings, component, spec),
            ..DaemonSetSpec::default()
        }),
        status: None,
    }
}
