//! The optional executor Deployment.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};

use super::settings::Settings;
use super::{meta, pod, ports};
use crate::baseline::Component;

pub fn deployment(settings: &Settings) -> Deployment {
    let component = Component::Executor;
    let container = Container {
        name: "executor".to_owned(),
        image: Some(settings.image(component)),
        env: Some(vec![pod::env("CAUSELY_MEDIATOR_URL", super::mediator::url(settings))]),
        ports: Some(vec![ContainerPort {
            name: Some("health".to_owned()),
            container_port: ports::EXECUTOR_HEALTH,
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(pod::http_probe("/healthz", ports::EXECUTOR_HEALTH, 20)),
        resources: Some(pod::resources("10m", "32Mi", "128Mi")),
        security_context: Some(pod::restricted_container()),
        ..Container::default()
    };
    let pod_spec =
        PodSpec { security_context: Some(pod::restricted_pod()), containers: vec![container], ..PodSpec::default() };
    Deployment {
        metadata: meta::namespaced(settings, component, meta::name(component)),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: meta::selector(component),
            template: pod::template(settings, component, pod_spec),
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}
