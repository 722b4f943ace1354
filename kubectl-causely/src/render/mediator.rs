//! The mediator Deployment, its Service and its state volume.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::settings::{MediatorStorage, Settings};
use super::{meta, pod, ports};
use crate::baseline::Component;

const STATE_DIR: &str = "/var/lib/causely";

fn state_claim_name() -> String {
    format!("{}-state", meta::name(Component::Mediator))
}

/// The in-cluster URL of the mediator's API.
pub fn url(settings: &Settings) -> String {
    format!("http://{}.{}.svc:{}", meta::name(Component::Mediator), settings.namespace, ports::MEDIATOR_API)
}

/// The claim for the ledger and queue, when storage is persistent.
pub fn state_claim(settings: &Settings) -> Option<PersistentVolumeClaim> {
    (settings.mediator_storage == MediatorStorage::Persistent).then(|| PersistentVolumeClaim {
        metadata: meta::namespaced(settings, Component::Mediator, state_claim_name()),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity("1Gi".to_owned()))])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    })
}

pub fn deployment(settings: &Settings) -> Deployment {
    let component = Component::Mediator;
    let state = match settings.mediator_storage {
        MediatorStorage::Persistent => Volume {
            name: "state".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: state_claim_name(),
                read_only: None,
            }),
            ..Volume::default()
        },
        MediatorStorage::Ephemeral => {
            Volume { name: "state".to_owned(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() }
        }
    };
    let container = Container {
        name: "mediator".to_owned(),
        image: Some(settings.image(component)),
        env: Some(
            vec![
                pod::env_field("POD_NAMESPACE", "metadata.namespace"),
                pod::env_field("POD_NAME", "metadata.name"),
                pod::env("CAUSELY_VICTORIA_METRICS_URL", settings.victoria_metrics_url()),
                pod::env("CAUSELY_STATE_DIR", STATE_DIR),
            ]
            .into_iter()
            .chain(settings.values.upstream.as_ref().map(|url| pod::env("CAUSELY_UPSTREAM_URL", url.clone())))
            .collect(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("api".to_owned()),
            container_port: ports::MEDIATOR_API,
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(pod::http_probe("/healthz", ports::MEDIATOR_API, 20)),
        readiness_probe: Some(pod::http_probe("/readyz", ports::MEDIATOR_API, 10)),
        resources: Some(pod::resources("100m", "128Mi", "512Mi")),
        security_context: Some(pod::restricted_container()),
        volume_mounts: Some(vec![VolumeMount {
            name: "state".to_owned(),
            mount_path: STATE_DIR.to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let pod_spec = PodSpec {
        security_context: Some(pod::restricted_pod()),
        containers: vec![container],
        volumes: Some(vec![state]),
        ..PodSpec::default()
    };
    Deployment {
        metadata: meta::namespaced(settings, component, meta::name(component)),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: meta::selector(component),
            // One writer of the ledger at a time: the old pod releases the volume before the new starts.
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".to_owned()), rolling_update: None }),
            template: pod::template(settings, component, pod_spec),
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}
