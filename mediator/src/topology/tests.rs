//! Tests of the topology build, the call join and deltas.

use causely_model::{
    ConnectionObservation, Direction, Edge, EntityId, PeerAddr, Protocol, Relation, TopologyPayload, UnixMillis,
    WorkloadKind,
};
use serde_json::json;

use super::*;
use crate::index::fixtures::*;
use crate::index::{ClusterIndex, ObjectKind};

const NOW: UnixMillis = UnixMillis(1_700_000_000_000);

fn deploy(ns: &str, name: &str) -> EntityId {
    EntityId::workload(WorkloadKind::Deployment, ns, name)
}

fn svc(ns: &str, name: &str) -> EntityId {
    EntityId::service(ns, name)
}

fn tcp(port: u16) -> Relation {
    Relation::Calls { port, protocol: Protocol::Tcp }
}

fn web_pod(name: &str, ip: &str, node: &str) -> Fixture {
    pod("shop", name)
        .uid(&format!("u-{name}"))
        .ip(ip)
        .on_node(node)
        .labels(&[("app", "web"), ("pod-template-hash", "abc")])
        .owned_by("ReplicaSet", "web-abc")
        .named_port("http", 8080)
}

/// shop: Deployment web (two pods behind Service web :80 → "http" 8080), Deployment api (one pod behind Service
/// api :90 → 9000), a bare pod `debug`; db: StatefulSet pg behind Service pg :5432.
fn cluster() -> ClusterIndex {
    let mut index = ClusterIndex::new();
    for object in [
        node("n1"),
        node("n2"),
        deployment("shop", "web").labels(&[("app", "web")]),
        replica_set("shop", "web-abc").owned_by("Deployment", "web"),
        web_pod("web-abc-1", "10.0.0.1", "n1"),
        web_pod("web-abc-2", "10.0.0.2", "n2"),
        deployment("shop", "api"),
        replica_set("shop", "api-def").owned_by("Deployment", "api"),
        pod("shop", "api-def-1")
            .uid("u-api")
            .ip("10.0.1.1")
            .on_node("n1")
            .labels(&[("app", "api")])
            .owned_by("ReplicaSet", "api-def"),
        pod("shop", "debug").uid("u-debug").ip("10.0.2.1").on_node("n1"),
        service("shop", "web")
            .labels(&[("team", "shop")])
            .selector(&[("app", "web")])
            .cluster_ip("10.96.0.10")
            .port(80, json!("http")),
        service("shop", "api").selector(&[("app", "api")]).cluster_ip("10.96.0.20").port(90, json!(9000)),
        stateful_set("db", "pg"),
        pod("db", "pg-0")
            .uid("u-pg")
            .ip("10.0.3.1")
            .on_node("n2")
            .labels(&[("app", "pg")])
            .owned_by("StatefulSet", "pg"),
        service("db", "pg").selector(&[("app", "pg")]).cluster_ip("10.96.0.30").port(5432, json!(5432)),
    ] {
        index.apply(&object.build());
    }
    index
}

fn observation(
    uid: Option<&str>,
    local: (&str, u16),
    remote: (&str, u16),
    direction: Direction,
) -> ConnectionObservation {
    ConnectionObservation {
        local: PeerAddr { ip: local.0.parse().unwrap(), port: local.1 },
        remote: PeerAddr { ip: remote.0.parse().unwrap(), port: remote.1 },
        direction,
        protocol: Protocol::Tcp,
        pod_uid: uid.map(str::to_owned),
        container_id: None,
        established: 3,
        failed: 0,
    }
}

fn web_calls_api_service() -> ConnectionObservation {
    observation(Some("u-web-abc-1"), ("10.0.0.1", 40_000), ("10.96.0.20", 90), Direction::Outbound)
}

fn call_edges(topology: &Topology) -> BTreeSet<Edge> {
    topology.edges.iter().filter(|e| matches!(e.relation, Relation::Calls { .. })).cloned().collect()
}

fn edge(from: EntityId, relation: Relation, to: EntityId) -> Edge {
    Edge::new(from, relation, to)
}

#[test]
fn the_topology_holds_every_kind_of_entity_with_its_labels() {
    let topology = Topology::build(&cluster(), &CallTable::new());
    for id in [
        EntityId::node("n1"),
        EntityId::ns("shop"),
        EntityId::ns("db"),
        EntityId::pod("shop", "web-abc-1"),
        EntityId::container("shop", "web-abc-1", "app"),
        svc("shop", "web"),
        deploy("shop", "web"),
        EntityId::workload(WorkloadKind::ReplicaSet, "shop", "web-abc"),
        EntityId::workload(WorkloadKind::StatefulSet, "db", "pg"),
    ] {
        assert!(topology.entities.contains_key(&id), "{id} missing");
    }
    let web_pod = &topology.entities[&EntityId::pod("shop", "web-abc-1")];
    assert_eq!(web_pod.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(topology.entities[&svc("shop", "web")].labels.get("team").map(String::as_str), Some("shop"));
    assert!(topology.entities[&EntityId::ns("shop")].labels.is_empty());
}

#[test]
fn structural_edges_link_containers_pods_nodes_owners_and_services() {
    let topology = Topology::build(&cluster(), &CallTable::new());
    let pod = EntityId::pod("shop", "web-abc-1");
    let rs = EntityId::workload(WorkloadKind::ReplicaSet, "shop", "web-abc");
    for expected in [
        edge(EntityId::container("shop", "web-abc-1", "app"), Relation::RunsOn {}, pod.clone()),
        edge(pod.clone(), Relation::RunsOn {}, EntityId::node("n1")),
        edge(pod.clone(), Relation::OwnedBy {}, rs.clone()),
        edge(rs, Relation::OwnedBy {}, deploy("shop", "web")),
        edge(svc("shop", "web"), Relation::Selects {}, pod),
        edge(svc("shop", "web"), Relation::Selects {}, EntityId::pod("shop", "web-abc-2")),
        edge(svc("db", "pg"), Relation::Selects {}, EntityId::pod("db", "pg-0")),
    ] {
        assert!(topology.edges.contains(&expected), "{expected} missing");
    }
    let selects: Vec<&Edge> = topology.edges.iter().filter(|e| e.relation == Relation::Selects {}).collect();
    assert_eq!(selects.len(), 4, "{selects:?}");
    assert!(call_edges(&topology).is_empty());
}

#[test]
fn an_edge_to_an_owner_not_yet_indexed_is_left_out() {
    let mut index = ClusterIndex::new();
    index.apply(&pod("shop", "orphan").owned_by("ReplicaSet", "gone").on_node("n-missing").build());
    let topology = Topology::build(&index, &CallTable::new());
    assert!(topology.entities.contains_key(&EntityId::pod("shop", "orphan")));
    let pod_edges: Vec<&Edge> = topology.edges.iter().filter(|e| e.from == EntityId::pod("shop", "orphan")).collect();
    assert!(pod_edges.is_empty(), "{pod_edges:?}");
}

#[test]
fn an_outbound_call_to_a_cluster_ip_links_the_workloads_and_the_services() {
    let index = cluster();
    let mut table = CallTable::new();
    let outcome = table.observe(&index, "n1", &web_calls_api_service(), NOW);
    assert_eq!(outcome, JoinOutcome::Joined { calls: 2 });
    let topology = Topology::build(&index, &table);
    assert_eq!(
        call_edges(&topology),
        BTreeSet::from([
            edge(deploy("shop", "web"), tcp(9000), deploy("shop", "api")),
            edge(svc("shop", "web"), tcp(90), svc("shop", "api")),
        ])
    );
    assert_eq!(table.stats().joined, 1);
}

#[test]
fn the_server_side_observation_gives_the_same_edges_as_the_client_side() {
    let index = cluster();
    let mut client_side = CallTable::new();
    client_side.observe(&index, "n1", &web_calls_api_service(), NOW);
    let mut server_side = CallTable::new();
    let inbound = observation(Some("u-api"), ("10.0.1.1", 9000), ("10.0.0.1", 40_000), Direction::Inbound);
    assert!(matches!(server_side.observe(&index, "n1", &inbound, NOW), JoinOutcome::Joined { .. }));
    let server_edges = call_edges(&Topology::build(&index, &server_side));
    assert_eq!(server_edges, call_edges(&Topology::build(&index, &client_side)));
    assert_eq!(server_edges.len(), 2);
}

#[test]
fn a_call_straight_to_a_pod_ip_uses_the_container_port_and_the_services_in_front_of_it() {
    let index = cluster();
    let mut table = CallTable::new();
    // Located by local IP: this agent could not read the pod UID.
    let direct = observation(None, ("10.0.0.2", 40_000), ("10.0.3.1", 5432), Direction::Outbound);
    assert_eq!(table.observe(&index, "n2", &direct, NOW), JoinOutcome::Joined { calls: 2 });
    assert_eq!(
        call_edges(&Topology::build(&index, &table)),
        BTreeSet::from([
            edge(deploy("shop", "web"), tcp(5432), EntityId::workload(WorkloadKind::StatefulSet, "db", "pg")),
            edge(svc("shop", "web"), tcp(5432), svc("db", "pg")),
        ])
    );
}

#[test]
fn a_pod_no_workload_controls_stands_in_for_its_workload() {
    let index = cluster();
    let mut table = CallTable::new();
    let from_debug = observation(Some("u-debug"), ("10.0.2.1", 40_000), ("10.96.0.10", 80), Direction::Outbound);
    table.observe(&index, "n1", &from_debug, NOW);
    assert_eq!(
        call_edges(&Topology::build(&index, &table)),
        BTreeSet::from([edge(EntityId::pod("shop", "debug"), tcp(8080), deploy("shop", "web"))]),
        "a service call lands on the workload behind it, on the named port's number; debug has no services"
    );
}

#[test]
fn an_address_outside_the_cluster_gives_no_edge() {
    let index = cluster();
    let mut table = CallTable::new();
    let external = observation(Some("u-web-abc-1"), ("10.0.0.1", 40_000), ("93.184.216.34", 443), Direction::Outbound);
    assert_eq!(table.observe(&index, "n1", &external, NOW), JoinOutcome::RemoteUnresolved);
    let wrong_port = observation(Some("u-web-abc-1"), ("10.0.0.1", 40_000), ("10.96.0.20", 91), Direction::Outbound);
    assert_eq!(table.observe(&index, "n1", &wrong_port, NOW), JoinOutcome::RemoteUnresolved);
    let from_outside = observation(Some("u-api"), ("10.0.1.1", 9000), ("192.168.7.7", 50_000), Direction::Inbound);
    assert_eq!(table.observe(&index, "n1", &from_outside, NOW), JoinOutcome::RemoteUnresolved);
    assert!(table.is_empty());
    assert_eq!(table.stats().remote_unresolved, 3);
    assert!(call_edges(&Topology::build(&index, &table)).is_empty());
    let topology = Topology::build(&index, &table);
    assert!(topology.entities.keys().all(|id| index.contains(id)), "no entity was invented");
}

#[test]
fn an_unknown_local_side_or_one_on_another_node_gives_no_edge() {
    let index = cluster();
    let mut table = CallTable::new();
    let unknown = observation(Some("u-nobody"), ("10.9.9.9", 40_000), ("10.96.0.20", 90), Direction::Outbound);
    assert_eq!(table.observe(&index, "n1", &unknown, NOW), JoinOutcome::LocalUnresolved);
    assert_eq!(table.observe(&index, "n2", &web_calls_api_service(), NOW), JoinOutcome::LocalOnOtherNode);
    assert!(table.is_empty());
    let stats = table.stats();
    assert_eq!((stats.local_unresolved, stats.local_on_other_node, stats.joined), (1, 1, 0));
}

#[test]
fn failed_connections_still_show_the_dependency_and_an_empty_observation_shows_nothing() {
    let index = cluster();
    let mut table = CallTable::new();
    let mut failing = web_calls_api_service();
    failing.established = 0;
    failing.failed = 4;
    assert!(matches!(table.observe(&index, "n1", &failing, NOW), JoinOutcome::Joined { .. }));
    assert_eq!(call_edges(&Topology::build(&index, &table)).len(), 2);

    let mut empty_table = CallTable::new();
    failing.failed = 0;
    assert_eq!(empty_table.observe(&index, "n1", &failing, NOW), JoinOutcome::NoConnections);
    assert!(empty_table.is_empty());
}

#[test]
fn calls_not_seen_within_the_ttl_expire() {
    let index = cluster();
    let mut table = CallTable::new();
    table.observe(&index, "n1", &web_calls_api_service(), UnixMillis(1_000));
    let to_pg = observation(Some("u-web-abc-1"), ("10.0.0.1", 40_001), ("10.96.0.30", 5432), Direction::Outbound);
    table.observe(&index, "n1", &to_pg, UnixMillis(50_000));
    table.expire(UnixMillis(61_000), 60_000);
    assert_eq!(call_edges(&Topology::build(&index, &table)).len(), 4, "both still within the ttl");
    table.expire(UnixMillis(61_001), 60_000);
    let left = call_edges(&Topology::build(&index, &table));
    assert!(
        left.iter()
            .all(|e| e.to == svc("db", "pg") || e.to == EntityId::workload(WorkloadKind::StatefulSet, "db", "pg"))
    );
    assert_eq!(left.len(), 2);
}

#[test]
fn a_call_to_a_service_follows_its_backends_as_they_change() {
    let mut index = cluster();
    let mut table = CallTable::new();
    table.observe(&index, "n1", &web_calls_api_service(), NOW);
    for object in [
        deployment("shop", "api-canary"),
        replica_set("shop", "api-canary-1").owned_by("Deployment", "api-canary"),
        pod("shop", "api-canary-1-x").ip("10.0.1.9").labels(&[("app", "api")]).owned_by("ReplicaSet", "api-canary-1"),
    ] {
        index.apply(&object.build());
    }
    let edges = call_edges(&Topology::build(&index, &table));
    assert!(edges.contains(&edge(deploy("shop", "web"), tcp(9000), deploy("shop", "api-canary"))), "{edges:?}");
    assert!(edges.contains(&edge(deploy("shop", "web"), tcp(9000), deploy("shop", "api"))));
}

#[test]
fn updating_and_deleting_a_pod_changes_the_topology() {
    let mut index = cluster();
    index.apply(&web_pod("web-abc-1", "10.0.0.1", "n2").labels(&[("app", "web-v2")]).build());
    let topology = Topology::build(&index, &CallTable::new());
    let moved = EntityId::pod("shop", "web-abc-1");
    assert!(topology.edges.contains(&edge(moved.clone(), Relation::RunsOn {}, EntityId::node("n2"))));
    assert!(!topology.edges.contains(&edge(moved.clone(), Relation::RunsOn {}, EntityId::node("n1"))));
    assert!(!topology.edges.contains(&edge(svc("shop", "web"), Relation::Selects {}, moved.clone())));

    index.delete(&pod("shop", "web-abc-1").uid("u-web-abc-1").build());
    let topology = Topology::build(&index, &CallTable::new());
    assert!(!topology.entities.contains_key(&moved));
    assert!(!topology.entities.contains_key(&EntityId::container("shop", "web-abc-1", "app")));
    assert!(topology.edges.iter().all(|e| e.from != moved && e.to != moved));
}

#[test]
fn a_delta_applied_to_the_previous_topology_gives_the_current_one() {
    let mut index = cluster();
    let mut table = CallTable::new();
    let previous = Topology::build(&index, &table);

    index.delete(&pod("shop", "debug").uid("u-debug").build());
    index.apply(&node("n1").labels(&[("zone", "b")]).build());
    index.apply(&service("shop", "extra").selector(&[("app", "api")]).build());
    index.replace(ObjectKind::StatefulSet, &[]);
    table.observe(&index, "n1", &web_calls_api_service(), NOW);
    let current = Topology::build(&index, &table);

    let delta = current.delta_since(&previous);
    let TopologyPayload::Delta { added_entities, removed_entities, added_edges, removed_edges } = &delta else {
        panic!("not a delta: {delta:?}")
    };
    assert!(added_entities.iter().any(|e| e.id == EntityId::node("n1")), "a relabelled entity is added again");
    assert!(!added_entities.iter().any(|e| e.id == EntityId::node("n2")), "an unchanged one is not");
    assert!(removed_entities.contains(&EntityId::pod("shop", "debug")));
    assert!(added_edges.contains(&edge(deploy("shop", "web"), tcp(9000), deploy("shop", "api"))));
    assert!(removed_edges.iter().any(|e| e.from == EntityId::pod("shop", "debug")));

    let mut replayed = previous.clone();
    replayed.apply_payload(&delta);
    assert_eq!(replayed, current);

    let mut from_nothing = Topology::default();
    from_nothing.apply_payload(&current.snapshot());
    assert_eq!(from_nothing, current);
    assert!(current.delta_since(&current).is_empty());
}

#[test]
fn a_service_selects_only_the_pods_that_carry_its_whole_selector() {
    let mut index = ClusterIndex::new();
    for (name, app, tier) in [("a", "web", "front"), ("b", "web", "back"), ("c", "api", "front"), ("d", "api", "back")]
    {
        index.apply(&pod("shop", name).labels(&[("app", app), ("tier", tier)]).build());
    }
    index.apply(&service("shop", "web-front").selector(&[("app", "web"), ("tier", "front")]).build());
    index.apply(&service("shop", "none").selector(&[("app", "db")]).build());
    index.apply(&service("shop", "manual").build());
    let topology = Topology::build(&index, &CallTable::new());
    let selects: BTreeSet<Edge> =
        topology.edges.iter().filter(|e| e.relation == Relation::Selects {}).cloned().collect();
    assert_eq!(
        selects,
        BTreeSet::from([edge(svc("shop", "web-front"), Relation::Selects {}, EntityId::pod("shop", "a"))])
    );
    assert_eq!(index.pods_selected_by(&svc("shop", "web-front")), vec![EntityId::pod("shop", "a")]);
}
