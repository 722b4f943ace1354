//! The verdict of `egress verify`, from what was gathered: the ledger's chain and every kept
//! payload (through `causely_model::ledger`, the mediator's own code), payloads that should still
//! be kept, the mediator's counters against the ledger, the NetworkPolicies, and the evidence of
//! what left. Pure: values in, a [`Report`] out.

use std::collections::{BTreeMap, BTreeSet};

use causely_model::api::EgressStatus;
use causely_model::guard::EgressGuard;
use causely_model::ledger::{self, LedgerEntry, LedgerRecord, PayloadLookup, Summary, Violation};
use causely_model::{RejectionRule, UnixMillis};
use serde::Serialize;

use super::policies::{PolicyFinding, PolicyState};

/// Everything the verifier gathered, as values.
#[derive(Debug, Clone)]
pub struct Gathered {
    /// Where the ledger came from, for the report ("the mediator at …", "state directory …").
    pub source: String,
    /// The ledger's lines, each ending in a newline (a last line without one is an unfinished append).
    pub ledger: Vec<u8>,
    /// The kept payloads that were fetched, by seq.
    pub payloads: BTreeMap<u64, Vec<u8>>,
    /// Only entries at or after this instant are evidence and have their payloads checked.
    pub since: Option<UnixMillis>,
    pub counters: Counters,
    pub policies: PolicyCheck,
    pub raw: RawStore,
    /// Remarks from gathering (a part that could not be read but is not a check).
    pub notes: Vec<String>,
}

/// The mediator's own account of its egress, to reconcile with the ledger.
#[derive(Debug, Clone)]
pub enum Counters {
    /// From a running mediator.
    Mediator {
        /// `GET /v1/egress`, read before the ledger; the ledger was read up to its `ledgerEntries`.
        status: Box<EgressStatus>,
        /// The `causely_mediator_egress_*` counters of `/metrics`, read before `status`; they count
        /// since the process started. `None` when `/metrics` could not be read.
        metrics: Option<MetricCounters>,
        /// What changed after `status`, read once the payloads were fetched.
        later: Later,
    },
    /// A state directory read directly: there are no counters, only the `delivered` cursor.
    Offline { delivered_seq: u64 },
}

/// The egress counters of the mediator's `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricCounters {
    pub batches: u64,
    pub bytes: u64,
    pub rejected: u64,
    pub dropped: u64,
}

/// Changes between reading the status and fetching the last payload, so that a payload dropped
/// or delivered and expired meanwhile is not taken for one removed behind the mediator's back.
#[derive(Debug, Clone, Default)]
pub struct Later {
    pub delivered_seq: u64,
    /// Seqs dropped by ledger entries after the ones verified.
    pub dropped: BTreeSet<u64>,
}

/// The NetworkPolicy check, as far as it could run.
#[derive(Debug, Clone)]
pub enum PolicyCheck {
    /// `--skip-network-policies`.
    Skipped,
    /// The cluster or the install could not be read.
    CouldNotCheck(String),
    /// The live policies of the install's namespace against the release's.
    Compared { namespace: String, findings: Vec<PolicyFinding> },
}

/// The bytes VictoriaMetrics stores, to compare the egress with.
#[derive(Debug, Clone, PartialEq)]
pub enum RawStore {
    Known { source: String, bytes: u64, rows: Option<u64> },
    Unknown(String),
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    Passed,
    Failed,
    CouldNotCheck,
    Skipped,
    /// The check does not apply to this source (counters of a state directory).
    NotApplicable,
}

/// One of the checks and how it came out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutcome {
    pub name: &'static str,
    pub status: CheckStatus,
    pub detail: String,
}

pub const CHECK_CHAIN: &str = "hash-chain";
pub const CHECK_PAYLOADS: &str = "payloads";
pub const CHECK_GUARD: &str = "egress-guard";
pub const CHECK_COUNTERS: &str = "counters";
pub const CHECK_POLICIES: &str = "network-policies";

/// One violation: which check, which rule, where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub check: &'static str,
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The guard's rule, for a payload the guard refuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard_rule: Option<RejectionRule>,
    pub message: String,
}

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every check ran (or was skipped on request) and found nothing.
    Proven,
    /// At least one violation.
    Violation,
    /// No violation, but a check that was asked for could not run.
    CouldNotVerify,
}

/// What the entries of the window show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowEvidence {
    pub since: Option<UnixMillis>,
    pub entries: u64,
    pub batches: u64,
    pub bytes: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub first_time: Option<UnixMillis>,
    pub last_time: Option<UnixMillis>,
}

/// The evidence behind the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// Every entry, whatever the window: the chain is verified from the first.
    pub ledger_entries: u64,
    pub window: WindowEvidence,
    pub payloads_checked: u64,
    /// Sent seqs in the window whose payload is no longer kept (expired after delivery, or dropped).
    pub payloads_not_kept: u64,
    /// The same seqs, as ranges (`1-40, 42`).
    pub not_kept_seqs: String,
    /// Sent seqs before the window (chained, payloads not looked at).
    pub payloads_outside_window: u64,
    /// What the checked payloads carried (the model's summary).
    pub content: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mediator: Option<EgressStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricCounters>,
    pub network_policies: Vec<PolicyFinding>,
    pub raw: RawEvidence,
}

/// The egress against the raw data VictoriaMetrics keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEvidence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `vm_data_size_bytes`, summed: what VictoriaMetrics stores now (its whole retention).
    pub victoria_metrics_bytes: Option<u64>,
    pub victoria_metrics_rows: Option<u64>,
    /// The window's egress bytes over `victoriaMetricsBytes`.
    pub egress_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_because: Option<String>,
}

/// The result of `egress verify`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub verdict: Verdict,
    pub source: String,
    pub checks: Vec<CheckOutcome>,
    pub violations: Vec<Finding>,
    pub evidence: Evidence,
    /// Remarks that are neither violations nor checks (an unfinished last line, unreadable metrics).
    pub notes: Vec<String>,
}

/// One parsed ledger line; `None` where the line is not an entry (reported by the chain check).
fn parse_entries(lines: &[&[u8]]) -> Vec<Option<LedgerEntry>> {
    lines.iter().map(|line| LedgerEntry::parse(line).ok()).collect()
}

fn in_window(entry: &LedgerEntry, since: Option<UnixMillis>) -> bool {
    since.is_none_or(|since| entry.time >= since)
}

/// The payloads a verifier should fetch: each sent seq in the window, with its recorded size, in
/// seq order. Seqs the ledger itself dropped are left out (their payload is gone by design).
pub fn payloads_to_fetch(ledger: &[u8], since: Option<UnixMillis>) -> Vec<(u64, u64)> {
    let (lines, _) = ledger::split_lines(ledger);
    let entries = parse_entries(&lines);
    let dropped: BTreeSet<u64> = entries
        .iter()
        .flatten()
        .filter_map(|e| match e.record {
            LedgerRecord::Dropped { seq, .. } => Some(seq),
            _ => None,
        })
        .collect();
    let mut out: Vec<(u64, u64)> = entries
        .iter()
        .flatten()
        .filter(|e| in_window(e, since))
        .filter_map(|e| match e.record {
            LedgerRecord::Sent { seq, bytes, .. } if !dropped.contains(&seq) => Some((seq, bytes)),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.dedup_by_key(|(seq, _)| *seq);
    out
}

/// `1-40, 42, 45-46`.
pub fn ranges(seqs: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = seqs.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
    }
    out.join(", ")
}

fn finding_of(violation: &Violation) -> Finding {
    let (check, guard_rule) = match violation {
        Violation::PayloadRejected { rejection, .. } => (CHECK_GUARD, Some(rejection.rule)),
        v if v.is_of_the_chain() => (CHECK_CHAIN, None),
        _ => (CHECK_PAYLOADS, None),
    };
    Finding {
        check,
        rule: violation.name().to_owned(),
        index: Some(violation.index()),
        seq: violation.seq(),
        guard_rule,
        message: violation.to_string(),
    }
}

/// A sent seq of the window, with the position of its entry.
#[derive(Debug, Clone, Copy)]
struct SentInWindow {
    index: u64,
    seq: u64,
}

/// Payloads the ledger says must still be there: a batch not yet delivered is never expired, and
/// delivered payloads expire oldest first, so one missing while an earlier one is kept was removed
/// by something other than the mediator.
fn missing_payloads(
    sent: &[SentInWindow],
    payloads: &BTreeMap<u64, Vec<u8>>,
    delivered_seq: u64,
    dropped_later: &BTreeSet<u64>,
) -> (Vec<Finding>, Vec<u64>) {
    let mut findings = Vec::new();
    let mut not_kept = Vec::new();
    let mut earliest_kept: Option<u64> = None;
    for s in sent {
        if payloads.contains_key(&s.seq) {
            earliest_kept.get_or_insert(s.seq);
            continue;
        }
        not_kept.push(s.seq);
        if dropped_later.contains(&s.seq) {
            continue;
        }
        let why = if s.seq > delivered_seq {
            Some(format!(
                "seq {} is not delivered yet (delivered up to {delivered_seq}), so its payload must be kept",
                s.seq
            ))
        } else {
            earliest_kept.map(|kept| {
                format!(
                    "the payload of seq {} is gone while that of seq {kept}, accepted earlier, is kept: payloads expire oldest first",
                    s.seq
                )
            })
        };
        if let Some(why) = why {
            findings.push(Finding {
                check: CHECK_PAYLOADS,
                rule: "payload-missing".to_owned(),
                index: Some(s.index),
                seq: Some(s.seq),
                guard_rule: None,
                message: format!("entry {}: {why}", s.index),
            });
        }
    }
    (findings, not_kept)
}

fn mismatch(what: &str, mediator: u64, ledger: u64) -> Finding {
    Finding {
        check: CHECK_COUNTERS,
        rule: "counter-mismatch".to_owned(),
        index: None,
        seq: None,
        guard_rule: None,
        message: format!("the mediator counts {mediator} {what}, the ledger records {ledger}"),
    }
}

/// The mediator's status against the ledger it served (up to the status's entry count), and its
/// `/metrics` counters, which count since the process started and so can never exceed the ledger.
fn reconcile(status: &EgressStatus, metrics: Option<&MetricCounters>, lines: u64, summary: &Summary) -> Vec<Finding> {
    let mut out = Vec::new();
    let pairs = [
        ("ledger entries", status.ledger_entries, lines),
        ("batches accepted", status.batches_accepted, summary.sent),
        ("bytes accepted", status.bytes_accepted, summary.sent_bytes),
        ("batches rejected", status.batches_rejected, summary.rejected),
        ("batches dropped", status.batches_dropped, summary.dropped),
        ("as the next seq", status.next_seq, summary.next_seq),
    ];
    for (what, mediator, ledger) in pairs {
        if mediator != ledger {
            out.push(mismatch(what, mediator, ledger));
        }
    }
    if let Some(m) = metrics {
        let since_start = [
            ("batches accepted since it started (causely_mediator_egress_batches_total)", m.batches, summary.sent),
            ("bytes accepted since it started (causely_mediator_egress_bytes_total)", m.bytes, summary.sent_bytes),
            (
                "batches rejected since it started (causely_mediator_egress_rejected_total)",
                m.rejected,
                summary.rejected,
            ),
            ("batches dropped since it started (causely_mediator_egress_dropped_total)", m.dropped, summary.dropped),
        ];
        for (what, counted, ledger) in since_start {
            if counted > ledger {
                out.push(mismatch(what, counted, ledger));
            }
        }
    }
    out
}

fn window_evidence(entries: &[Option<LedgerEntry>], since: Option<UnixMillis>) -> WindowEvidence {
    let mut w = WindowEvidence { since, ..WindowEvidence::default() };
    for entry in entries.iter().flatten().filter(|e| in_window(e, since)) {
        w.entries += 1;
        w.first_time = Some(w.first_time.map_or(entry.time, |t| t.min(entry.time)));
        w.last_time = Some(w.last_time.map_or(entry.time, |t| t.max(entry.time)));
        match &entry.record {
            LedgerRecord::Sent { bytes, .. } => {
                w.batches += 1;
                w.bytes = w.bytes.saturating_add(*bytes);
            }
            LedgerRecord::Rejected { .. } => w.rejected += 1,
            LedgerRecord::Dropped { .. } => w.dropped += 1,
            LedgerRecord::Resumed { .. } => {}
        }
    }
    w
}

fn outcome(name: &'static str, findings: &[Finding], passed: String) -> CheckOutcome {
    let failed = findings.iter().filter(|f| f.check == name).count();
    if failed == 0 {
        CheckOutcome { name, status: CheckStatus::Passed, detail: passed }
    } else {
        CheckOutcome { name, status: CheckStatus::Failed, detail: format!("{failed} violation(s)") }
    }
}

/// Verifies what was gathered and gives the verdict with its evidence.
pub fn verify(gathered: &Gathered, guard: &EgressGuard) -> Report {
    let (lines, unterminated) = ledger::split_lines(&gathered.ledger);
    let entries = parse_entries(&lines);
    let since = gathered.since;
    let window_seqs: BTreeSet<u64> = payloads_to_fetch(&gathered.ledger, since).into_iter().map(|(s, _)| s).collect();
    let before_window: BTreeSet<u64> = entries
        .iter()
        .flatten()
        .filter(|e| !in_window(e, since))
        .filter_map(|e| match e.record {
            LedgerRecord::Sent { seq, .. } => Some(seq),
            _ => None,
        })
        .collect();
    let lookup = |seq: u64| {
        if window_seqs.contains(&seq) {
            gathered.payloads.get(&seq).map_or(PayloadLookup::NotKept, |body| PayloadLookup::Kept(body.clone()))
        } else if before_window.contains(&seq) {
            PayloadLookup::NotChecked
        } else {
            // Dropped by the ledger itself: gone by design.
            PayloadLookup::NotKept
        }
    };
    let verification = ledger::verify_lines_with(&lines, lookup, guard);
    let summary = verification.summary;
    let mut findings: Vec<Finding> = verification.violations.iter().map(finding_of).collect();
    let mut notes = gathered.notes.clone();
    if unterminated {
        notes.push("the ledger ends in a line without its newline (an append in progress or cut short); it is not an entry and was not checked".to_owned());
    }

    let sent: Vec<SentInWindow> = entries
        .iter()
        .enumerate()
        .filter_map(|(index, e)| match e.as_ref().map(|e| &e.record) {
            Some(LedgerRecord::Sent { seq, .. }) if window_seqs.contains(seq) => {
                Some(SentInWindow { index: index as u64, seq: *seq })
            }
            _ => None,
        })
        .collect();
    let (delivered_seq, dropped_later) = match &gathered.counters {
        Counters::Mediator { later, status, .. } => {
            (later.delivered_seq.max(status.delivered_seq), later.dropped.clone())
        }
        Counters::Offline { delivered_seq } => (*delivered_seq, BTreeSet::new()),
    };
    let (missing, not_kept) = missing_payloads(&sent, &gathered.payloads, delivered_seq, &dropped_later);
    findings.extend(missing);

    let mut checks = vec![
        outcome(
            CHECK_CHAIN,
            &findings,
            format!("{} entries chained from the first; indexes and seqs contiguous", lines.len()),
        ),
        outcome(
            CHECK_PAYLOADS,
            &findings,
            format!(
                "{} kept payloads match the size and SHA-256 their entries record; {} no longer kept, as expected",
                summary.payloads_checked,
                not_kept.len()
            ),
        ),
        outcome(
            CHECK_GUARD,
            &findings,
            format!("{} kept payloads pass the egress schema and content rules", summary.payloads_checked),
        ),
    ];

    let (status, metrics) = match &gathered.counters {
        Counters::Mediator { status, metrics, .. } => {
            findings.extend(reconcile(status, metrics.as_ref(), lines.len() as u64, &summary));
            if metrics.is_none() {
                notes.push(
                    "the mediator's /metrics could not be read; its counters since start were not compared".to_owned(),
                );
            }
            let passed = format!(
                "the mediator's counters equal the ledger: {} entries, {} batches, {} bytes, {} rejected, {} dropped",
                status.ledger_entries,
                status.batches_accepted,
                status.bytes_accepted,
                status.batches_rejected,
                status.batches_dropped
            );
            checks.push(outcome(CHECK_COUNTERS, &findings, passed));
            (Some(status.as_ref().clone()), *metrics)
        }
        Counters::Offline { .. } => {
            checks.push(CheckOutcome {
                name: CHECK_COUNTERS,
                status: CheckStatus::NotApplicable,
                detail: "a state directory has no counters (they live in the mediator process)".to_owned(),
            });
            (None, None)
        }
    };

    let mut policy_evidence = Vec::new();
    checks.push(match &gathered.policies {
        PolicyCheck::Skipped => CheckOutcome {
            name: CHECK_POLICIES,
            status: CheckStatus::Skipped,
            detail: "--skip-network-policies".to_owned(),
        },
        PolicyCheck::CouldNotCheck(why) => {
            CheckOutcome { name: CHECK_POLICIES, status: CheckStatus::CouldNotCheck, detail: why.clone() }
        }
        PolicyCheck::Compared { namespace, findings: policy_findings } => {
            for p in policy_findings.iter().filter(|p| p.state != PolicyState::InPlace) {
                findings.push(Finding {
                    check: CHECK_POLICIES,
                    rule: format!("network-policy-{}", p.state.name()),
                    index: None,
                    seq: None,
                    guard_rule: None,
                    message: format!("NetworkPolicy {namespace}/{}: {}", p.name, p.detail),
                });
            }
            policy_evidence = policy_findings.clone();
            let in_place = policy_findings.iter().filter(|p| p.state == PolicyState::InPlace).count();
            outcome(
                CHECK_POLICIES,
                &findings,
                format!("{in_place} NetworkPolicies in namespace {namespace} are as the release renders them"),
            )
        }
    });

    let window = window_evidence(&entries, since);
    let raw = match &gathered.raw {
        RawStore::Known { source, bytes, rows } => RawEvidence {
            source: Some(source.clone()),
            victoria_metrics_bytes: Some(*bytes),
            victoria_metrics_rows: *rows,
            egress_ratio: (*bytes > 0).then(|| window.bytes as f64 / *bytes as f64),
            unknown_because: None,
        },
        RawStore::Unknown(why) => RawEvidence {
            source: None,
            victoria_metrics_bytes: None,
            victoria_metrics_rows: None,
            egress_ratio: None,
            unknown_because: Some(why.clone()),
        },
    };

    let verdict = if !findings.is_empty() {
        Verdict::Violation
    } else if checks.iter().any(|c| c.status == CheckStatus::CouldNotCheck) {
        Verdict::CouldNotVerify
    } else {
        Verdict::Proven
    };
    findings.sort_by_key(|f| (f.index.is_none(), f.index, f.check));
    Report {
        verdict,
        source: gathered.source.clone(),
        checks,
        violations: findings,
        evidence: Evidence {
            ledger_entries: lines.len() as u64,
            window,
            payloads_checked: summary.payloads_checked,
            payloads_not_kept: not_kept.len() as u64,
            not_kept_seqs: ranges(&not_kept),
            payloads_outside_window: summary.payloads_not_checked,
            content: summary,
            mediator: status,
            metrics,
            network_policies: policy_evidence,
            raw,
        },
        notes,
    }
}

/// Sums the samples of `name` (any labels) in Prometheus text; `None` when it is not exposed.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        // The value follows the labels (which may hold spaces inside quotes) and precedes an
        // optional timestamp.
        let after_labels = match rest.rfind('}') {
            Some(end) => &rest[end + 1..],
            None => rest,
        };
        if let Some(value) = after_labels.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// The egress counters of a mediator's `/metrics`; `None` when they are not all there.
pub fn mediator_metrics(text: &str) -> Option<MetricCounters> {
    let get = |name: &str| metric_sum(text, name).map(|v| v as u64);
    Some(MetricCounters {
        batches: get("causely_mediator_egress_batches_total")?,
        bytes: get("causely_mediator_egress_bytes_total")?,
        // No sample until the first refusal: a family with no label set yet.
        rejected: get("causely_mediator_egress_rejected_total").unwrap_or(0),
        dropped: get("causely_mediator_egress_dropped_total")?,
    })
}

/// What VictoriaMetrics' own `/metrics` says it stores: bytes (`vm_data_size_bytes`, every part)
/// and rows (`vm_rows` of its data storage, the index left out).
pub fn victoria_metrics_size(text: &str) -> Option<(u64, Option<u64>)> {
    let bytes = metric_sum(text, "vm_data_size_bytes")? as u64;
    let rows = text
        .lines()
        .filter(|l| l.starts_with("vm_rows{") && l.contains("type=\"storage/"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
        .map(|v| v as u64);
    Some((bytes, rows))
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn prometheus_counters_are_summed_over_label_sets() {
        let text = "# HELP x\ncausely_mediator_egress_batches_total 12\ncausely_mediator_egress_bytes_total 3400\n\
                    causely_mediator_egress_rejected_total{rule=\"series-string\"} 1\n\
                    causely_mediator_egress_rejected_total{rule=\"number array\"} 2 1700000000\n\
                    causely_mediator_egress_dropped_total 0\ncausely_mediator_egress_batches_totalx 9\n";
        assert_eq!(mediator_metrics(text), Some(MetricCounters { batches: 12, bytes: 3400, rejected: 3, dropped: 0 }));
        assert_eq!(mediator_metrics("causely_mediator_egress_batches_total 1\n"), None);
        let vm = "vm_data_size_bytes{type=\"indexdb\"} 17590\nvm_data_size_bytes{type=\"storage/small\"} 3275\n\
                  vm_rows{type=\"indexdb\"} 1227\nvm_rows{type=\"storage/small\"} 662\nvm_rows{type=\"storage/big\"} 0\n";
        assert_eq!(victoria_metrics_size(vm), Some((20_865, Some(662))));
        assert_eq!(victoria_metrics_size("go_goroutines 5\n"), None);
    }
}
