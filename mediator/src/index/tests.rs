//! Tests of the cluster index: apply object literals, assert the lookups.

use causely_model::{EntityId, WorkloadKind};
use serde_json::json;

use super::fixtures::*;
use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn index_of(objects: Vec<Fixture>) -> ClusterIndex {
    let mut index = ClusterIndex::new();
    for object in objects {
        index.apply(&object.build());
    }
    index
}

fn workload(kind: WorkloadKind, ns: &str, name: &str) -> EntityId {
    EntityId::workload(kind, ns, name)
}

#[test]
fn a_pod_is_found_by_its_ip_and_by_its_uid() {
    let index = index_of(vec![pod("shop", "web-1").uid("u-1").ip("10.0.0.5")]);
    assert_eq!(index.pod_by_ip(ip("10.0.0.5")), Some(EntityId::pod("shop", "web-1")));
    assert_eq!(index.pod_by_uid("u-1"), Some(EntityId::pod("shop", "web-1")));
    assert_eq!(index.pod_by_ip(ip("10.0.0.6")), None);
    assert_eq!(index.pod_by_uid("u-2"), None);
}

#[test]
fn a_dual_stack_pod_is_found_by_either_address() {
    let index = index_of(vec![pod("shop", "web-1").ip("10.0.0.5").ip("fd00::5")]);
    assert_eq!(index.pod_by_ip(ip("fd00::5")), Some(EntityId::pod("shop", "web-1")));
    assert_eq!(index.pod_by_ip(ip("10.0.0.5")), Some(EntityId::pod("shop", "web-1")));
}

#[test]
fn a_host_network_pod_is_indexed_but_never_answers_for_its_ip() {
    let index = index_of(vec![pod("kube-system", "proxy").uid("u-p").ip("192.168.1.10").host_network()]);
    assert_eq!(index.pod_by_ip(ip("192.168.1.10")), None);
    assert_eq!(index.pod_by_uid("u-p"), Some(EntityId::pod("kube-system", "proxy")));
    assert!(index.contains(&EntityId::pod("kube-system", "proxy")));
}

#[test]
fn a_finished_pod_no_longer_answers_for_its_ip() {
    let mut index = index_of(vec![pod("batch", "run-1").ip("10.0.0.9")]);
    assert!(index.pod_by_ip(ip("10.0.0.9")).is_some());
    index.apply(&pod("batch", "run-1").ip("10.0.0.9").phase("Succeeded").build());
    assert_eq!(index.pod_by_ip(ip("10.0.0.9")), None);
}

#[test]
fn updating_a_pod_moves_its_ip_lookup_to_the_new_address() {
    let mut index = index_of(vec![pod("shop", "web-1").ip("10.0.0.5")]);
    index.apply(&pod("shop", "web-1").ip("10.0.0.7").build());
    assert_eq!(index.pod_by_ip(ip("10.0.0.5")), None);
    assert_eq!(index.pod_by_ip(ip("10.0.0.7")), Some(EntityId::pod("shop", "web-1")));
    assert_eq!(index.counts().pods, 1);
}

#[test]
fn deleting_a_pod_removes_it_from_every_lookup() {
    let web = pod("shop", "web-1").uid("u-1").ip("10.0.0.5");
    let mut index = index_of(vec![web.clone()]);
    index.delete(&web.build());
    assert_eq!(index.pod_by_ip(ip("10.0.0.5")), None);
    assert_eq!(index.pod_by_uid("u-1"), None);
    assert!(!index.contains(&EntityId::pod("shop", "web-1")));
    assert!(!index.contains(&EntityId::ns("shop")), "an emptied namespace is dropped");
    assert_eq!(index.counts().pods, 0);
}

#[test]
fn a_late_delete_of_an_earlier_pod_with_the_same_name_keeps_its_successor() {
    let mut index = index_of(vec![pod("db", "pg-0").uid("new").ip("10.0.0.8")]);
    index.delete(&pod("db", "pg-0").uid("old").build());
    assert_eq!(index.pod_by_uid("new"), Some(EntityId::pod("db", "pg-0")));
    assert_eq!(index.pod_by_ip(ip("10.0.0.8")), Some(EntityId::pod("db", "pg-0")));
}

#[test]
fn an_ip_taken_over_by_a_new_pod_survives_the_old_pods_removal() {
    let old = pod("shop", "old").ip("10.0.0.5");
    let mut index = index_of(vec![old.clone(), pod("shop", "new").ip("10.0.0.5")]);
    index.delete(&old.build());
    assert_eq!(index.pod_by_ip(ip("10.0.0.5")), Some(EntityId::pod("shop", "new")));
}

#[test]
fn a_pod_owned_by_a_replicaset_resolves_to_its_deployment() {
    let index = index_of(vec![
        deployment("shop", "web"),
        replica_set("shop", "web-7d9f8").owned_by("Deployment", "web"),
        pod("shop", "web-7d9f8-abcde").owned_by("ReplicaSet", "web-7d9f8"),
    ]);
    let pod_id = EntityId::pod("shop", "web-7d9f8-abcde");
    assert_eq!(
        index.owner_chain(&pod_id),
        vec![
            workload(WorkloadKind::ReplicaSet, "shop", "web-7d9f8"),
            workload(WorkloadKind::Deployment, "shop", "web")
        ]
    );
    assert_eq!(index.workload_of(&pod_id), Some(workload(WorkloadKind::Deployment, "shop", "web")));
}

#[test]
fn a_job_pod_resolves_to_its_cronjob() {
    let index = index_of(vec![
        cron_job("batch", "report", "0 * * * *"),
        job("batch", "report-28").owned_by("CronJob", "report"),
        pod("batch", "report-28-x").owned_by("Job", "report-28"),
    ]);
    assert_eq!(
        index.owner_chain(&EntityId::pod("batch", "report-28-x")),
        vec![workload(WorkloadKind::Job, "batch", "report-28"), workload(WorkloadKind::CronJob, "batch", "report")]
    );
}

#[test]
fn statefulset_daemonset_and_replicationcontroller_pods_resolve_to_them_directly() {
    let index = index_of(vec![
        stateful_set("db", "pg"),
        pod("db", "pg-0").owned_by("StatefulSet", "pg"),
        daemon_set("db", "agent"),
        pod("db", "agent-x").owned_by("DaemonSet", "agent"),
        replication_controller("db", "legacy"),
        pod("db", "legacy-y").owned_by("ReplicationController", "legacy"),
    ]);
    assert_eq!(index.workload_of(&EntityId::pod("db", "pg-0")), Some(workload(WorkloadKind::StatefulSet, "db", "pg")));
    assert_eq!(
        index.workload_of(&EntityId::pod("db", "agent-x")),
        Some(workload(WorkloadKind::DaemonSet, "db", "agent"))
    );
    assert_eq!(
        index.workload_of(&EntityId::pod("db", "legacy-y")),
        Some(workload(WorkloadKind::ReplicationController, "db", "legacy"))
    );
}

#[test]
fn the_direct_owner_is_named_even_before_it_is_indexed() {
    let index = index_of(vec![pod("shop", "web-x").owned_by("ReplicaSet", "web-7d9f8")]);
    assert_eq!(
        index.workload_of(&EntityId::pod("shop", "web-x")),
        Some(workload(WorkloadKind::ReplicaSet, "shop", "web-7d9f8"))
    );
}

#[test]
fn only_a_controlling_owner_of_a_known_api_group_is_followed() {
    let index = index_of(vec![
        pod("kube-system", "etcd-n1").owner_ref("v1", "Node", "n1", true),
        pod("shop", "tagged").owner_ref("apps/v1", "ReplicaSet", "web-1", false),
        pod("ml", "trainer").owner_ref("batch.volcano.sh/v1alpha1", "Job", "train", true),
    ]);
    for (ns, name) in [("kube-system", "etcd-n1"), ("shop", "tagged"), ("ml", "trainer")] {
        assert_eq!(index.owner_chain(&EntityId::pod(ns, name)), Vec::<EntityId>::new(), "{ns}/{name}");
        assert_eq!(index.workload_of(&EntityId::pod(ns, name)), None);
    }
}

#[test]
fn services_select_pods_of_their_namespace_whose_labels_contain_the_selector() {
    let index = index_of(vec![
        pod("shop", "web-1").labels(&[("app", "web"), ("tier", "front")]),
        pod("shop", "web-2").labels(&[("app", "web")]),
        pod("shop", "db-1").labels(&[("app", "db")]),
        pod("other", "web-9").labels(&[("app", "web"), ("tier", "front")]),
        service("shop", "web").selector(&[("app", "web")]),
        service("shop", "front").selector(&[("app", "web"), ("tier", "front")]),
        service("shop", "manual"),
    ]);
    assert_eq!(
        index.services_selecting(&EntityId::pod("shop", "web-1")),
        vec![EntityId::service("shop", "front"), EntityId::service("shop", "web")]
    );
    assert_eq!(index.services_selecting(&EntityId::pod("shop", "web-2")), vec![EntityId::service("shop", "web")]);
    assert_eq!(index.services_selecting(&EntityId::pod("shop", "db-1")), Vec::<EntityId>::new());
    assert_eq!(
        index.pods_selected_by(&EntityId::service("shop", "web")),
        vec![EntityId::pod("shop", "web-1"), EntityId::pod("shop", "web-2")]
    );
    assert_eq!(index.pods_selected_by(&EntityId::service("shop", "manual")), Vec::<EntityId>::new());
}

#[test]
fn relabelling_a_pod_changes_which_services_select_it() {
    let mut index = index_of(vec![
        pod("shop", "web-1").labels(&[("app", "web")]),
        service("shop", "web").selector(&[("app", "web")]),
    ]);
    index.apply(&pod("shop", "web-1").labels(&[("app", "canary")]).build());
    assert_eq!(index.services_selecting(&EntityId::pod("shop", "web-1")), Vec::<EntityId>::new());
}

#[test]
fn a_service_is_found_by_its_cluster_ip_only_on_its_own_ports() {
    let index = index_of(vec![
        service("shop", "web").cluster_ip("10.96.0.10").port(80, json!(8080)).port(443, json!("https")),
        service("shop", "headless").cluster_ip("None").port(80, json!(80)),
    ]);
    assert_eq!(index.service_by_cluster_ip(ip("10.96.0.10"), 80), Some(EntityId::service("shop", "web")));
    assert_eq!(index.service_by_cluster_ip(ip("10.96.0.10"), 443), Some(EntityId::service("shop", "web")));
    assert_eq!(index.service_by_cluster_ip(ip("10.96.0.10"), 8080), None);
    assert_eq!(index.service_by_cluster_ip(ip("10.96.0.11"), 80), None);
    assert_eq!(index.counts().services, 2, "the headless service is indexed, just not by address");
}

#[test]
fn deleting_a_service_frees_its_cluster_ip() {
    let web = service("shop", "web").cluster_ip("10.96.0.10").port(80, json!(80));
    let mut index = index_of(vec![web.clone()]);
    index.delete(&web.build());
    assert_eq!(index.service_by_cluster_ip(ip("10.96.0.10"), 80), None);
}

#[test]
fn a_service_port_forwards_to_a_named_container_port() {
    let index = index_of(vec![
        pod("shop", "web-1").labels(&[("app", "web")]).named_port("http", 8080),
        service("shop", "web").selector(&[("app", "web")]).port(80, json!("http")),
    ]);
    assert_eq!(index.backends_of(&EntityId::service("shop", "web"), 80), vec![(EntityId::pod("shop", "web-1"), 8080)]);
    assert_eq!(
        index.services_exposing(&EntityId::pod("shop", "web-1"), 8080),
        vec![(EntityId::service("shop", "web"), 80)]
    );
    assert_eq!(index.services_exposing(&EntityId::pod("shop", "web-1"), 9090), vec![]);
}

#[test]
fn a_pod_knows_its_node_and_its_containers_init_containers_first() {
    let index = index_of(vec![pod("shop", "web-1").on_node("n7").container("sidecar").init_container("setup")]);
    let id = EntityId::pod("shop", "web-1");
    assert_eq!(index.node_of(&id), Some(EntityId::node("n7")));
    assert_eq!(
        index.containers_of(&id),
        vec![
            EntityId::container("shop", "web-1", "setup"),
            EntityId::container("shop", "web-1", "app"),
            EntityId::container("shop", "web-1", "sidecar"),
        ]
    );
    assert!(index.contains(&EntityId::container("shop", "web-1", "sidecar")));
    assert!(!index.contains(&EntityId::container("shop", "web-1", "ghost")));
    assert_eq!(index.node_of(&EntityId::pod("shop", "ghost")), None);
}

#[test]
fn a_relist_drops_the_objects_that_vanished_and_keeps_the_rest() {
    let mut index = index_of(vec![
        pod("shop", "web-1").ip("10.0.0.1"),
        pod("shop", "web-2").ip("10.0.0.2"),
        pod("db", "pg-0").ip("10.0.0.3"),
        service("shop", "web"),
        node("n1"),
        node("n2"),
    ]);
    index.replace(ObjectKind::Pod, &[pod("shop", "web-2").ip("10.0.0.2").build(), node("n9").build()]);
    assert_eq!(index.counts().pods, 1);
    assert_eq!(index.pod_by_ip(ip("10.0.0.1")), None);
    assert_eq!(index.pod_by_ip(ip("10.0.0.3")), None);
    assert_eq!(index.pod_by_ip(ip("10.0.0.2")), Some(EntityId::pod("shop", "web-2")));
    assert!(!index.contains(&EntityId::ns("db")));
    assert_eq!(index.counts().services, 1, "a pod re-list leaves services alone");
    assert_eq!(index.counts().nodes, 2, "objects of another kind in the list are ignored");

    index.replace(ObjectKind::Node, &[node("n2").build()]);
    assert!(!index.contains(&EntityId::node("n1")));
    assert!(index.contains(&EntityId::node("n2")));

    index.replace(ObjectKind::Deployment, &[]);
    index.replace(ObjectKind::Service, &[]);
    assert_eq!(index.counts().services, 0);
}

#[test]
fn a_relist_of_workloads_drops_only_that_kind() {
    let mut index = index_of(vec![deployment("shop", "web"), deployment("shop", "api"), stateful_set("shop", "db")]);
    index.replace(ObjectKind::Deployment, &[deployment("shop", "api").build()]);
    assert!(!index.contains(&workload(WorkloadKind::Deployment, "shop", "web")));
    assert!(index.contains(&workload(WorkloadKind::Deployment, "shop", "api")));
    assert!(index.contains(&workload(WorkloadKind::StatefulSet, "shop", "db")));
}

#[test]
fn counts_report_each_kind_and_events_are_counted_not_stored() {
    let index = index_of(vec![
        pod("shop", "web-1"),
        node("n1"),
        service("shop", "web"),
        deployment("shop", "web"),
        replica_set("shop", "web-1"),
        replication_controller("shop", "rc"),
        job("shop", "j"),
        cron_job("shop", "c", "@hourly"),
        stateful_set("shop", "s"),
        daemon_set("shop", "d"),
        event("shop", "e1", "Warning"),
        event("shop", "e2", "Normal"),
    ]);
    let counts = index.counts();
    for kind in ObjectKind::ALL {
        assert_eq!(counts.of(kind), if kind == ObjectKind::Event { 2 } else { 1 }, "{kind:?}");
    }
    assert_eq!(counts.warning_events_seen, 1);
    assert_eq!(counts.namespaces, 1);
    let json = serde_json::to_value(&counts).unwrap();
    assert_eq!(json["replicaSets"], 1);
}

#[test]
fn deleting_each_kind_of_object_removes_it() {
    let objects = vec![
        node("n1"),
        service("shop", "web"),
        deployment("shop", "web"),
        replica_set("shop", "web-1"),
        replication_controller("shop", "rc"),
        job("shop", "j"),
        cron_job("shop", "c", "@hourly"),
        stateful_set("shop", "s"),
        daemon_set("shop", "d"),
    ];
    let mut index = index_of(objects.clone());
    for object in objects {
        index.delete(&object.build());
    }
    assert_eq!(
        index.counts(),
        IndexCounts { interned_strings: index.counts().interned_strings, ..IndexCounts::default() }
    );
}

#[test]
fn interned_strings_nobody_holds_are_collected_on_relist() {
    let mut index = index_of(vec![pod("shop", "web-1").labels(&[("release", "r-123456")])]);
    let before = index.counts().interned_strings;
    index.replace(ObjectKind::Pod, &[]);
    assert!(index.counts().interned_strings < before);
    assert_eq!(index.counts().interned_strings, 0);
}

#[test]
fn an_agent_learns_the_pods_on_its_node_with_container_names_and_runtime_ids() {
    let uid = "0d6f6c1e-4a1b-4b36-9d1c-2f0a7c1e9b11";
    let index = index_of(vec![
        pod("shop", "web-1").uid(uid).on_node("n1").container("app").container_id("app", "containerd://4f1e9a"),
        pod("shop", "db-1").on_node("n2"),
    ]);
    let pods = index.pods_on_node("n1");
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!((pods[0].uid.as_str(), pods[0].namespace.as_str(), pods[0].name.as_str()), (uid, "shop", "web-1"));
    let app = pods[0].containers.iter().find(|c| c.name == "app").expect("the app container");
    assert_eq!(app.id.as_deref(), Some("4f1e9a"), "the runtime prefix is dropped");
    assert!(index.pods_on_node("n3").is_empty());
}
