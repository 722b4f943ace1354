//! Text and JSON for `egress verify` (the verdict, its checks, violations and evidence) and
//! `egress tail` (one line, or one JSON object, per ledger entry with its decoded batch).

use std::fmt::Write as _;

use causely_model::ledger::{LedgerEntry, LedgerRecord};
use causely_model::{EgressBatch, SymptomChange, TopologyPayload, UnixMillis};
use k8s_openapi::jiff::Timestamp;

use super::verify::{CheckStatus, Report, Verdict};

/// An instant as RFC 3339 UTC to the second.
pub fn time(t: UnixMillis) -> String {
    match Timestamp::from_millisecond(i64::try_from(t.0).unwrap_or(i64::MAX)) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => format!("{}ms", t.0),
    }
}

/// `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `name 3, other 1`.
fn counts<'a>(items: impl IntoIterator<Item = (&'a String, &'a u64)>) -> String {
    let text: Vec<String> = items.into_iter().map(|(k, v)| format!("{k} {}", thousands(*v))).collect();
    if text.is_empty() { "none".to_owned() } else { text.join(", ") }
}

fn verdict_line(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Proven => "PROVEN: only topology and symptoms left the cluster, as far as the ledger records",
        Verdict::Violation => "VIOLATION: the egress record does not hold up; see the violations below",
        Verdict::CouldNotVerify => "COULD NOT VERIFY: no violation found, but a check could not run",
    }
}

fn status_word(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Passed => "ok",
        CheckStatus::Failed => "FAILED",
        CheckStatus::CouldNotCheck => "could not check",
        CheckStatus::Skipped => "skipped",
        CheckStatus::NotApplicable => "n/a",
    }
}

/// The report as text: verdict, evidence, checks, violations, notes.
pub fn report_text(report: &Report) -> String {
    let e = &report.evidence;
    let w = &e.window;
    let c = &e.content;
    let mut out = String::new();
    let _ = writeln!(out, "egress verify: {}", verdict_line(report.verdict));
    let _ = writeln!(out, "source: {}", report.source);
    let range = match (w.first_time, w.last_time) {
        (Some(a), Some(b)) => format!("{} .. {}", time(a), time(b)),
        _ => "no entries".to_owned(),
    };
    let window = match w.since {
        Some(since) => format!("entries since {} ({} of {})", time(since), w.entries, e.ledger_entries),
        None => format!("all {} entries", e.ledger_entries),
    };
    let _ = writeln!(out, "window: {window}, {range}; chain verified from entry 0");
    let _ = writeln!(
        out,
        "batches: {} sent ({} bytes), {} rejected by the guard (nothing sent), {} dropped before delivery",
        thousands(w.batches),
        thousands(w.bytes),
        w.rejected,
        w.dropped
    );
    let mut payloads = format!(
        "payloads: {} kept and re-checked; {} no longer kept",
        thousands(e.payloads_checked),
        thousands(e.payloads_not_kept)
    );
    if !e.not_kept_seqs.is_empty() {
        let _ = write!(payloads, " (seqs {})", e.not_kept_seqs);
    }
    if e.payloads_outside_window > 0 {
        let _ = write!(payloads, "; {} before the window", thousands(e.payloads_outside_window));
    }
    let _ = writeln!(out, "{payloads}");
    let versions: Vec<String> = c.schema_versions.iter().map(u32::to_string).collect();
    let clusters: Vec<&str> = c.cluster_ids.iter().map(String::as_str).collect();
    let _ = writeln!(
        out,
        "seen in kept payloads: schema version {}; cluster {}",
        if versions.is_empty() { "-".to_owned() } else { versions.join(", ") },
        if clusters.is_empty() { "-".to_owned() } else { clusters.join(", ") }
    );
    let _ = writeln!(
        out,
        "  topology: snapshots {}, deltas {}; entities sent: {}; edges sent: {}; removed: {} entities, {} edges",
        c.snapshots,
        c.deltas,
        counts(&c.entity_kinds),
        counts(&c.edge_kinds),
        c.entities_removed,
        c.edges_removed
    );
    let kinds: Vec<String> = c.symptom_kinds.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "  symptoms: {} opened ({}), {} resolved",
        c.symptoms_opened,
        if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") },
        c.symptoms_resolved
    );
    let raw = &e.raw;
    match (raw.victoria_metrics_bytes, raw.egress_ratio) {
        (Some(bytes), ratio) => {
            let ratio = ratio.map_or_else(|| "unknown".to_owned(), |r| format!("{:.4} %", r * 100.0));
            let rows = raw.victoria_metrics_rows.map(|r| format!(", {} rows", thousands(r))).unwrap_or_default();
            let _ = writeln!(
                out,
                "raw kept in VictoriaMetrics ({}): {} bytes{rows}; egress/raw {ratio}",
                raw.source.as_deref().unwrap_or("-"),
                thousands(bytes)
            );
        }
        (None, _) => {
            let _ = writeln!(
                out,
                "raw kept in VictoriaMetrics: unknown ({}); egress/raw unknown",
                raw.unknown_because.as_deref().unwrap_or("not read")
            );
        }
    }
    out.push_str("checks:\n");
    for check in &report.checks {
        let _ = writeln!(out, "  {:<16} {:<18} {}", status_word(check.status), check.name, check.detail);
    }
    if !report.violations.is_empty() {
        let _ = writeln!(out, "violations ({}):", report.violations.len());
        for v in &report.violations {
            let place = match (v.index, v.seq) {
                (Some(i), Some(s)) => format!("entry {i}, seq {s}: "),
                (Some(i), None) => format!("entry {i}: "),
                (None, Some(s)) => format!("seq {s}: "),
                (None, None) => String::new(),
            };
            // The model's messages start with the entry they are about, which `place` already says.
            let message = v.index.and_then(|i| v.message.strip_prefix(&format!("entry {i}: "))).unwrap_or(&v.message);
            let _ = writeln!(out, "  [{}] {place}{}: {}", v.check, v.rule, crate::exit::one_line(message));
        }
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

/// The report as one JSON document.
pub fn report_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default() + "\n"
}

/// Sizes of a batch's content, for a one-line summary.
fn batch_summary(batch: &EgressBatch) -> String {
    let (opened, resolved) = batch.symptoms.iter().fold((0, 0), |(o, r), change| match change {
        SymptomChange::Opened { .. } => (o + 1, r),
        SymptomChange::Resolved { .. } => (o, r + 1),
    });
    let topology = match &batch.topology {
        TopologyPayload::Snapshot { entities, edges } => {
            format!("snapshot  entities {}  edges {}", entities.len(), edges.len())
        }
        TopologyPayload::Delta { added_entities, removed_entities, added_edges, removed_edges } => format!(
            "delta     entities +{} -{}  edges +{} -{}",
            added_entities.len(),
            removed_entities.len(),
            added_edges.len(),
            removed_edges.len()
        ),
    };
    format!("{topology}  symptoms +{opened} -{resolved}")
}

/// One line for `egress tail`.
pub fn tail_line(entry: &LedgerEntry, payload: Option<&[u8]>) -> String {
    let when = time(entry.time);
    match &entry.record {
        LedgerRecord::Sent { seq, bytes, .. } => {
            let content = match payload.map(serde_json::from_slice::<EgressBatch>) {
                Some(Ok(batch)) => batch_summary(&batch),
                Some(Err(e)) => format!("payload does not decode: {e}"),
                None => "payload no longer kept".to_owned(),
            };
            format!("seq {seq:<6} {when}  {:>9} B  {content}", thousands(*bytes))
        }
        LedgerRecord::Rejected { bytes, rule, path, .. } => {
            format!("rejected   {when}  {:>9} B  refused by rule {rule} at {path}; nothing sent", thousands(*bytes))
        }
        LedgerRecord::Dropped { seq, reason } => format!("seq {seq:<6} {when}  dropped before delivery: {reason}"),
        LedgerRecord::Resumed { seq, holder } => format!("resumed    {when}  at seq {seq}, taking over from {holder}"),
    }
}

/// One JSON object (one line) for `egress tail -o json`: the ledger entry's fields and the
/// decoded batch (`null` when its payload is not kept or does not decode).
pub fn tail_json(entry: &LedgerEntry, payload: Option<&[u8]>) -> String {
    let mut object = serde_json::to_value(&entry.record).unwrap_or_default();
    if let Some(map) = object.as_object_mut() {
        map.insert("index".into(), entry.index.into());
        map.insert("time".into(), entry.time.0.into());
        let batch = payload.and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok());
        if matches!(entry.record, LedgerRecord::Sent { .. }) {
            map.insert("batch".into(), batch.unwrap_or_default());
        }
    }
    object.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use causely_model::{Entity, EntityId, SCHEMA_VERSION};

    #[test]
    fn times_print_as_rfc3339_and_numbers_with_separators() {
        assert_eq!(time(UnixMillis(1_700_000_000_123)), "2023-11-14T22:13:20Z");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    fn entry(record: LedgerRecord) -> LedgerEntry {
        LedgerEntry { index: 4, time: UnixMillis(1_700_000_000_000), prev: "0".repeat(64), record }
    }

    #[test]
    fn a_tail_line_summarises_the_batch_and_its_json_carries_it_whole() {
        let batch = EgressBatch {
            cluster_id: "c".into(),
            seq: 3,
            time: UnixMillis(1),
            schema_version: SCHEMA_VERSION,
            topology: TopologyPayload::Delta {
                added_entities: vec![Entity::new(EntityId::node("n1")), Entity::new(EntityId::node("n2"))],
                removed_entities: vec![EntityId::node("n0")],
                added_edges: vec![],
                removed_edges: vec![],
            },
            symptoms: vec![],
        };
        let body = serde_json::to_vec(&batch).unwrap();
        let sent = entry(LedgerRecord::Sent { seq: 3, bytes: 1_234, sha256: "ab".into() });
        let line = tail_line(&sent, Some(&body));
        assert!(line.starts_with("seq 3 "), "{line}");
        assert!(line.contains("1,234 B") && line.contains("delta") && line.contains("entities +2 -1"), "{line}");
        assert!(line.contains("symptoms +0 -0"), "{line}");
        assert!(tail_line(&sent, None).contains("no longer kept"));
        let json: serde_json::Value = serde_json::from_str(&tail_json(&sent, Some(&body))).unwrap();
        assert_eq!(
            (json["kind"].as_str(), json["seq"].as_u64(), json["index"].as_u64()),
            (Some("sent"), Some(3), Some(4))
        );
        assert_eq!(json["batch"], serde_json::to_value(&batch).unwrap());
        let refused = entry(LedgerRecord::Rejected {
            bytes: 10,
            sha256: "cd".into(),
            rule: causely_model::RejectionRule::SeriesString,
            path: "/topology".into(),
            detail: "x".into(),
        });
        assert!(tail_line(&refused, None).contains("refused by rule series-string"));
        assert!(!tail_json(&refused, None).contains('\n'));
    }
}
