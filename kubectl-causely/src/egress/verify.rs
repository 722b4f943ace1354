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

#[cfg(test)]
mod tests;
