//! ClusterIP Services in front of a component's pods.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta;
use super::settings::Settings;
use crate::baseline::Component;

/// A Service named after `component`, forwarding `port` to the pods' container port `port_name`.
pub fn service(settings: &Settings, component: Component, port_name: &str, port: i32) -> Service {
    Service {
        metadata: meta::namespaced(settings, component, meta::name(component)),
        spec: Some(ServiceSpec {
            selector: Some(meta::selector_labels(component)),
            ports: Some(vec![ServicePort {
                name: Some(port_name.to_owned()),
                port,
                target_port: Some(IntOrString::String(port_name.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
