//! Detector tests on synthetic series: windows, hysteresis, events and the built-in rule file.

use causely_model::{Comparator, EntityId, Severity, SymptomChange, SymptomKind, UnixMillis};

use super::*;
use crate::collect::{ContainerRates, NodeRates};

fn web() -> EntityId {
    EntityId::container("shop", "web-1", "nginx")
}

fn detector() -> Detector {
    Detector::new(RuleSet::builtin().unwrap()).unwrap()
}

/// Feeds `(seconds, value)` pairs for one signal and entity; returns the changes with the second
/// at which each happened.
fn feed(
    detector: &mut Detector,
    signal: Signal,
    entity: &EntityId,
    series: &[(u64, f64)],
) -> Vec<(u64, SymptomChange)> {
    let mut out = Vec::new();
    for &(seconds, value) in series {
        let obs = Observation { signal, entity: entity.clone(), value, time_ms: seconds * 1_000 };
        out.extend(detector.observe(&obs).into_iter().map(|c| (seconds, c)));
    }
    out
}

/// A value every 15 s from `from` to `to` inclusive.
fn every_15s(from: u64, to: u64, value: f64) -> Vec<(u64, f64)> {
    (from..=to).step_by(15).map(|t| (t, value)).collect()
}

fn opened(changes: &[(u64, SymptomChange)]) -> Vec<(u64, &causely_model::Symptom)> {
    changes
        .iter()
        .filter_map(|(t, c)| match c {
            SymptomChange::Opened { symptom } => Some((*t, symptom)),
            SymptomChange::Resolved { .. } => None,
        })
        .collect()
}

fn resolved(changes: &[(u64, SymptomChange)]) -> Vec<(u64, UnixMillis)> {
    changes
        .iter()
        .filter_map(|(t, c)| match c {
            SymptomChange::Resolved { resolved, .. } => Some((*t, *resolved)),
            SymptomChange::Opened { .. } => None,
        })
        .collect()
}

#[test]
fn a_sustained_breach_opens_once_after_the_window_with_the_rules_threshold() {
    let mut d = detector();
    let changes = feed(&mut d, Signal::ContainerCpuUtilization, &web(), &every_15s(0, 180, 0.95));
    let opens = opened(&changes);
    assert_eq!(opens.len(), 1, "{changes:?}");
    let (at, symptom) = opens[0];
    assert_eq!(at, 60, "opens when the condition has held for the 60 s window");
    assert_eq!(symptom.started, UnixMillis(0), "started is when the condition began");
    assert_eq!(symptom.id, SymptomId::of("agent.container.cpu-utilization", &web(), UnixMillis(0)));
    assert_eq!(symptom.kind, SymptomKind::HighCpuUtilization);
    assert_eq!(symptom.severity, Severity::High);
    assert_eq!(symptom.entity, web());
    let threshold = symptom.threshold.as_ref().unwrap();
    assert_eq!(threshold.signal, "container_cpu_utilization");
    assert_eq!((threshold.comparator, threshold.bound, threshold.window_seconds), (Comparator::Above, 0.8, 60));
    assert_eq!(d.open_count(), 1);
}

#[test]
fn a_symptom_carries_no_observed_value() {
    let mut d = detector();
    let changes = feed(&mut d, Signal::ContainerCpuUtilization, &web(), &every_15s(0, 60, 0.987654));
    let json = serde_json::to_string(&changes[0].1).unwrap();
    assert!(!json.contains("0.987654"), "{json}");
    assert!(json.contains("0.8"), "the configured bound is there: {json}");
}

#[test]
fn a_short_spike_does_not_open() {
    let mut d = detector();
    let mut series = every_15s(0, 45, 0.95);
    series.extend(every_15s(60, 300, 0.5));
    series.extend(every_15s(315, 360, 0.95));
    let changes = feed(&mut d, Signal::ContainerCpuUtilization, &web(), &series);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(d.open_count(), 0);
}

#[test]
fn a_symptom_resolves_once_after_the_value_stays_clear_for_the_resolve_window() {
    let mut d = detector();
    let mut series = every_15s(0, 120, 0.95);
    series.extend(every_15s(135, 400, 0.3));
    let changes = feed(&mut d, Signal::ContainerCpuUtilization, &web(), &series);
    assert_eq!(opened(&changes).len(), 1);
    assert_eq!(resolved(&changes), [(195, UnixMillis(195_000))], "clear from 135 s, resolve window 60 s");
    let (SymptomChange::Opened { symptom }, SymptomChange::Resolved { id, .. }) = (&changes[0].1, &changes[1].1) else {
        panic!("{changes:?}")
    };
    assert_eq!(&symptom.id, id);
    assert_eq!(d.open_count(), 0);
}

#[test]
fn values_hovering_around_the_threshold_do_not_flap() {
    let mut d = detector();
    let mut series = every_15s(0, 60, 0.95);
    // Between the resolve bound (0.7) and the open bound (0.8), alternating above and below 0.8.
    series.extend((75..=900).step_by(15).map(|t| (t, if t % 30 == 0 { 0.82 } else { 0.76 })));
    let changes = feed(&mut d, Signal::ContainerCpuUtilization, &web(), &series);
    assert_eq!(changes.len(), 1, "one open, no resolve while above the resolve bound: {changes:?}");
    // A dip below the resolve bound shorter than the resolve window does not resolve either.
    let dip = [(915, 0.5), (930, 0.5), (945, 0.9), (960, 0.5), (975, 0.5), (990, 0.5)];
    let changes = feed(&mut d, Signal::ContainerCpuUtilization, &web(), &dip);
    assert!(changes.is_empty(), "the clear period restarts at 960 s: {changes:?}");
    // Below the open bound but above the resolve bound for a long time is still not clear.
    let changes = feed(&mut d, Signal::ContainerCpuUtilization, &web(), &every_15s(1_005, 1_600, 0.75));
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(d.open_count(), 1);
    let changes = feed(&mut d, Signal::ContainerCpuUtilization, &web(), &every_15s(1_615, 1_675, 0.69));
    assert_eq!(resolved(&changes), [(1_675, UnixMillis(1_675_000))]);
}

#[test]
fn a_below_rule_opens_when_available_memory_drops_and_resolves_above_its_resolve_bound() {
    let mut d = detector();
    let node = EntityId::node("n1");
    let mut series = every_15s(0, 120, 0.03);
    series.extend(every_15s(135, 300, 0.06)); // above 5 % but under the 7 % resolve bound
    series.extend(every_15s(315, 500, 0.5));
    let changes = feed(&mut d, Signal::NodeMemoryAvailableRatio, &node, &series);
    assert_eq!(
        opened(&changes).iter().map(|(t, s)| (*t, s.rule.as_str())).collect::<Vec<_>>(),
        [(120, "agent.node.memory-available")]
    );
    assert_eq!(resolved(&changes), [(435, UnixMillis(435_000))], "clear from 315 s for the 120 s window");
}

#[test]
fn an_oom_kill_opens_at_once_and_resolves_after_the_quiet_window() {
    let mut d = detector();
    let mut series = vec![(0, 0.0), (10, 0.0), (20, 1.0), (30, 0.0)];
    series.extend((40..=600).step_by(10).map(|t| (t, if t == 100 { 2.0 } else { 0.0 })));
    let changes = feed(&mut d, Signal::ContainerOomKills, &web(), &series);
    let opens = opened(&changes);
    assert_eq!(opens.len(), 1, "a second kill while open extends it: {changes:?}");
    assert_eq!(opens[0].0, 20);
    assert_eq!(opens[0].1.kind, SymptomKind::OomKilled);
    assert_eq!(opens[0].1.threshold.as_ref().unwrap().window_seconds, 0);
    assert_eq!(resolved(&changes), [(400, UnixMillis(400_000))], "300 s after the last kill at 100 s");
}

#[test]
fn an_oom_symptom_resolves_on_a_tick_even_without_further_observations() {
    let mut d = detector();
    feed(&mut d, Signal::ContainerOomKills, &web(), &[(10, 1.0)]);
    assert!(d.tick(309_000).is_empty());
    let changes = d.tick(310_000);
    assert!(
        matches!(changes.as_slice(), [SymptomChange::Resolved { resolved: UnixMillis(310_000), .. }]),
        "{changes:?}"
    );
    assert!(d.tick(900_000).is_empty(), "resolved only once");
}

#[test]
fn a_container_that_stops_reporting_has_its_symptom_resolved_after_the_stale_period() {
    let mut d = detector();
    feed(&mut d, Signal::ContainerMemoryUtilization, &web(), &every_15s(0, 90, 0.99));
    assert_eq!(d.open_count(), 1);
    assert!(d.tick(389_000).is_empty());
    assert_eq!(d.tick(390_000).len(), 1);
    assert_eq!(d.open_count(), 0);
}

#[test]
fn a_gap_longer_than_the_stale_period_restarts_the_window() {
    let mut d = detector();
    let changes = feed(&mut d, Signal::ContainerCpuThrottledFraction, &web(), &[(0, 0.5), (400, 0.5), (430, 0.5)]);
    assert!(changes.is_empty(), "{changes:?}");
    let later = feed(&mut d, Signal::ContainerCpuThrottledFraction, &web(), &[(460, 0.5)]);
    assert_eq!(opened(&later)[0].1.started, UnixMillis(400_000));
}

#[test]
fn observations_of_other_signals_entities_or_non_finite_values_do_not_open() {
    let mut d = detector();
    let node = EntityId::node("n1");
    // A container signal observed on a node entity matches no rule.
    assert!(feed(&mut d, Signal::ContainerCpuUtilization, &node, &every_15s(0, 300, 5.0)).is_empty());
    assert!(feed(&mut d, Signal::ContainerCpuUtilization, &web(), &every_15s(0, 300, f64::NAN)).is_empty());
    // Each container has its own state.
    let other = EntityId::container("shop", "web-2", "nginx");
    feed(&mut d, Signal::ContainerCpuUtilization, &web(), &every_15s(0, 45, 0.95));
    let changes = feed(&mut d, Signal::ContainerCpuUtilization, &other, &every_15s(50, 95, 0.95));
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn every_built_in_rule_opens_on_its_signal() {
    for rule in RuleSet::builtin().unwrap().rules {
        let mut d = detector();
        let entity = match rule.entity {
            RuleEntity::Node => EntityId::node("n1"),
            RuleEntity::Pod => EntityId::pod("shop", "web-1"),
            RuleEntity::Container => web(),
        };
        let breach = match rule.comparator {
            Comparator::Above => rule.bound + 1.0,
            Comparator::Below => rule.bound / 2.0,
        };
        let series = every_15s(0, u64::from(rule.window_seconds) + 15, breach);
        let changes = feed(&mut d, rule.signal, &entity, &series);
        let opens = opened(&changes);
        assert_eq!(opens.len(), 1, "{}: {changes:?}", rule.id);
        assert_eq!(opens[0].1.rule, rule.id);
        assert_eq!(opens[0].1.kind, rule.kind);
    }
}

#[test]
fn the_built_in_rules_cover_the_documented_defaults() {
    let rules = RuleSet::builtin().unwrap();
    let find = |id: &str| rules.rules.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("{id} missing"));
    let cpu = find("agent.container.cpu-utilization");
    assert_eq!((cpu.bound, cpu.window_seconds), (0.8, 60));
    assert_eq!(
        (find("agent.container.cpu-throttling").bound, find("agent.container.memory-utilization").bound),
        (0.25, 0.9)
    );
    assert_eq!(find("agent.container.oom-kill").resolve_window_ms(), 300_000);
    assert_eq!(find("agent.container.tcp-retransmits").bound, 1.0);
    assert_eq!(find("agent.container.connection-failures").bound, 1.0);
    assert_eq!(find("agent.container.run-queue-latency").bound, 0.05);
    assert_eq!(
        (find("agent.node.cpu-utilization").bound, find("agent.node.cpu-utilization").window_seconds),
        (0.9, 120)
    );
    let memory = find("agent.node.memory-available");
    assert_eq!((memory.comparator, memory.bound, memory.window_seconds), (Comparator::Below, 0.05, 120));
    assert_eq!(find("agent.node.cpu-pressure").bound, 20.0);
    assert_eq!(rules.stale_seconds, 300);
}

/// A rule with only the required keys, left open so tests can append keys and close it.
const MINIMAL_RULE: &str = concat!(
    r#"{"id":"x.y","kind":"cpu-throttling","entity":"container","#,
    r#""signal":"container_cpu_throttled_fraction","bound":0.5"#
);

#[test]
fn a_minimal_rule_takes_its_defaults() {
    let set = RuleSet::from_json(&format!(r#"{{"rules":[{MINIMAL_RULE}}}]}}"#)).unwrap();
    let rule = &set.rules[0];
    assert_eq!(
        (rule.severity, rule.comparator, rule.window_seconds, rule.trigger),
        (Severity::Medium, Comparator::Above, 60, Trigger::Sustained)
    );
    assert_eq!(rule.resolve_window_ms(), 60_000);
    assert_eq!(set.stale_seconds, 300);
}

#[test]
fn rule_files_with_unknown_keys_or_inconsistent_rules_are_refused() {
    let base = MINIMAL_RULE;
    let with = |extra: &str| format!(r#"{{"rules":[{base}{extra}}}]}}"#);
    assert!(RuleSet::from_json(&with("")).is_ok());
    assert!(matches!(RuleSet::from_json(&with(r#","value":1"#)), Err(RuleError::Syntax(_))));
    assert!(matches!(RuleSet::from_json(&with(r#","resolve":{"bound":0.4,"extra":1}"#)), Err(RuleError::Syntax(_))));
    assert!(matches!(RuleSet::from_json(&with(r#","resolve":{"bound":0.6}"#)), Err(RuleError::Invalid { .. })));
    assert!(matches!(RuleSet::from_json(&format!(r#"{{"rules":[{base}}}],"other":1}}"#)), Err(RuleError::Syntax(_))));
    let wrong_entity = with("").replace(r#""entity":"container""#, r#""entity":"node""#);
    assert!(matches!(RuleSet::from_json(&wrong_entity), Err(RuleError::Invalid { .. })));
    let bad_id = with("").replace("x.y", "X Y");
    assert!(matches!(RuleSet::from_json(&bad_id), Err(RuleError::Invalid { .. })));
    let twice = format!(r#"{{"rules":[{base}}},{base}}}]}}"#);
    assert_eq!(RuleSet::from_json(&twice), Err(RuleError::Duplicate("x.y".into())));
    let below = with(r#","comparator":"below","resolve":{"bound":0.4}"#);
    assert!(matches!(RuleSet::from_json(&below), Err(RuleError::Invalid { .. })));
}

#[test]
fn rates_become_observations_for_the_signals_they_carry() {
    let rates = ContainerRates { cpu_utilization: Some(0.5), new_oom_kills: Some(1), ..ContainerRates::default() };
    let obs = container_observations(&web(), &rates, 9);
    let signals: Vec<_> = obs.iter().map(|o| (o.signal, o.value)).collect();
    assert_eq!(signals, [(Signal::ContainerCpuUtilization, 0.5), (Signal::ContainerOomKills, 1.0)]);
    assert!(obs.iter().all(|o| o.time_ms == 9 && o.entity == web()));
    let node = node_observations(
        &EntityId::node("n1"),
        &NodeRates { psi_io_some_avg10: Some(3.0), ..NodeRates::default() },
        1,
    );
    assert_eq!(node.len(), 1);
    assert_eq!(node[0].signal, Signal::NodePsiIoSomeAvg10);
}

#[test]
fn signal_names_match_their_serde_form_and_entity() {
    for rule in RuleSet::builtin().unwrap().rules {
        assert_eq!(serde_json::to_value(rule.signal).unwrap(), rule.signal.name());
        assert_eq!(rule.signal.entity(), rule.entity);
    }
}
