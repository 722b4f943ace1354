//! NetworkPolicies that hold the components to the published data paths: agents reach only the
//! mediator, VictoriaMetrics, DNS, the API server and their kubelet; VictoriaMetrics accepts only
//! agents and the mediator; the mediator reaches the API server, DNS, VictoriaMetrics and the
//! upstream; the executor reaches the API server, DNS and the mediator. Everything else is denied.
//!
//! NetworkPolicies work on addresses and ports, not host names: the API server, the kubelet and
//! the upstream are allowed by port to any address. What may leave through the upstream port is
//! enforced by the mediator's egress guard, not here.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::settings::{Settings, VictoriaMetrics};
use super::{meta, ports};
use crate::baseline::Component;

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort { port: Some(IntOrString::Int(port)), protocol: Some("TCP".to_owned()), end_port: None }
}

fn udp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort { port: Some(IntOrString::Int(port)), protocol: Some("UDP".to_owned()), end_port: None }
}

/// Pods of `component` in the install's namespace.
fn pods_of(component: Component) -> NetworkPolicyPeer {
    NetworkPolicyPeer { pod_selector: Some(meta::selector(component)), ..NetworkPolicyPeer::default() }
}

fn to(peers: Vec<NetworkPolicyPeer>, ports: Vec<NetworkPolicyPort>) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule { to: (!peers.is_empty()).then_some(peers), ports: Some(ports) }
}

fn from(peers: Vec<NetworkPolicyPeer>, ports: Vec<NetworkPolicyPort>) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule { from: Some(peers), ports: Some(ports) }
}

/// DNS anywhere in the cluster (the resolver's namespace and labels differ between distributions).
fn dns() -> NetworkPolicyEgressRule {
    let any_namespace =
        NetworkPolicyPeer { namespace_selector: Some(LabelSelector::default()), ..NetworkPolicyPeer::default() };
    to(vec![any_namespace], vec![udp(ports::DNS), tcp(ports::DNS)])
}

fn api_server() -> NetworkPolicyEgressRule {
    to(vec![], ports::API_SERVER.iter().map(|p| tcp(*p)).collect())
}

/// The port of an `http(s)://host[:port]/...` URL.
fn url_port(url: &str) -> i32 {
    let (default, rest) = match url.strip_prefix("https://") {
        Some(rest) => (443, rest),
        None => (80, url.strip_prefix("http://").unwrap_or(url)),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(default)
}

/// Egress to VictoriaMetrics: its pods when in-cluster, its port anywhere when external.
fn victoria_metrics(settings: &Settings) -> NetworkPolicyEgressRule {
    match &settings.victoria_metrics {
        VictoriaMetrics::InCluster => to(vec![pods_of(Component::VictoriaMetrics)], vec![tcp(ports::VICTORIA_METRICS)]),
        VictoriaMetrics::External(url) => to(vec![], vec![tcp(url_port(url))]),
    }
}

fn policy(
    settings: &Settings,
    component: Component,
    ingress: Vec<NetworkPolicyIngressRule>,
    egress: Vec<NetworkPolicyEgressRule>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta::namespaced(settings, component, meta::name(component)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(meta::selector(component)),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            // An empty list is omitted, not sent: the API server drops it, and sending it would make
            // every re-apply a change. With the policy type listed, no rules means deny.
            ingress: (!ingress.is_empty()).then_some(ingress),
            egress: (!egress.is_empty()).then_some(egress),
        }),
    }
}

/// Denies all traffic to and from every Causely pod that no other policy allows.
fn default_deny(settings: &Settings) -> NetworkPolicy {
    let mut metadata = meta::namespaced(settings, Component::Mediator, "causely-default-deny");
    if let Some(labels) = metadata.labels.as_mut() {
        labels.remove("app.kubernetes.io/name");
    }
    NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/part-of".to_owned(),
                    meta::PART_OF.to_owned(),
                )])),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: None,
            egress: None,
        }),
    }
}

pub fn policies(settings: &Settings) -> Vec<NetworkPolicy> {
    let mediator_api = || to(vec![pods_of(Component::Mediator)], vec![tcp(ports::MEDIATOR_API)]);
    let mut callers_of_mediator = vec![pods_of(Component::Agent)];
    if settings.executor.is_some() {
        callers_of_mediator.push(pods_of(Component::Executor));
    }
    let mut out = vec![
        default_deny(settings),
        policy(
            settings,
            Component::Agent,
            vec![],
            vec![
                mediator_api(),
                victoria_metrics(settings),
                dns(),
                api_server(),
                // The kubelet's /metrics and /metrics/cadvisor on the agent's own node.
                to(vec![], vec![tcp(ports::KUBELET)]),
            ],
        ),
        policy(
            settings,
            Component::Mediator,
            vec![from(callers_of_mediator, vec![tcp(ports::MEDIATOR_API)])],
            vec![
                victoria_metrics(settings),
                dns(),
                api_server(),
                // The upstream backend, over HTTPS.
                to(vec![], vec![tcp(settings.values.upstream.as_deref().map_or(443, url_port))]),
            ],
        ),
    ];
    if settings.victoria_metrics == VictoriaMetrics::InCluster {
        out.push(policy(
            settings,
            Component::VictoriaMetrics,
            vec![from(
                vec![pods_of(Component::Agent), pods_of(Component::Mediator)],
                vec![tcp(ports::VICTORIA_METRICS)],
            )],
            vec![],
        ));
    }
    if settings.executor.is_some() {
        out.push(policy(settings, Component::Executor, vec![], vec![mediator_api(), dns(), api_server()]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_ports_default_by_scheme() {
        assert_eq!(url_port("http://vm.monitoring:8428"), 8428);
        assert_eq!(url_port("https://vm.example.com/insert"), 443);
        assert_eq!(url_port("http://vm"), 80);
    }
}
