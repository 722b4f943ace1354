//! Names, labels and metadata shared by every rendered object.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::settings::Settings;
use crate::baseline::Component;

pub const PART_OF: &str = "causely";
pub const MANAGED_BY: &str = "kubectl-causely";

/// `causely-<component>`: the name of the component's workload, ServiceAccount, ClusterRole, ...
pub fn name(component: Component) -> String {
    format!("causely-{}", component.name())
}

/// Labels that select a component's pods; stable across releases (a selector is immutable).
pub fn selector_labels(component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/part-of".to_owned(), PART_OF.to_owned()),
        ("app.kubernetes.io/name".to_owned(), component.name().to_owned()),
    ])
}

pub fn selector(component: Component) -> LabelSelector {
    LabelSelector { match_labels: Some(selector_labels(component)), match_expressions: None }
}

/// Every label an object of `component` carries.
pub fn labels(settings: &Settings, component: Component) -> BTreeMap<String, String> {
    let mut labels = selector_labels(component);
    labels.insert("app.kubernetes.io/managed-by".to_owned(), MANAGED_BY.to_owned());
    labels.insert("app.kubernetes.io/version".to_owned(), settings.version.clone());
    labels
}

/// Metadata of a namespaced object of `component`.
pub fn namespaced(settings: &Settings, component: Component, name: impl Into<String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(settings.namespace.clone()),
        labels: Some(labels(settings, component)),
        ..ObjectMeta::default()
    }
}

/// Metadata of a cluster-scoped object of `component`.
pub fn cluster_scoped(settings: &Settings, component: Component, name: impl Into<String>) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), labels: Some(labels(settings, component)), ..ObjectMeta::default() }
}
