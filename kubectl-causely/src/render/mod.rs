//! Rendering: settings and the permission baseline in, the typed Kubernetes objects of a release
//! out, in the order they must be applied. Pure: no cluster access.

pub mod agent;
pub mod digests;
pub mod executor;
pub mod mediator;
pub mod meta;
pub mod network;
pub mod pod;
pub mod ports;
pub mod rbac;
pub mod service;
pub mod settings;
pub mod values;
pub mod victoria_metrics;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use serde::Serialize;

use crate::baseline::{Baseline, Component};
use settings::{Settings, SettingsError, VictoriaMetrics};

/// One rendered object, ready to apply or print.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The whole object, including `apiVersion` and `kind`.
    pub object: serde_json::Value,
}

impl Manifest {
    pub fn of<K>(object: &K) -> Manifest
    where
        K: k8s_openapi::Resource
            + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
            + Serialize,
    {
        let meta = object.metadata();
        Manifest {
            api_version: K::API_VERSION.to_owned(),
            kind: K::KIND.to_owned(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            // k8s-openapi objects always serialize; a failure here is a bug in a type, not input.
            object: serde_json::to_value(object).unwrap_or(serde_json::Value::Null),
        }
    }

    /// A manifest from an object read back (e.g. from the install record).
    pub fn from_value(object: serde_json::Value) -> Result<Manifest, String> {
        let text = |pointer: &str| object.pointer(pointer).and_then(|v| v.as_str()).map(str::to_owned);
        let api_version = text("/apiVersion").ok_or("an object has no apiVersion")?;
        let kind = text("/kind").ok_or("an object has no kind")?;
        let name = text("/metadata/name").ok_or("an object has no name")?;
        let namespace = text("/metadata/namespace");
        Ok(Manifest { api_version, kind, namespace, name, object })
    }

    /// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// The install's namespace. It admits the agent, which needs host access in either posture, so it
/// enforces "privileged"; it audits against "restricted", which every other component meets.
fn namespace(settings: &Settings) -> Namespace {
    let mut metadata = meta::cluster_scoped(settings, Component::Mediator, settings.namespace.clone());
    if let Some(labels) = metadata.labels.as_mut() {
        labels.remove("app.kubernetes.io/name");
        labels.insert("pod-security.kubernetes.io/enforce".to_owned(), "privileged".to_owned());
        labels.insert("pod-security.kubernetes.io/audit".to_owned(), "restricted".to_owned());
    }
    Namespace { metadata, ..Namespace::default() }
}

/// Every object of the release for `settings`, in apply order: the namespace, identities and
/// permissions, network policies, storage and services, then workloads.
pub fn render(settings: &Settings, baseline: &Baseline) -> Result<Vec<Manifest>, SettingsError> {
    settings.validate()?;
    let in_cluster_vm = settings.victoria_metrics == VictoriaMetrics::InCluster;
    let mut components = vec![Component::Agent, Component::Mediator];
    if settings.executor.is_some() {
        components.push(Component::Executor);
    }
    if in_cluster_vm {
        components.push(Component::VictoriaMetrics);
    }

    let mut out = vec![Manifest::of(&namespace(settings))];
    out.extend(components.iter().map(|c| Manifest::of(&rbac::service_account(settings, *c))));
    let (roles, bindings) = rbac::cluster_rbac(settings, baseline);
    out.extend(roles.iter().map(Manifest::of));
    out.extend(bindings.iter().map(Manifest::of));
    let (role, binding) = rbac::mediator_lease_role(settings);
    out.push(Manifest::of(&role));
    out.push(Manifest::of(&binding));
    out.extend(network::policies(settings).iter().map(Manifest::of));
    if let Some(claim) = mediator::state_claim(settings) {
        out.push(Manifest::of(&claim));
    }
    out.push(Manifest::of(&service::service(settings, Component::Mediator, "api", ports::MEDIATOR_API)));
    if in_cluster_vm {
        out.push(Manifest::of(&service::service(
            settings,
            Component::VictoriaMetrics,
            "http",
            ports::VICTORIA_METRICS,
        )));
        out.push(Manifest::of(&victoria_metrics::stateful_set(settings)));
    }
    out.push(Manifest::of(&mediator::deployment(settings)));
    if settings.executor.is_some() {
        out.push(Manifest::of(&executor::deployment(settings)));
    }
    out.push(Manifest::of(&agent::daemon_set(settings)));
    Ok(out)
}

/// Output formats of a rendered release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// One object as YAML, long single-line strings kept on their line (as kubectl prints them): an image
/// pinned by digest is longer than the 80 columns after which serde-saphyr would fold it into a `>-`
/// block, which reads badly and would not strip back to the unpinned text `manifests/` keeps.
pub fn to_yaml(value: &serde_json::Value) -> Result<String, String> {
    let options = serde_saphyr::ser_options! { folded_wrap_chars: usize::MAX };
    serde_saphyr::to_string_with_options(value, options).map_err(|e| e.to_string())
}

/// Prints the manifests: YAML as a multi-document stream, JSON as a `v1/List`.
pub fn print(manifests: &[Manifest], format: Format) -> Result<String, String> {
    match format {
        Format::Yaml => {
            let mut out = String::new();
            for manifest in manifests {
                out.push_str("---\n");
                out.push_str(&to_yaml(&manifest.object)?);
            }
            Ok(out)
        }
        Format::Json => {
            let list = serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": manifests.iter().map(|m| &m.object).collect::<Vec<_>>(),
            });
            serde_json::to_string_pretty(&list).map(|s| s + "\n").map_err(|e| e.to_string())
        }
    }
}

/// Counts of rendered objects by kind, for summaries.
pub fn kinds(manifests: &[Manifest]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for m in manifests {
        *counts.entry(m.kind.as_str()).or_insert(0) += 1;
    }
    counts
}
