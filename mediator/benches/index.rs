//! Index benchmark: memory per indexed pod and the latency of applying one pod update.
//!
//! Applies `CAUSELY_BENCH_PODS` synthetic pods (default 150,000) spread over 1,000 Deployments and their
//! ReplicaSets, 500 nodes and 2,000 services, reads the resident set size before and after, then times single
//! `apply` calls of pod updates. For scale, it also times one detection pass and one topology build over the
//! whole index (periodic work, not per event). Run with `cargo bench -p causely-mediator --bench index`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use causely_mediator::index::{ClusterIndex, ClusterObject};
use causely_mediator::symptoms::{ClusterRules, detect};
use causely_mediator::topology::{CallTable, Topology};
use causely_model::UnixMillis;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStatus, Node, NodeCondition, NodeStatus,
    Pod, PodCondition, PodIP, PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

const DEPLOYMENTS: usize = 1_000;
const NODES: usize = 500;
const SERVICES: usize = 2_000;
const NAMESPACES: usize = 50;
const UPDATES: usize = 100_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn labels(pairs: &[(&str, String)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
}

fn meta(ns: &str, name: String) -> ObjectMeta {
    ObjectMeta { namespace: Some(ns.to_owned()), name: Some(name), ..ObjectMeta::default() }
}

fn namespace(deployment: usize) -> String {
    format!("team-{}", deployment % NAMESPACES)
}

fn hash(deployment: usize) -> String {
    format!("{:010x}", (deployment as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 24)
}

fn app_labels(deployment: usize) -> Vec<(&'static str, String)> {
    vec![
        ("app.kubernetes.io/name", format!("app-{deployment}")),
        ("app.kubernetes.io/part-of", format!("system-{}", deployment % 40)),
        ("app.kubernetes.io/version", "1.4.2".to_owned()),
        ("pod-template-hash", hash(deployment)),
    ]
}

fn owner(kind: &str, api_version: &str, name: String) -> Option<Vec<OwnerReference>> {
    Some(vec![OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name,
        uid: "0d6f6c1e-4a1b-4b36-9d1c-2f0a7c1e9b11".to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }])
}

fn container_status(name: &str, restarts: i32) -> ContainerStatus {
    ContainerStatus {
        name: name.to_owned(),
        image: format!("registry.example.com/{name}:1.4.2"),
        image_id: "sha256:4f1e0c".to_owned(),
        container_id: Some("containerd://4f1e0c0a2b".to_owned()),
        ready: true,
        restart_count: restarts,
        state: Some(ContainerState { running: Some(ContainerStateRunning { started_at: None }), ..Default::default() }),
        ..ContainerStatus::default()
    }
}

/// Pod `i`: owned by the ReplicaSet of deployment `i % DEPLOYMENTS`, two containers, one IP.
fn pod(i: usize, restarts: i32) -> Pod {
    let d = i % DEPLOYMENTS;
    let ns = namespace(d);
    let mut meta = meta(&ns, format!("app-{d}-{}-{:05x}", hash(d), i));
    meta.uid = Some(format!("{:08x}-4a1b-4b36-9d1c-{:012x}", i, i));
    meta.labels = labels(&app_labels(d));
    meta.owner_references = owner("ReplicaSet", "apps/v1", format!("app-{d}-{}", hash(d)));
    meta.creation_timestamp = Some(Time(Timestamp::from_second(1_700_000_000).unwrap_or_default()));
    let ip = format!("10.{}.{}.{}", 64 + (i >> 16) % 64, (i >> 8) & 0xff, i & 0xff);
    Pod {
        metadata: meta,
        spec: Some(PodSpec {
            node_name: Some(format!("node-{}", i % NODES)),
            containers: vec![
                Container {
                    name: "app".to_owned(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".to_owned()),
                        container_port: 8080,
                        ..ContainerPort::default()
                    }]),
                    ..Container::default()
                },
                Container { name: "istio-proxy".to_owned(), ..Container::default() },
            ],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![PodIP { ip }]),
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".to_owned(),
                status: "True".to_owned(),
                ..PodCondition::default()
            }]),
            container_statuses: Some(vec![container_status("app", restarts), container_status("istio-proxy", 0)]),
            ..PodStatus::default()
        }),
    }
}

fn apply_cluster_around_pods(index: &mut ClusterIndex) {
    for n in 0..NODES {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(format!("node-{n}")),
                labels: labels(&[("topology.kubernetes.io/zone", format!("zone-{}", n % 3))]),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".to_owned(),
                    status: "True".to_owned(),
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        };
        index.apply(&ClusterObject::from(node));
    }
    for d in 0..DEPLOYMENTS {
        let ns = namespace(d);
        let mut deployment_meta = meta(&ns, format!("app-{d}"));
        deployment_meta.labels = labels(&app_labels(d)[..3]);
        let deployment = Deployment {
            metadata: deployment_meta,
            spec: Some(DeploymentSpec {
                replicas: Some(150),
                selector: LabelSelector::default(),
                ..Default::default()
            }),
            status: Some(DeploymentStatus { available_replicas: Some(150), ..Default::default() }),
        };
        index.apply(&ClusterObject::from(deployment));
        let mut rs_meta = meta(&ns, format!("app-{d}-{}", hash(d)));
        rs_meta.labels = labels(&app_labels(d));
        rs_meta.owner_references = owner("Deployment", "apps/v1", format!("app-{d}"));
        index.apply(&ClusterObject::from(ReplicaSet { metadata: rs_meta, ..ReplicaSet::default() }));
    }
    for s in 0..SERVICES {
        let d = s % DEPLOYMENTS;
        let mut svc_meta = meta(&namespace(d), format!("svc-{s}"));
        svc_meta.labels = labels(&app_labels(d)[..2]);
        let service = Service {
            metadata: svc_meta,
            spec: Some(ServiceSpec {
                cluster_ip: Some(format!("10.96.{}.{}", s >> 8, s & 0xff)),
                selector: labels(&[("app.kubernetes.io/name", format!("app-{d}"))]),
                ports: Some(vec![ServicePort {
                    port: 80,
                    target_port: Some(IntOrString::String("http".to_owned())),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        index.apply(&ClusterObject::from(service));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

fn main() {
    let pods: usize = std::env::var("CAUSELY_BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(150_000);
    let mut index = ClusterIndex::new();
    apply_cluster_around_pods(&mut index);

    let before = rss_kib();
    for i in 0..pods {
        // Built, applied and dropped one at a time, so only the index's own records stay resident.
        index.apply(&ClusterObject::from(pod(i, 0)));
    }
    let after = rss_kib();
    let counts = index.counts();
    let per_pod = (after.saturating_sub(before) * 1024) as f64 / pods.max(1) as f64;
    println!(
        "pods indexed: {} (nodes {}, services {}, deployments {}, replicasets {}, interned strings {})",
        counts.pods, counts.nodes, counts.services, counts.deployments, counts.replica_sets, counts.interned_strings
    );
    println!("RSS before pods: {before} KiB, after: {after} KiB, growth per indexed pod: {per_pod:.0} B");

    let mut timings = Vec::with_capacity(UPDATES);
    for u in 0..UPDATES {
        let i = (u * 7_919) % pods.max(1);
        let update = ClusterObject::from(pod(i, 1 + (u / pods.max(1)) as i32));
        let start = Instant::now();
        index.apply(&update);
        timings.push(start.elapsed());
    }
    timings.sort_unstable();
    println!(
        "pod update apply over {UPDATES} calls: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        percentile(&timings, 0.50).as_secs_f64() * 1e6,
        percentile(&timings, 0.99).as_secs_f64() * 1e6,
        timings.last().copied().unwrap_or_default().as_secs_f64() * 1e6,
    );

    let start = Instant::now();
    let findings = detect(&index, UnixMillis(1_700_000_600_000), &ClusterRules::default());
    println!("detect over the index: {:.1} ms, {} findings", start.elapsed().as_secs_f64() * 1e3, findings.len());

    let before = rss_kib();
    let start = Instant::now();
    let topology = Topology::build(&index, &CallTable::new());
    let took = start.elapsed();
    println!(
        "topology build: {:.0} ms, {} entities, {} edges, RSS growth {} MiB",
        took.as_secs_f64() * 1e3,
        topology.entities.len(),
        topology.edges.len(),
        rss_kib().saturating_sub(before) / 1024,
    );
}
