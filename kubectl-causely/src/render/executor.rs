//! The optional executor Deployment: one replica (Recreate, so two never run at once), its
//! projected token for the mediator, and a scratch volume for its run record and audit log.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{Container, ContainerPort, EmptyDirVolumeSource, PodSpec, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::settings::Settings;
use super::{meta, pod, ports};
use crate::baseline::Component;

/// Where the executor keeps which action ids it ran, and its audit log.
const STATE_DIR: &str = "/var/lib/causely-executor";

/// Survives container restarts, so a crashed executor does not run an id again; a replaced pod
/// starts empty (see docs/executor.md).
fn state() -> (Volume, VolumeMount) {
    let volume = Volume {
        name: "state".to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity("64Mi".to_owned())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    };
    let mount = VolumeMount { name: "state".to_owned(), mount_path: STATE_DIR.to_owned(), ..VolumeMount::default() };
    (volume, mount)
}

pub fn deployment(settings: &Settings) -> Deployment {
    let component = Component::Executor;
    let (volumes, mounts): (Vec<Volume>, Vec<VolumeMount>) =
        [super::agent::mediator_token(), state()].into_iter().unzip();
    let container = Container {
        name: "executor".to_owned(),
        image: Some(settings.image(component)),
        env: Some(vec![
            pod::env("CAUSELY_MEDIATOR_URL", super::mediator::url(settings)),
            pod::env("CAUSELY_TOKEN_FILE", format!("{}/token", super::agent::MEDIATOR_TOKEN_DIR)),
            pod::env("CAUSELY_STATE_DIR", STATE_DIR),
            pod::env_field("POD_NAME", "metadata.name"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("health".to_owned()),
            container_port: ports::EXECUTOR_HEALTH,
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(pod::http_probe("/healthz", ports::EXECUTOR_HEALTH, 20)),
        resources: Some(pod::resources("10m", "32Mi", "128Mi")),
        security_context: Some(pod::restricted_container()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let pod_spec = PodSpec {
        security_context: Some(pod::restricted_pod()),
        containers: vec![container],
        volumes: Some(volumes),
        ..PodSpec::default()
    };
    Deployment {
        metadata: meta::namespaced(settings, component, meta::name(component)),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: meta::selector(component),
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".to_owned()), rolling_update: None }),
            template: pod::template(settings, component, pod_spec),
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}
