//! Small, fixed topologies and symptoms the `top` unit and snapshot tests share.

use causely_model::api::{EgressStatus, SymptomsView, TopologyView};
use causely_model::{
    Comparator, Edge, Entity, EntityId, Protocol, Relation, Severity, Symptom, SymptomId, SymptomKind, Threshold,
    UnixMillis, WorkloadKind,
};

use super::model::Store;

/// "Now" in the tests: 2023-11-14T22:13:20Z.
pub const NOW: UnixMillis = UnixMillis(1_700_000_000_000);

fn ids() -> (EntityId, EntityId, EntityId, EntityId) {
    (
        EntityId::workload(WorkloadKind::Deployment, "shop", "web"),
        EntityId::workload(WorkloadKind::ReplicaSet, "shop", "web-7d9f"),
        EntityId::workload(WorkloadKind::StatefulSet, "shop", "db"),
        EntityId::service("shop", "db"),
    )
}

/// Namespace `shop`: service `web` selecting two pods of deployment `web` (through a replica set),
/// service `db` selecting the stateful set's pod, web calling db; nodes n1 and n2.
pub fn shop_view() -> TopologyView {
    let (deploy, rs, sts, db_svc) = ids();
    let web_svc = EntityId::service("shop", "web");
    let mut entities = vec![
        Entity::new(EntityId::ns("shop")),
        Entity::new(EntityId::node("n1")).with_label("zone", "a"),
        Entity::new(EntityId::node("n2")),
        Entity::new(web_svc.clone()).with_label("app", "web"),
        Entity::new(db_svc.clone()),
        Entity::new(deploy.clone()).with_label("app", "web"),
        Entity::new(rs.clone()),
        Entity::new(sts.clone()),
    ];
    let mut edges = vec![
        Edge::new(rs.clone(), Relation::OwnedBy {}, deploy.clone()),
        Edge::new(deploy.clone(), Relation::Calls { port: 5432, protocol: Protocol::Tcp }, db_svc.clone()),
    ];
    for (pod, owner, node, container, service) in [
        ("web-1", &rs, "n1", "nginx", &web_svc),
        ("web-2", &rs, "n2", "nginx", &web_svc),
        ("db-0", &sts, "n1", "postgres", &db_svc),
    ] {
        let pod_id = EntityId::pod("shop", pod);
        let container_id = EntityId::container("shop", pod, container);
        entities.push(Entity::new(pod_id.clone()).with_label("app", pod.split('-').next().unwrap_or(pod)));
        entities.push(Entity::new(container_id.clone()));
        edges.push(Edge::new(pod_id.clone(), Relation::OwnedBy {}, owner.clone()));
        edges.push(Edge::new(pod_id.clone(), Relation::RunsOn {}, EntityId::node(node)));
        edges.push(Edge::new(container_id, Relation::RunsOn {}, pod_id.clone()));
        edges.push(Edge::new(service.clone(), Relation::Selects {}, pod_id));
    }
    TopologyView { entities, edges }
}

/// A node-not-ready symptom on `node`, opened at `started` ms.
pub fn node_not_ready(node: &str, started: u64) -> Symptom {
    let entity = EntityId::node(node);
    Symptom {
        id: SymptomId::of("k8s.node.ready", &entity, UnixMillis(started)),
        kind: SymptomKind::NodeNotReady,
        entity,
        severity: Severity::Critical,
        rule: "k8s.node.ready".into(),
        threshold: None,
        started: UnixMillis(started),
        resolved: None,
    }
}

/// A high-CPU symptom on a container, opened at `started` ms.
pub fn high_cpu(entity: EntityId, started: u64) -> Symptom {
    Symptom {
        id: SymptomId::of("agent.cpu.utilization", &entity, UnixMillis(started)),
        kind: SymptomKind::HighCpuUtilization,
        entity,
        severity: Severity::High,
        rule: "agent.cpu.utilization".into(),
        threshold: Some(Threshold {
            signal: "container_cpu_utilization".into(),
            comparator: Comparator::Above,
            bound: 0.9,
            window_seconds: 60,
        }),
        started: UnixMillis(started),
        resolved: None,
    }
}

/// The shop topology with no symptoms.
pub fn shop() -> Store {
    let mut store = Store::default();
    store.replace(shop_view(), SymptomsView::default());
    store
}

/// The shop topology with two open symptoms and one resolved, and an egress status.
pub fn shop_with_symptoms() -> Store {
    let mut store = Store::default();
    let cpu = high_cpu(EntityId::container("shop", "web-1", "nginx"), NOW.0 - 125_000);
    let node = node_not_ready("n2", NOW.0 - 30_000);
    let mut old = high_cpu(EntityId::container("shop", "db-0", "postgres"), NOW.0 - 7_200_000);
    old.resolved = Some(UnixMillis(NOW.0 - 3_600_000));
    store.replace(shop_view(), SymptomsView { open: vec![node, cpu], recent: vec![old] });
    store.set_egress(egress_status());
    store
}

pub fn egress_status() -> EgressStatus {
    EgressStatus {
        cluster_id: "prod-eu-1".into(),
        upstream: "https://ingest.example/v1".into(),
        leader: true,
        ledger_entries: 1_204,
        batches_accepted: 1_200,
        bytes_accepted: 3_456_789,
        batches_rejected: 3,
        batches_dropped: 1,
        delivered_seq: 1_198,
        next_seq: 1_201,
        pending_batches: 2,
        pending_bytes: 4_096,
        last_error: Some("upstream answered 503".into()),
        last_delivery: Some(UnixMillis(NOW.0 - 4_000)),
    }
}
