//! Tests of the cluster detectors and the symptom book.

use std::collections::{BTreeMap, BTreeSet};

use causely_model::{EntityId, Severity, Symptom, SymptomChange, SymptomId, SymptomKind, UnixMillis, WorkloadKind};

use super::*;
use crate::index::ClusterIndex;
use crate::index::fixtures::*;

const NOW: UnixMillis = UnixMillis(1_700_000_000_000);
const MINUTE: u64 = 60_000;

fn ago(ms: u64) -> u64 {
    NOW.0 - ms
}

fn later(ms: u64) -> UnixMillis {
    UnixMillis(NOW.0 + ms)
}

fn at(text: &str) -> UnixMillis {
    UnixMillis(text.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64)
}

fn index_of(objects: Vec<Fixture>) -> ClusterIndex {
    let mut index = ClusterIndex::new();
    for object in objects {
        index.apply(&object.build());
    }
    index
}

fn findings(objects: Vec<Fixture>, now: UnixMillis) -> Vec<Finding> {
    detect(&index_of(objects), now, &ClusterRules::default())
}

fn container(pod: &str, name: &str) -> EntityId {
    EntityId::container("shop", pod, name)
}

fn only(found: &[Finding]) -> &Finding {
    assert_eq!(found.len(), 1, "{found:#?}");
    &found[0]
}

fn opened(changes: &[SymptomChange]) -> Vec<&Symptom> {
    changes
        .iter()
        .filter_map(|c| match c {
            SymptomChange::Opened { symptom } => Some(symptom),
            SymptomChange::Resolved { .. } => None,
        })
        .collect()
}

fn resolved(changes: &[SymptomChange]) -> Vec<(&SymptomId, UnixMillis)> {
    changes
        .iter()
        .filter_map(|c| match c {
            SymptomChange::Resolved { id, resolved } => Some((id, *resolved)),
            SymptomChange::Opened { .. } => None,
        })
        .collect()
}

// Detectors.

#[test]
fn a_container_in_crash_loop_back_off_is_a_crash_loop_on_that_container() {
    let found = findings(vec![pod("shop", "web-1").container("sidecar").waiting("app", "CrashLoopBackOff")], NOW);
    let finding = only(&found);
    assert_eq!((finding.rule, finding.kind), (rule::CRASH_LOOP, SymptomKind::CrashLoop));
    assert_eq!(finding.entity, container("web-1", "app"));
    assert_eq!(finding.severity, Severity::High);
}

#[test]
fn a_crash_looping_init_container_is_found_too() {
    let found = findings(vec![pod("shop", "web-1").init_container("setup").waiting("setup", "CrashLoopBackOff")], NOW);
    assert_eq!(only(&found).entity, container("web-1", "setup"));
}

#[test]
fn image_pull_back_off_and_err_image_pull_are_image_pull_failures() {
    for reason in ["ImagePullBackOff", "ErrImagePull"] {
        let found = findings(vec![pod("shop", "web-1").waiting("app", reason)], NOW);
        let finding = only(&found);
        assert_eq!((finding.rule, finding.kind), (rule::IMAGE_PULL, SymptomKind::ImagePullFailure), "{reason}");
    }
    assert!(findings(vec![pod("shop", "web-1").waiting("app", "ContainerCreating")], NOW).is_empty());
}

#[test]
fn a_recent_oom_kill_is_found_from_the_last_or_current_state_and_an_old_one_is_not() {
    let last =
        findings(vec![pod("shop", "web-1").running("app").last_terminated("app", "OOMKilled", ago(MINUTE))], NOW);
    let finding = only(&last);
    assert_eq!((finding.rule, finding.kind), (rule::OOM_KILLED, SymptomKind::OomKilled));
    assert_eq!(finding.since, Some(UnixMillis(ago(MINUTE))));

    let current = findings(vec![pod("shop", "web-1").terminated("app", "OOMKilled", ago(MINUTE))], NOW);
    assert_eq!(only(&current).rule, rule::OOM_KILLED);

    let old = findings(vec![pod("shop", "web-1").last_terminated("app", "OOMKilled", ago(11 * MINUTE))], NOW);
    assert!(old.is_empty(), "{old:?}");
    let other = findings(vec![pod("shop", "web-1").last_terminated("app", "Error", ago(MINUTE))], NOW);
    assert!(other.is_empty());
}

#[test]
fn an_unschedulable_pod_is_found_since_its_condition_changed() {
    let found = findings(vec![pod("shop", "big").created(ago(MINUTE)).unschedulable(ago(30_000))], NOW);
    let finding = only(&found);
    assert_eq!((finding.rule, finding.kind), (rule::UNSCHEDULABLE, SymptomKind::Unschedulable));
    assert_eq!(finding.entity, EntityId::pod("shop", "big"));
    assert_eq!(finding.since, Some(UnixMillis(ago(30_000))));
}

#[test]
fn a_pod_left_unbound_past_the_pending_limit_is_found_and_not_before() {
    let waiting = |created| pod("shop", "p").unbound().phase("Pending").created(created);
    let found = findings(vec![waiting(ago(6 * MINUTE))], NOW);
    let finding = only(&found);
    assert_eq!((finding.rule, finding.kind), (rule::PENDING, SymptomKind::Unschedulable));
    assert_eq!(finding.since, Some(UnixMillis(ago(6 * MINUTE))));
    assert_eq!(finding.threshold.as_ref().map(|t| t.window_seconds), Some(300));

    assert!(findings(vec![waiting(ago(4 * MINUTE))], NOW).is_empty());
    let bound = pod("shop", "p").phase("Pending").created(ago(6 * MINUTE));
    assert!(findings(vec![bound], NOW).is_empty(), "a bound pod's trouble shows on its containers");
    let said_unschedulable = pod("shop", "p").created(ago(6 * MINUTE)).unschedulable(ago(5 * MINUTE));
    assert_eq!(only(&findings(vec![said_unschedulable], NOW)).rule, rule::UNSCHEDULABLE, "one rule per cause");
}

#[test]
fn a_node_not_ready_or_unknown_is_found_and_each_pressure_has_its_own_rule() {
    for status in ["False", "Unknown"] {
        let found = findings(vec![node("n1").condition("Ready", status, ago(MINUTE))], NOW);
        let finding = only(&found);
        assert_eq!(
            (finding.rule, finding.kind, finding.severity),
            (rule::NODE_NOT_READY, SymptomKind::NodeNotReady, Severity::Critical)
        );
        assert_eq!(finding.since, Some(UnixMillis(ago(MINUTE))));
    }
    let pressed = node("n1")
        .condition("MemoryPressure", "True", ago(MINUTE))
        .condition("DiskPressure", "True", ago(MINUTE))
        .condition("PIDPressure", "True", ago(MINUTE));
    let found = findings(vec![pressed], NOW);
    let rules: Vec<&str> = found.iter().map(|f| f.rule).collect();
    assert_eq!(rules, vec![rule::NODE_DISK_PRESSURE, rule::NODE_MEMORY_PRESSURE, rule::NODE_PID_PRESSURE]);
    assert!(found.iter().all(|f| f.kind == SymptomKind::NodePressure && f.entity == EntityId::node("n1")));
    let healthy = node("n1").condition("MemoryPressure", "False", ago(MINUTE));
    assert!(findings(vec![healthy], NOW).is_empty());
}

#[test]
fn unavailable_replicas_are_found_on_deployments_statefulsets_and_daemonsets_with_a_hold() {
    let found = findings(
        vec![
            deployment("shop", "web").replicas(3, 2),
            stateful_set("shop", "db").replicas(3, 0),
            daemon_set("shop", "agent").replicas(5, 4),
            deployment("shop", "fine").replicas(3, 3),
            deployment("shop", "idle").replicas(0, 0),
        ],
        NOW,
    );
    let by_entity: BTreeMap<EntityId, &Finding> = found.iter().map(|f| (f.entity.clone(), f)).collect();
    let key = |kind, name| EntityId::workload(kind, "shop", name);
    assert_eq!(
        by_entity.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            key(WorkloadKind::Deployment, "web"),
            key(WorkloadKind::StatefulSet, "db"),
            key(WorkloadKind::DaemonSet, "agent"),
        ])
    );
    assert!(found.iter().all(|f| f.kind == SymptomKind::UnavailableReplicas && f.open_after_ms == 2 * MINUTE));
    assert_eq!(by_entity[&key(WorkloadKind::StatefulSet, "db")].severity, Severity::High, "none available");
    assert_eq!(by_entity[&key(WorkloadKind::Deployment, "web")].severity, Severity::Medium);
}

#[test]
fn a_failed_job_is_found_and_a_running_one_is_not() {
    let found = findings(vec![job("batch", "report-1").condition("Failed", "True", ago(MINUTE))], NOW);
    let finding = only(&found);
    assert_eq!((finding.rule, finding.kind), (rule::JOB_FAILED, SymptomKind::JobFailed));
    assert_eq!(finding.since, Some(UnixMillis(ago(MINUTE))));
    assert!(findings(vec![job("batch", "report-2").condition("Complete", "True", ago(MINUTE))], NOW).is_empty());
}

#[test]
fn a_cron_job_that_missed_its_schedule_is_found_from_the_first_missed_run() {
    let now = at("2024-05-02T10:31:00Z");
    let created = at("2024-01-01T00:00:00Z").0;
    let late = cron_job("batch", "report", "*/5 * * * *").created(created).last_schedule(at("2024-05-02T10:00:00Z").0);
    let found = findings(vec![late], now);
    let finding = only(&found);
    assert_eq!((finding.rule, finding.kind), (rule::CRON_JOB_MISSED, SymptomKind::CronJobMissed));
    assert_eq!(finding.since, Some(at("2024-05-02T10:05:00Z")));
    assert_eq!(finding.entity, EntityId::workload(WorkloadKind::CronJob, "batch", "report"));

    let on_time =
        cron_job("batch", "report", "*/5 * * * *").created(created).last_schedule(at("2024-05-02T10:30:00Z").0);
    assert!(findings(vec![on_time], now).is_empty());
    let within_grace =
        cron_job("batch", "report", "*/5 * * * *").created(created).last_schedule(at("2024-05-02T10:25:00Z").0);
    assert!(findings(vec![within_grace], now).is_empty(), "the 10:30 run may still start until 10:32");
    let never_ran = cron_job("batch", "report", "@hourly").created(at("2024-05-02T08:10:00Z").0);
    assert_eq!(only(&findings(vec![never_ran], now)).since, Some(at("2024-05-02T09:00:00Z")));
    let just_made = cron_job("batch", "report", "@hourly").created(at("2024-05-02T10:10:00Z").0);
    assert!(findings(vec![just_made], now).is_empty());
}

#[test]
fn a_suspended_skipping_or_unparsable_cron_job_is_not_missed() {
    let now = at("2024-05-02T10:31:00Z");
    let stale = |schedule| {
        cron_job("batch", "r", schedule)
            .created(at("2024-01-01T00:00:00Z").0)
            .last_schedule(at("2024-05-01T00:00:00Z").0)
    };
    assert_eq!(findings(vec![stale("*/5 * * * *")], now).len(), 1, "the baseline is missed");
    assert!(findings(vec![stale("*/5 * * * *").suspended()], now).is_empty());
    assert!(findings(vec![stale("*/5 * * * *").active_forbidding_concurrency()], now).is_empty());
    assert!(findings(vec![stale("every five minutes")], now).is_empty());
    assert!(findings(vec![stale("*/5 * * * *").time_zone("Mars/Olympus")], now).is_empty());
}

#[test]
fn a_cron_job_schedule_is_read_in_its_time_zone() {
    // 09:00 in Tokyo is 00:00 UTC. The last run happened at 09:00 UTC yesterday, so only a Tokyo schedule
    // has a run due since (today 00:00 UTC).
    let now = at("2024-05-02T08:00:00Z");
    let cron = |schedule| {
        cron_job("batch", "r", schedule)
            .created(at("2024-01-01T00:00:00Z").0)
            .last_schedule(at("2024-05-01T09:00:00Z").0)
    };
    assert!(findings(vec![cron("0 9 * * *")], now).is_empty());
    let tokyo = findings(vec![cron("0 9 * * *").time_zone("Asia/Tokyo")], now);
    assert_eq!(only(&tokyo).since, Some(at("2024-05-02T00:00:00Z")));
    assert_eq!(findings(vec![cron("CRON_TZ=Asia/Tokyo 0 9 * * *")], now).len(), 1);
}

#[test]
fn a_healthy_cluster_has_no_findings() {
    let found = findings(
        vec![
            node("n1"),
            pod("shop", "web-1").running("app").created(ago(60 * MINUTE)),
            deployment("shop", "web").replicas(2, 2),
            job("batch", "ok").condition("Complete", "True", ago(MINUTE)),
        ],
        NOW,
    );
    assert!(found.is_empty(), "{found:?}");
}

// The book: cluster findings.

fn crash_looping(looping: bool) -> Fixture {
    let pod = pod("shop", "web-1");
    if looping { pod.waiting("app", "CrashLoopBackOff") } else { pod.running("app") }
}

/// Detects over `index` at `now` and reconciles.
fn pass(book: &mut SymptomBook, index: &ClusterIndex, now: UnixMillis) -> Vec<SymptomChange> {
    book.reconcile_cluster(detect(index, now, &ClusterRules::default()), now)
}

#[test]
fn a_crash_loop_that_flaps_between_running_and_back_off_stays_one_symptom() {
    let mut book = SymptomBook::new();
    let mut index = ClusterIndex::new();
    let mut changes = Vec::new();
    // Back-off 30 s, runs 20 s, back-off 30 s, ... for five minutes, reconciled every 10 s.
    for step in 0..30u64 {
        let looping = step % 5 < 3;
        index.apply(&crash_looping(looping).build());
        changes.extend(pass(&mut book, &index, later(step * 10_000)));
    }
    assert_eq!(opened(&changes).len(), 1, "{changes:#?}");
    assert!(resolved(&changes).is_empty());
    assert_eq!(opened(&changes)[0].started, NOW);
    assert_eq!(opened(&changes)[0].entity, container("web-1", "app"));

    // Then it keeps running: resolved once, a minute after it was last seen looping.
    index.apply(&crash_looping(false).build());
    let mut after = Vec::new();
    for step in 30..45u64 {
        after.extend(pass(&mut book, &index, later(step * 10_000)));
    }
    let last_looping = later(27 * 10_000);
    assert_eq!(resolved(&after), vec![(&opened(&changes)[0].id, last_looping)]);
    assert_eq!(book.open_count(), 0);
    assert_eq!(book.recent()[0].resolved, Some(last_looping));
}

#[test]
fn every_cluster_symptom_opens_once_and_resolves_once() {
    let cron_created = ago(24 * 60 * MINUTE);
    let sick = vec![
        node("n1").condition("Ready", "False", ago(MINUTE)).condition("MemoryPressure", "True", ago(MINUTE)),
        node("n2").condition("DiskPressure", "True", ago(MINUTE)).condition("PIDPressure", "True", ago(MINUTE)),
        pod("shop", "web-1").container("pull").waiting("app", "CrashLoopBackOff").waiting("pull", "ImagePullBackOff"),
        pod("shop", "web-2").last_terminated("app", "OOMKilled", ago(MINUTE)),
        pod("shop", "big").created(ago(MINUTE)).unschedulable(ago(MINUTE)),
        pod("shop", "lost").unbound().phase("Pending").created(ago(10 * MINUTE)),
        deployment("shop", "web").replicas(2, 1),
        job("batch", "j").condition("Failed", "True", ago(MINUTE)),
        cron_job("batch", "c", "@hourly").created(cron_created).last_schedule(ago(180 * MINUTE)),
    ];
    let healthy = vec![
        node("n1"),
        node("n2"),
        pod("shop", "web-1").container("pull").running("app").running("pull"),
        pod("shop", "web-2").running("app"),
        pod("shop", "big").phase("Running").created(ago(MINUTE)),
        pod("shop", "lost").phase("Running").created(ago(10 * MINUTE)),
        deployment("shop", "web").replicas(2, 2),
        job("batch", "j").condition("Complete", "True", ago(MINUTE)),
        // NOW is 22:13:20 UTC; the 22:00 run happened and the next is not due within the test.
        cron_job("batch", "c", "@hourly").created(cron_created).last_schedule(at("2023-11-14T22:00:00Z").0),
    ];
    let mut index = index_of(sick);
    let mut book = SymptomBook::new();
    let mut changes = Vec::new();
    for step in 0..20u64 {
        changes.extend(pass(&mut book, &index, later(step * 10_000)));
    }
    let mut rules: Vec<&str> = opened(&changes).iter().map(|s| s.rule.as_str()).collect();
    rules.sort();
    let mut expected = rule::ALL.to_vec();
    expected.sort();
    assert_eq!(rules, expected, "each rule opened exactly once");
    let unavailable = opened(&changes).into_iter().find(|s| s.rule == rule::UNAVAILABLE_REPLICAS).unwrap();
    assert_eq!(unavailable.started, NOW, "held findings start when first seen");
    assert!(resolved(&changes).is_empty());
    assert_eq!(book.open_count(), rule::ALL.len());

    for object in healthy {
        index.apply(&object.build());
    }
    let mut after = Vec::new();
    for step in 20..40u64 {
        after.extend(pass(&mut book, &index, later(step * 10_000)));
    }
    assert!(opened(&after).is_empty(), "{after:#?}");
    assert_eq!(resolved(&after).len(), rule::ALL.len(), "each resolved exactly once");
    assert_eq!(book.open_count(), 0);
    assert_eq!(book.recent().len(), rule::ALL.len());
}

#[test]
fn unavailable_replicas_open_only_once_the_hold_has_passed_and_a_blip_never_opens() {
    let mut book = SymptomBook::new();
    let mut index = index_of(vec![deployment("shop", "web").replicas(3, 2)]);
    assert!(pass(&mut book, &index, NOW).is_empty());
    assert!(pass(&mut book, &index, later(MINUTE)).is_empty());
    index.apply(&deployment("shop", "web").replicas(3, 3).build());
    assert!(pass(&mut book, &index, later(2 * MINUTE)).is_empty(), "the rollout finished");
    index.apply(&deployment("shop", "web").replicas(3, 2).build());
    assert!(pass(&mut book, &index, later(3 * MINUTE)).is_empty(), "the hold starts over");
    assert!(pass(&mut book, &index, later(4 * MINUTE)).is_empty());
    let changes = pass(&mut book, &index, later(5 * MINUTE));
    assert_eq!(opened(&changes).len(), 1);
    assert_eq!(opened(&changes)[0].started, later(3 * MINUTE));
}

#[test]
fn a_restarted_book_derives_the_same_id_for_a_condition_its_object_dates() {
    let index = index_of(vec![node("n1").condition("Ready", "False", ago(MINUTE))]);
    let first = pass(&mut SymptomBook::new(), &index, NOW);
    let second = pass(&mut SymptomBook::new(), &index, later(MINUTE));
    assert_eq!(opened(&first)[0].id, opened(&second)[0].id);
    assert_eq!(opened(&first)[0].started, UnixMillis(ago(MINUTE)));
}

#[test]
fn an_occurrence_that_comes_back_after_resolving_opens_under_a_new_id() {
    let mut book = SymptomBook::new();
    let job_failed = index_of(vec![job("batch", "j").condition("Failed", "True", ago(MINUTE))]);
    let first = pass(&mut book, &job_failed, NOW);
    let empty = ClusterIndex::new();
    assert_eq!(resolved(&pass(&mut book, &empty, later(2 * MINUTE))).len(), 1);
    let again = pass(&mut book, &job_failed, later(3 * MINUTE));
    assert_eq!(opened(&again).len(), 1);
    assert_ne!(opened(&again)[0].id, opened(&first)[0].id);
}

// The book: agent changes.

fn agent_symptom(entity: EntityId, started: u64, severity: Severity) -> Symptom {
    Symptom {
        id: SymptomId::of("agent.cpu.utilization", &entity, UnixMillis(started)),
        kind: SymptomKind::HighCpuUtilization,
        entity,
        severity,
        rule: "agent.cpu.utilization".into(),
        threshold: None,
        started: UnixMillis(started),
        resolved: None,
    }
}

fn open_change(symptom: &Symptom) -> SymptomChange {
    SymptomChange::Opened { symptom: symptom.clone() }
}

fn resolve_change(symptom: &Symptom, at: u64) -> SymptomChange {
    SymptomChange::Resolved { id: symptom.id.clone(), resolved: UnixMillis(at) }
}

#[test]
fn agent_changes_are_idempotent() {
    let mut book = SymptomBook::new();
    let cpu = agent_symptom(container("web-1", "app"), ago(MINUTE), Severity::High);
    assert_eq!(book.apply_agent("n1", &[open_change(&cpu)], NOW), vec![open_change(&cpu)]);
    assert!(book.apply_agent("n1", &[open_change(&cpu)], NOW).is_empty(), "a repeated Opened");
    assert_eq!(book.open_count(), 1);

    let unknown = agent_symptom(container("web-1", "other"), ago(MINUTE), Severity::High);
    assert!(book.apply_agent("n1", &[resolve_change(&unknown, NOW.0)], NOW).is_empty(), "a Resolved for an unknown id");
    assert!(book.apply_agent("n2", &[resolve_change(&cpu, NOW.0)], NOW).is_empty(), "another node's agent");

    assert_eq!(book.apply_agent("n1", &[resolve_change(&cpu, NOW.0)], NOW), vec![resolve_change(&cpu, NOW.0)]);
    assert!(book.apply_agent("n1", &[resolve_change(&cpu, NOW.0)], NOW).is_empty(), "a repeated Resolved");
    assert!(book.apply_agent("n1", &[open_change(&cpu)], NOW).is_empty(), "a replayed Opened after resolving");
    assert_eq!(book.open_count(), 0);
    assert_eq!(book.recent().len(), 1);
}

#[test]
fn an_agent_resolve_time_is_kept_between_the_start_and_now() {
    let mut book = SymptomBook::new();
    let cpu = agent_symptom(container("web-1", "app"), ago(MINUTE), Severity::High);
    book.apply_agent("n1", &[open_change(&cpu)], NOW);
    let changes = book.apply_agent("n1", &[resolve_change(&cpu, NOW.0 + 3_600_000)], NOW);
    assert_eq!(changes, vec![resolve_change(&cpu, NOW.0)]);
}

#[test]
fn a_deleted_pods_symptoms_resolve() {
    let mut index = index_of(vec![pod("shop", "web-1").waiting("app", "CrashLoopBackOff"), pod("shop", "web-2")]);
    let mut book = SymptomBook::new();
    let crash = opened(&pass(&mut book, &index, NOW))[0].id.clone();
    let cpu = agent_symptom(container("web-1", "app"), NOW.0, Severity::High);
    let other = agent_symptom(container("web-2", "app"), NOW.0, Severity::High);
    book.apply_agent("n1", &[open_change(&cpu), open_change(&other)], NOW);

    index.delete(&pod("shop", "web-1").build());
    let changes = book.resolve_vanished(&index, later(MINUTE));
    let mut ids: Vec<&SymptomId> = resolved(&changes).into_iter().map(|(id, _)| id).collect();
    ids.sort();
    let mut expected = vec![&crash, &cpu.id];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(book.open_count(), 1, "web-2's symptom stays");
    assert!(pass(&mut book, &index, later(2 * MINUTE)).is_empty(), "nothing resolves twice");
}

#[test]
fn an_agent_symptom_on_a_container_the_index_has_not_seen_yet_is_given_time() {
    let index = ClusterIndex::new();
    let mut book = SymptomBook::new();
    let early = agent_symptom(container("web-9", "app"), NOW.0, Severity::High);
    book.apply_agent("n1", &[open_change(&early)], NOW);
    assert!(book.resolve_vanished(&index, later(10_000)).is_empty());
    assert_eq!(resolved(&book.resolve_vanished(&index, later(MINUTE))).len(), 1);
}

#[test]
fn a_gone_agents_symptoms_resolve_and_only_its_own() {
    let mut book = SymptomBook::new();
    let on_n1 = agent_symptom(container("web-1", "app"), NOW.0, Severity::High);
    let on_n2 = agent_symptom(container("web-2", "app"), NOW.0, Severity::High);
    book.apply_agent("n1", &[open_change(&on_n1)], NOW);
    book.apply_agent("n2", &[open_change(&on_n2)], NOW);
    assert_eq!(book.resolve_agent("n1", later(MINUTE)), vec![resolve_change(&on_n1, later(MINUTE).0)]);
    assert_eq!(book.open()[0].id, on_n2.id);
}

#[test]
fn open_symptoms_list_the_most_severe_first_then_the_oldest_and_recent_ones_newest_first_bounded() {
    let mut book = SymptomBook::with_recent_limit(2);
    let low_old = agent_symptom(container("a", "x"), ago(3 * MINUTE), Severity::Low);
    let high_new = agent_symptom(container("b", "x"), ago(MINUTE), Severity::High);
    let high_old = agent_symptom(container("c", "x"), ago(2 * MINUTE), Severity::High);
    let changes: Vec<SymptomChange> = [&low_old, &high_new, &high_old].into_iter().map(open_change).collect();
    book.apply_agent("n1", &changes, NOW);
    let order: Vec<&SymptomId> = book.open().into_iter().map(|s| &s.id).collect();
    assert_eq!(order, vec![&high_old.id, &high_new.id, &low_old.id]);
    assert_eq!(book.all_open_as_changes(), vec![open_change(&high_old), open_change(&high_new), open_change(&low_old)]);

    for symptom in [&low_old, &high_new, &high_old] {
        book.apply_agent("n1", &[resolve_change(symptom, NOW.0)], NOW);
    }
    let recent: Vec<&SymptomId> = book.recent().into_iter().map(|s| &s.id).collect();
    assert_eq!(recent, vec![&high_old.id, &high_new.id]);
    assert!(book.all_open_as_changes().is_empty());
}
