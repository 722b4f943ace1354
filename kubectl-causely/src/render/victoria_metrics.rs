//! The in-cluster single-node VictoriaMetrics: a StatefulSet with its volume, and a Service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::settings::Settings;
use super::{meta, pod, ports};
use crate::baseline::Component;

const COMPONENT: Component = Component::VictoriaMetrics;

pub fn stateful_set(settings: &Settings) -> StatefulSet {
    let container = Container {
        name: "victoria-metrics".to_owned(),
        image: Some(settings.image(COMPONENT)),
        args: Some(vec![
            "-storageDataPath=/storage".to_owned(),
            format!("-httpListenAddr=:{}", ports::VICTORIA_METRICS),
            "-retentionPeriod=15d".to_owned(),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: ports::VICTORIA_METRICS,
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(pod::http_probe("/health", ports::VICTORIA_METRICS, 20)),
        readiness_probe: Some(pod::http_probe("/health", ports::VICTORIA_METRICS, 10)),
        resources: Some(pod::resources("100m", "256Mi", "1Gi")),
        security_context: Some(pod::restricted_container()),
        volume_mounts: Some(vec![VolumeMount {
            name: "storage".to_owned(),
            mount_path: "/storage".to_owned(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some("storage".to_owned()), ..ObjectMeta::default() },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity("10Gi".to_owned()))])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    };
    let pod_spec = PodSpec {
        automount_service_account_token: Some(false),
        security_context: Some(pod::restricted_pod()),
        containers: vec![container],
        ..PodSpec::default()
    };
    StatefulSet {
        metadata: meta::namespaced(settings, COMPONENT, meta::name(COMPONENT)),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(meta::name(COMPONENT)),
            selector: meta::selector(COMPONENT),
            template: pod::template(settings, COMPONENT, pod_spec),
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}
