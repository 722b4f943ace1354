//! Reading an install's rollout from the cluster: each component's health, waiting for it, and
//! explaining why a component is not ready (scheduling, admission, image pulls, crashes).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::baseline::Component;
use crate::exit::{Failure, api_failure};
use crate::health::{self, ComponentHealth};
use crate::render::meta;
use crate::render::settings::{Settings, VictoriaMetrics};

/// The workloads an install with `settings` runs, with their kinds.
pub fn workloads(settings: &Settings) -> Vec<(Component, &'static str)> {
    let mut out = vec![(Component::Agent, "DaemonSet"), (Component::Mediator, "Deployment")];
    if settings.executor.is_some() {
        out.push((Component::Executor, "Deployment"));
    }
    if settings.victoria_metrics == VictoriaMetrics::InCluster {
        out.push((Component::VictoriaMetrics, "StatefulSet"));
    }
    out
}

fn unreachable(e: kube::Error) -> Failure {
    api_failure("cannot read the install's workloads", e)
}

/// Health of every workload of the install.
pub async fn health(client: &Client, settings: &Settings) -> Result<Vec<ComponentHealth>, Failure> {
    let ns = &settings.namespace;
    let now = Time(Timestamp::now());
    let version = &settings.version;
    let mut out = Vec::new();
    for (component, kind) in workloads(settings) {
        let name = meta::name(component);
        let h = match kind {
            "DaemonSet" => Api::<DaemonSet>::namespaced(client.clone(), ns)
                .get_opt(&name)
                .await
                .map_err(unreachable)?
                .map(|o| health::daemon_set(&o, version, &now)),
            "StatefulSet" => Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get_opt(&name)
                .await
                .map_err(unreachable)?
                .map(|o| health::stateful_set(&o, version, &now)),
            _ => Api::<Deployment>::namespaced(client.clone(), ns)
                .get_opt(&name)
                .await
                .map_err(unreachable)?
                .map(|o| health::deployment(component, &o, version, &now)),
        };
        out.push(h.unwrap_or_else(|| ComponentHealth::missing(component, kind, &name)));
    }
    Ok(out)
}

/// Polls until every component is healthy or `timeout` passes; `progress` sees each poll.
/// Returns the last health seen either way.
pub async fn wait(
    client: &Client,
    settings: &Settings,
    timeout: Duration,
    mut progress: impl FnMut(&[ComponentHealth]),
) -> Result<Vec<ComponentHealth>, Failure> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let current = health(client, settings).await?;
        progress(&current);
        if current.iter().all(ComponentHealth::healthy) || tokio::time::Instant::now() >= deadline {
            return Ok(current);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The most recent distinct warning events about a component's workload, its ReplicaSets and its
/// pods: why pods are not created (admission), not scheduled, not pulled or not running.
pub async fn explain(client: &Client, settings: &Settings, component: Component) -> Result<Vec<String>, Failure> {
    let events: Api<Event> = Api::namespaced(client.clone(), &settings.namespace);
    let list = events
        .list(&ListParams::default().fields("type=Warning"))
        .await
        .map_err(|e| api_failure("cannot read events", e))?;
    let prefix = meta::name(component);
    let mut relevant: Vec<&Event> = list
        .items
        .iter()
        .filter(|e| e.involved_object.name.as_deref().is_some_and(|n| n.starts_with(&prefix)))
        .collect();
    relevant.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)));
    let mut reasons: Vec<String> = Vec::new();
    for event in relevant.iter().rev() {
        let line = format!(
            "{} {}: {}",
            event.involved_object.kind.as_deref().unwrap_or("object"),
            event.involved_object.name.as_deref().unwrap_or_default(),
            crate::exit::one_line(event.message.as_deref().unwrap_or(event.reason.as_deref().unwrap_or("warning")))
        );
        if !reasons.contains(&line) {
            reasons.push(line);
        }
        if reasons.len() == 3 {
            break;
        }
    }
    Ok(reasons)
}
