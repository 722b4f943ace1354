//! The verdict over built ledgers: each tampering named, evidence, windows and counters.

use super::*;
use causely_model::ledger::{LedgerWriter, sha256_hex};
use causely_model::symptom::{Severity, Symptom, SymptomChange, SymptomId, SymptomKind};
use causely_model::{EgressBatch, Entity, EntityId, SCHEMA_VERSION, TopologyPayload};

fn batch(seq: u64) -> EgressBatch {
    let pod = EntityId::pod("shop", format!("web-{seq}"));
    EgressBatch {
        cluster_id: "prod-eu-1".into(),
        seq,
        time: UnixMillis(1_000 * seq),
        schema_version: SCHEMA_VERSION,
        topology: TopologyPayload::Delta {
            added_entities: vec![Entity::new(pod.clone())],
            removed_entities: vec![],
            added_edges: vec![],
            removed_edges: vec![],
        },
        symptoms: vec![SymptomChange::Opened {
            symptom: Symptom {
                id: SymptomId::of("k8s.crashloop", &pod, UnixMillis(seq)),
                kind: SymptomKind::CrashLoop,
                entity: pod,
                severity: Severity::High,
                rule: "k8s.crashloop".into(),
                threshold: None,
                started: UnixMillis(seq),
                resolved: None,
            },
        }],
    }
}

/// A mediator that sent seqs 1..=n at 1 s intervals, all delivered, with its status agreeing.
struct Fixture {
    writer: LedgerWriter,
    payloads: BTreeMap<u64, Vec<u8>>,
    bytes: u64,
    count: u64,
}

impl Fixture {
    fn new(n: u64) -> Self {
        let mut fx = Fixture { writer: LedgerWriter::default(), payloads: BTreeMap::new(), bytes: 0, count: 0 };
        for seq in 1..=n {
            fx.send(seq, serde_json::to_vec(&batch(seq)).unwrap());
        }
        fx
    }

    fn send(&mut self, seq: u64, body: Vec<u8>) {
        let record = LedgerRecord::Sent { seq, bytes: body.len() as u64, sha256: sha256_hex(&body) };
        self.writer.append(UnixMillis(1_000 * seq), record).unwrap();
        self.bytes += body.len() as u64;
        self.count += 1;
        self.payloads.insert(seq, body);
    }

    fn sent(&self) -> u64 {
        self.count
    }

    fn status(&self) -> EgressStatus {
        EgressStatus {
            cluster_id: "prod-eu-1".into(),
            upstream: "none".into(),
            leader: true,
            ledger_entries: self.writer.next_index(),
            batches_accepted: self.sent(),
            bytes_accepted: self.bytes,
            delivered_seq: self.sent(),
            next_seq: self.sent() + 1,
            ..EgressStatus::default()
        }
    }

    fn gathered(&self) -> Gathered {
        Gathered {
            source: "the mediator at http://m".into(),
            ledger: self.writer.bytes.clone(),
            payloads: self.payloads.clone(),
            since: None,
            counters: Counters::Mediator {
                status: Box::new(self.status()),
                metrics: Some(MetricCounters { batches: self.sent(), bytes: self.bytes, rejected: 0, dropped: 0 }),
                later: Later { delivered_seq: self.sent(), dropped: BTreeSet::new() },
            },
            policies: PolicyCheck::Compared { namespace: "causely".into(), findings: vec![] },
            raw: RawStore::Known { source: "vm".into(), bytes: 1_000_000, rows: Some(100_000) },
            notes: vec![],
        }
    }
}

fn rules(report: &Report) -> Vec<(&str, Option<u64>)> {
    report.violations.iter().map(|f| (f.rule.as_str(), f.seq)).collect()
}

#[test]
fn a_clean_ledger_is_proven_with_its_evidence() {
    let fx = Fixture::new(5);
    let report = verify(&fx.gathered(), &EgressGuard::new());
    assert_eq!(report.verdict, Verdict::Proven, "{:?}", report.violations);
    assert!(report.checks.iter().all(|c| c.status == CheckStatus::Passed), "{:?}", report.checks);
    let e = &report.evidence;
    assert_eq!((e.window.batches, e.window.bytes, e.payloads_checked), (5, fx.bytes, 5));
    assert_eq!((e.window.first_time, e.window.last_time), (Some(UnixMillis(1_000)), Some(UnixMillis(5_000))));
    assert_eq!(e.content.entity_kinds.get("pod"), Some(&5));
    assert_eq!(e.content.symptom_kinds, BTreeSet::from([SymptomKind::CrashLoop]));
    assert_eq!(e.raw.egress_ratio, Some(fx.bytes as f64 / 1_000_000.0));
}

#[test]
fn a_changed_payload_byte_is_a_violation_naming_entry_and_seq() {
    let mut fx = Fixture::new(4);
    let body = fx.payloads.get_mut(&3).unwrap();
    let at = body.windows(5).position(|w| w == b"web-3").unwrap();
    body[at] = b'x';
    let report = verify(&fx.gathered(), &EgressGuard::new());
    assert_eq!(report.verdict, Verdict::Violation);
    assert_eq!(rules(&report), vec![("payload-hash-mismatch", Some(3))]);
    assert_eq!(report.violations[0].index, Some(2));
    assert_eq!(report.violations[0].check, CHECK_PAYLOADS);
}

#[test]
fn a_smuggled_series_with_a_recomputed_chain_is_caught_by_the_guard() {
    let mut fx = Fixture::new(3);
    let mut leaky = serde_json::to_value(batch(4)).unwrap();
    leaky["topology"]["addedEntities"][0]["labels"] = serde_json::json!({"cpu": "0.93,0.95,0.97"});
    fx.send(4, serde_json::to_vec(&leaky).unwrap());
    let report = verify(&fx.gathered(), &EgressGuard::new());
    assert_eq!(rules(&report), vec![("payload-rejected", Some(4))]);
    assert_eq!(report.violations[0].check, CHECK_GUARD);
    assert_eq!(report.violations[0].guard_rule, Some(RejectionRule::SeriesString));
}

#[test]
fn a_deleted_or_swapped_entry_is_a_chain_violation() {
    let fx = Fixture::new(4);
    let (lines, _) = ledger::split_lines(&fx.writer.bytes);
    let join = |lines: &[&[u8]]| lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect::<Vec<u8>>();
    let mut deleted = lines.clone();
    deleted.remove(1);
    let mut gathered = fx.gathered();
    gathered.ledger = join(&deleted);
    let report = verify(&gathered, &EgressGuard::new());
    assert!(report.violations.iter().any(|f| f.rule == "chain-broken" && f.index == Some(1)), "{report:?}");
    assert!(report.violations.iter().any(|f| f.rule == "seq-gap"), "{report:?}");
    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    gathered.ledger = join(&swapped);
    let report = verify(&gathered, &EgressGuard::new());
    assert!(report.violations.iter().any(|f| f.rule == "index-not-contiguous" && f.index == Some(1)));
    assert!(report.violations.iter().all(|f| f.check == CHECK_CHAIN || f.check == CHECK_COUNTERS));
}

#[test]
fn expired_payloads_are_evidence_not_violations() {
    let mut fx = Fixture::new(5);
    for seq in 1..=3 {
        fx.payloads.remove(&seq);
    }
    let mut gathered = fx.gathered();
    gathered.payloads = fx.payloads.clone();
    let report = verify(&gathered, &EgressGuard::new());
    assert_eq!(report.verdict, Verdict::Proven, "{:?}", report.violations);
    assert_eq!((report.evidence.payloads_not_kept, report.evidence.not_kept_seqs.as_str()), (3, "1-3"));
}

#[test]
fn a_payload_gone_out_of_order_or_before_delivery_is_a_violation() {
    let fx = Fixture::new(5);
    let mut gathered = fx.gathered();
    gathered.payloads.remove(&3);
    let report = verify(&gathered, &EgressGuard::new());
    assert_eq!(rules(&report), vec![("payload-missing", Some(3))]);
    assert!(report.violations[0].message.contains("seq 1"), "{}", report.violations[0].message);
    // Undelivered: seq 5 must be kept even though nothing earlier is.
    let mut gathered = fx.gathered();
    gathered.payloads.clear();
    if let Counters::Mediator { status, later, .. } = &mut gathered.counters {
        status.delivered_seq = 4;
        later.delivered_seq = 4;
    }
    let report = verify(&gathered, &EgressGuard::new());
    assert_eq!(rules(&report), vec![("payload-missing", Some(5))]);
    // Dropped after the ledger was read: explained.
    if let Counters::Mediator { later, .. } = &mut gathered.counters {
        later.dropped.insert(5);
    }
    assert_eq!(verify(&gathered, &EgressGuard::new()).verdict, Verdict::Proven);
}

#[test]
fn counters_that_disagree_with_the_ledger_are_violations() {
    let fx = Fixture::new(4);
    // The ledger lost its last entry (a cut tail keeps the chain intact) while the mediator ran.
    let (lines, _) = ledger::split_lines(&fx.writer.bytes);
    let mut gathered = fx.gathered();
    gathered.ledger = lines[..3].iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    gathered.payloads.remove(&4);
    let report = verify(&gathered, &EgressGuard::new());
    assert_eq!(report.verdict, Verdict::Violation);
    assert!(report.violations.iter().all(|f| f.rule == "counter-mismatch"), "{:?}", report.violations);
    let messages: Vec<&str> = report.violations.iter().map(|f| f.message.as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("counts 4 ledger entries, the ledger records 3")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("4 batches accepted, the ledger records 3")), "{messages:?}");
    // Metrics count since the process started: fewer is fine, more is not.
    let mut gathered = fx.gathered();
    if let Counters::Mediator { metrics: Some(m), .. } = &mut gathered.counters {
        m.batches = 2;
    }
    assert_eq!(verify(&gathered, &EgressGuard::new()).verdict, Verdict::Proven);
    if let Counters::Mediator { metrics: Some(m), .. } = &mut gathered.counters {
        m.bytes = fx.bytes + 1;
    }
    let report = verify(&gathered, &EgressGuard::new());
    assert_eq!(report.violations.len(), 1);
    assert!(report.violations[0].message.contains("causely_mediator_egress_bytes_total"));
}

#[test]
fn a_window_limits_evidence_and_payload_checks_but_not_the_chain() {
    let mut fx = Fixture::new(6);
    // Seq 2's payload is corrupt but outside the window; seq 1's line is edited, which the
    // chain still catches.
    fx.payloads.get_mut(&2).unwrap()[10] = b'#';
    let mut gathered = fx.gathered();
    gathered.since = Some(UnixMillis(4_000));
    let report = verify(&gathered, &EgressGuard::new());
    assert_eq!(report.verdict, Verdict::Proven, "{:?}", report.violations);
    let e = &report.evidence;
    assert_eq!((e.window.batches, e.payloads_checked, e.payloads_outside_window, e.ledger_entries), (3, 3, 3, 6));
    let text = String::from_utf8(gathered.ledger.clone()).unwrap().replacen("\"time\":1000", "\"time\":1001", 1);
    gathered.ledger = text.into_bytes();
    let report = verify(&gathered, &EgressGuard::new());
    assert!(report.violations.iter().any(|f| f.rule == "chain-broken" && f.index == Some(1)), "{report:?}");
}

#[test]
fn a_check_that_could_not_run_makes_the_verdict_could_not_verify_unless_skipped() {
    let fx = Fixture::new(2);
    let mut gathered = fx.gathered();
    gathered.policies = PolicyCheck::CouldNotCheck("Causely is not installed in namespace causely".into());
    let report = verify(&gathered, &EgressGuard::new());
    assert_eq!(report.verdict, Verdict::CouldNotVerify);
    gathered.policies = PolicyCheck::Skipped;
    gathered.raw = RawStore::Unknown("unreachable".into());
    let report = verify(&gathered, &EgressGuard::new());
    assert_eq!(report.verdict, Verdict::Proven);
    assert_eq!(report.evidence.raw.egress_ratio, None);
    // A violation outranks what could not be checked.
    gathered.policies = PolicyCheck::CouldNotCheck("unreachable".into());
    gathered.payloads.get_mut(&1).unwrap()[5] = b'#';
    assert_eq!(verify(&gathered, &EgressGuard::new()).verdict, Verdict::Violation);
}

#[test]
fn an_offline_state_directory_has_no_counters_to_reconcile() {
    let fx = Fixture::new(3);
    let mut gathered = fx.gathered();
    gathered.counters = Counters::Offline { delivered_seq: 3 };
    let report = verify(&gathered, &EgressGuard::new());
    assert_eq!(report.verdict, Verdict::Proven);
    let counters = report.checks.iter().find(|c| c.name == CHECK_COUNTERS).unwrap();
    assert_eq!(counters.status, CheckStatus::NotApplicable);
    gathered.counters = Counters::Offline { delivered_seq: 2 };
    gathered.payloads.remove(&3);
    assert_eq!(rules(&verify(&gathered, &EgressGuard::new())), vec![("payload-missing", Some(3))]);
}

#[test]
fn network_policies_missing_or_changed_are_violations() {
    let fx = Fixture::new(1);
    let mut gathered = fx.gathered();
    gathered.policies = PolicyCheck::Compared {
        namespace: "causely".into(),
        findings: vec![
            PolicyFinding { name: "causely-agent".into(), state: PolicyState::InPlace, detail: String::new() },
            PolicyFinding { name: "causely-mediator".into(), state: PolicyState::Missing, detail: "absent".into() },
        ],
    };
    let report = verify(&gathered, &EgressGuard::new());
    assert_eq!(rules(&report), vec![("network-policy-missing", None)]);
    assert!(report.violations[0].message.contains("causely/causely-mediator"));
}

#[test]
fn only_sent_seqs_of_the_window_that_were_not_dropped_are_fetched() {
    let mut fx = Fixture::new(4);
    fx.writer.append(UnixMillis(5_000), LedgerRecord::Dropped { seq: 4, reason: "disk bound".into() }).unwrap();
    let all = payloads_to_fetch(&fx.writer.bytes, None);
    assert_eq!(all.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(all[0].1, fx.payloads[&1].len() as u64);
    let recent = payloads_to_fetch(&fx.writer.bytes, Some(UnixMillis(2_000)));
    assert_eq!(recent.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![2, 3]);
}

#[test]
fn seq_lists_print_as_ranges() {
    assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
    assert_eq!(ranges(&[]), "");
}
