//! The egress ledger: one hash-chained JSON line per decision about a batch, and its verification.
//!
//! Each line is a [`LedgerEntry`]. Its `prev` is the hex SHA-256 of the previous line's exact bytes
//! (without the newline), or [`GENESIS_PREV`] for the first, so removing, inserting, reordering or
//! editing a line breaks the chain after it. Entries record:
//! - `sent`: the guard accepted a batch and its exact bytes (size and SHA-256 recorded) are
//!   committed for delivery under `seq`. Sent seqs start at 1 and increase by one.
//! - `rejected`: the guard refused a batch; nothing was sent and no seq was used.
//! - `dropped`: an earlier `sent` batch was discarded before delivery (the disk bound).
//!
//! [`verify`] is pure: it takes the ledger's bytes and a way to look up kept payloads, so the
//! mediator and `kubectl causely egress verify` run the same code. A payload that is no longer kept
//! (retention expired it, or it was dropped) is counted, not reported: the ledger line remains.
//! [`verify_lines_with`] also lets a caller leave payloads unchecked (outside the window it audits)
//! while the chain is still verified from the first entry.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::egress::TopologyPayload;
use crate::guard::{EgressGuard, Rejection, RejectionRule};
use crate::symptom::{SymptomChange, SymptomKind};
use crate::time::UnixMillis;

/// The `prev` of the first entry.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The first seq a ledger assigns.
pub const FIRST_SEQ: u64 = 1;

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What one entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LedgerRecord {
    /// An accepted batch: these exact bytes are committed for delivery.
    Sent { seq: u64, bytes: u64, sha256: String },
    /// The guard refused a batch; nothing was sent and no seq consumed.
    Rejected { bytes: u64, sha256: String, rule: RejectionRule, path: String, detail: String },
    /// An accepted batch discarded before delivery.
    Dropped { seq: u64, reason: String },
    /// This replica took over the cluster's stream at `seq`: the seqs since its previous batch
    /// were sent by another mediator replica (see `holder`, the Lease holder it took over from).
    Resumed { seq: u64, holder: String },
}

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LedgerEntry {
    pub index: u64,
    pub time: UnixMillis,
    pub prev: String,
    pub record: LedgerRecord,
}

impl LedgerEntry {
    /// The line to append, without its newline.
    pub fn to_line(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    pub fn parse(line: &[u8]) -> Result<LedgerEntry, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

/// Something wrong with a ledger or a kept payload. `index` is the entry's position (the line
/// number counted from 0, which is also the index a sound entry carries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "violation", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum Violation {
    #[error("entry {index}: not a ledger entry ({detail})")]
    Unreadable { index: u64, detail: String },
    #[error("entry {index}: chain broken: prev is {found}, the line before hashes to {expected}")]
    ChainBroken { index: u64, expected: String, found: String },
    #[error("entry {index}: carries index {found}, expected {expected} (an entry is missing, added or moved)")]
    IndexNotContiguous { index: u64, expected: u64, found: u64 },
    #[error("entry {index}: seq {found} sent, expected {expected} (seq gap)")]
    SeqGap { index: u64, expected: u64, found: u64 },
    #[error("entry {index}: drops seq {seq}, which was not sent before or was already dropped")]
    UnknownDrop { index: u64, seq: u64 },
    #[error("entry {index}: payload of seq {seq} is {found} bytes, the ledger says {expected}")]
    PayloadSizeMismatch { index: u64, seq: u64, expected: u64, found: u64 },
    #[error("entry {index}: payload of seq {seq} does not match its hash (ledger {expected}, payload {found})")]
    PayloadHashMismatch { index: u64, seq: u64, expected: String, found: String },
    #[error("entry {index}: payload of seq {seq} fails the egress guard: {rejection}")]
    PayloadRejected { index: u64, seq: u64, rejection: Rejection },
    #[error("entry {index}: payload kept as seq {seq} carries seq {found}")]
    PayloadSeqMismatch { index: u64, seq: u64, found: u64 },
}

impl Violation {
    /// The violation's name, as in its JSON form (`chain-broken`, `payload-hash-mismatch`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Violation::Unreadable { .. } => "unreadable",
            Violation::ChainBroken { .. } => "chain-broken",
            Violation::IndexNotContiguous { .. } => "index-not-contiguous",
            Violation::SeqGap { .. } => "seq-gap",
            Violation::UnknownDrop { .. } => "unknown-drop",
            Violation::PayloadSizeMismatch { .. } => "payload-size-mismatch",
            Violation::PayloadHashMismatch { .. } => "payload-hash-mismatch",
            Violation::PayloadRejected { .. } => "payload-rejected",
            Violation::PayloadSeqMismatch { .. } => "payload-seq-mismatch",
        }
    }

    /// The position of the entry the violation is about.
    pub fn index(&self) -> u64 {
        match self {
            Violation::Unreadable { index, .. }
            | Violation::ChainBroken { index, .. }
            | Violation::IndexNotContiguous { index, .. }
            | Violation::SeqGap { index, .. }
            | Violation::UnknownDrop { index, .. }
            | Violation::PayloadSizeMismatch { index, .. }
            | Violation::PayloadHashMismatch { index, .. }
            | Violation::PayloadRejected { index, .. }
            | Violation::PayloadSeqMismatch { index, .. } => *index,
        }
    }

    /// The seq the violation is about, when it is about one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Violation::SeqGap { found, .. } => Some(*found),
            Violation::UnknownDrop { seq, .. }
            | Violation::PayloadSizeMismatch { seq, .. }
            | Violation::PayloadHashMismatch { seq, .. }
            | Violation::PayloadRejected { seq, .. }
            | Violation::PayloadSeqMismatch { seq, .. } => Some(*seq),
            Violation::Unreadable { .. } | Violation::ChainBroken { .. } | Violation::IndexNotContiguous { .. } => None,
        }
    }

    /// True for violations of the record itself (chain, indexes, seqs, drops), false for those
    /// of a kept payload.
    pub fn is_of_the_chain(&self) -> bool {
        self.seq().is_none() || matches!(self, Violation::SeqGap { .. } | Violation::UnknownDrop { .. })
    }
}

/// What a verifier has for the payload of a sent seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadLookup {
    /// The exact bytes kept under the seq.
    Kept(Vec<u8>),
    /// The payload is no longer kept (expired or dropped).
    NotKept,
    /// The verifier did not look (the entry is outside the window it audits).
    NotChecked,
}

/// What the ledger shows, whether or not it verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub entries: u64,
    pub sent: u64,
    pub rejected: u64,
    pub dropped: u64,
    /// Bytes of all sent batches, as the ledger records them.
    pub sent_bytes: u64,
    /// Sent batches whose payload was kept and checked.
    pub payloads_checked: u64,
    /// Sent batches whose payload is no longer kept (expired or dropped).
    pub payloads_not_kept: u64,
    /// Sent batches whose payload the verifier did not look at (outside its window).
    #[serde(default)]
    pub payloads_not_checked: u64,
    /// The seq the next sent batch must carry: one past the last sent, or a `resumed` seq.
    #[serde(default)]
    pub next_seq: u64,
    pub first_time: Option<UnixMillis>,
    pub last_time: Option<UnixMillis>,
    /// Among checked payloads: topology snapshots and deltas.
    pub snapshots: u64,
    pub deltas: u64,
    pub symptoms_opened: u64,
    pub symptoms_resolved: u64,
    /// Kinds of symptom seen opening in checked payloads.
    pub symptom_kinds: BTreeSet<SymptomKind>,
    /// Among checked payloads: the schema versions and cluster ids they carry.
    #[serde(default)]
    pub schema_versions: BTreeSet<u32>,
    #[serde(default)]
    pub cluster_ids: BTreeSet<String>,
    /// Among checked payloads: entities sent (in snapshots, or added by deltas) per kind
    /// (`pod`, `workload/deployment`, ...), and entities removed by deltas.
    #[serde(default)]
    pub entity_kinds: BTreeMap<String, u64>,
    #[serde(default)]
    pub entities_removed: u64,
    /// Among checked payloads: edges sent per relation (`runs-on`, `calls`, ...), and removed.
    #[serde(default)]
    pub edge_kinds: BTreeMap<String, u64>,
    #[serde(default)]
    pub edges_removed: u64,
    /// The ledger ends in a line without its newline: an append in progress or cut short by a
    /// crash. It is not an entry (the store truncates it when it opens) and is not checked.
    pub unterminated_tail: bool,
}

/// The result of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub summary: Summary,
    pub violations: Vec<Violation>,
}

impl Verification {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        write!(
            f,
            "{} entries: {} sent ({} bytes), {} rejected, {} dropped; {} payloads checked, {} no longer kept; {} violations",
            s.entries,
            s.sent,
            s.sent_bytes,
            s.rejected,
            s.dropped,
            s.payloads_checked,
            s.payloads_not_kept,
            self.violations.len()
        )
    }
}

/// Splits a ledger file into its lines; the second value is true when the last line has no
/// newline (and is left out).
pub fn split_lines(ledger: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut lines: Vec<&[u8]> = ledger.split(|&b| b == b'\n').collect();
    // After the final newline `split` yields an empty piece; anything else there is unterminated.
    let tail = lines.pop().unwrap_or_default();
    (lines, !tail.is_empty())
}

/// Verifies a whole ledger file; see [`verify_lines`].
pub fn verify(ledger: &[u8], payload: impl Fn(u64) -> Option<Vec<u8>>, guard: &EgressGuard) -> Verification {
    let (lines, unterminated) = split_lines(ledger);
    let mut verification = verify_lines(&lines, payload, guard);
    verification.summary.unterminated_tail = unterminated;
    verification
}

/// Recomputes the chain over `lines` (each without its newline), checks indexes and seqs, and
/// checks every kept payload against its entry and the guard.
pub fn verify_lines(lines: &[&[u8]], payload: impl Fn(u64) -> Option<Vec<u8>>, guard: &EgressGuard) -> Verification {
    verify_lines_with(lines, |seq| payload(seq).map_or(PayloadLookup::NotKept, PayloadLookup::Kept), guard)
}

/// [`verify_lines`], with the caller saying for each sent seq whether its payload is kept, gone,
/// or not looked at. The chain, indexes and seqs are always checked over every line.
pub fn verify_lines_with(
    lines: &[&[u8]],
    mut payload: impl FnMut(u64) -> PayloadLookup,
    guard: &EgressGuard,
) -> Verification {
    let mut out = Verification::default();
    let mut expected_prev = GENESIS_PREV.to_owned();
    let mut expected_index = 0u64;
    let mut expected_seq = FIRST_SEQ;
    let mut sent: HashSet<u64> = HashSet::new();
    let mut dropped: HashSet<u64> = HashSet::new();
    for (position, line) in lines.iter().enumerate() {
        let position = position as u64;
        out.summary.entries += 1;
        let this_hash = sha256_hex(line);
        let entry = match LedgerEntry::parse(line) {
            Ok(entry) => entry,
            Err(e) => {
                out.violations.push(Violation::Unreadable { index: position, detail: e.to_string() });
                expected_prev = this_hash;
                expected_index += 1;
                continue;
            }
        };
        if entry.prev != expected_prev {
            out.violations.push(Violation::ChainBroken {
                index: position,
                expected: expected_prev.clone(),
                found: entry.prev.clone(),
            });
        }
        expected_prev = this_hash;
        if entry.index != expected_index {
            out.violations.push(Violation::IndexNotContiguous {
                index: position,
                expected: expected_index,
                found: entry.index,
            });
        }
        // Resynchronise so one missing entry is reported once, not on every line after it.
        expected_index = entry.index.saturating_add(1);
        let summary = &mut out.summary;
        summary.first_time = Some(summary.first_time.map_or(entry.time, |t| t.min(entry.time)));
        summary.last_time = Some(summary.last_time.map_or(entry.time, |t| t.max(entry.time)));
        match &entry.record {
            LedgerRecord::Sent { seq, bytes, sha256 } => {
                summary.sent += 1;
                summary.sent_bytes = summary.sent_bytes.saturating_add(*bytes);
                if *seq != expected_seq {
                    out.violations.push(Violation::SeqGap { index: position, expected: expected_seq, found: *seq });
                }
                expected_seq = seq.saturating_add(1);
                sent.insert(*seq);
                match payload(*seq) {
                    PayloadLookup::NotKept => out.summary.payloads_not_kept += 1,
                    PayloadLookup::NotChecked => out.summary.payloads_not_checked += 1,
                    PayloadLookup::Kept(body) => check_payload(position, *seq, *bytes, sha256, &body, guard, &mut out),
                }
            }
            LedgerRecord::Rejected { .. } => summary.rejected += 1,
            LedgerRecord::Resumed { seq, .. } => {
                if *seq < expected_seq {
                    out.violations.push(Violation::SeqGap { index: position, expected: expected_seq, found: *seq });
                }
                expected_seq = (*seq).max(expected_seq);
            }
            LedgerRecord::Dropped { seq, .. } => {
                summary.dropped += 1;
                if !sent.contains(seq) || !dropped.insert(*seq) {
                    out.violations.push(Violation::UnknownDrop { index: position, seq: *seq });
                }
            }
        }
    }
    out.summary.next_seq = expected_seq;
    out
}

fn check_payload(
    index: u64,
    seq: u64,
    bytes: u64,
    sha256: &str,
    body: &[u8],
    guard: &EgressGuard,
    out: &mut Verification,
) {
    out.summary.payloads_checked += 1;
    if body.len() as u64 != bytes {
        out.violations.push(Violation::PayloadSizeMismatch { index, seq, expected: bytes, found: body.len() as u64 });
    }
    let found = sha256_hex(body);
    if found != sha256 {
        out.violations.push(Violation::PayloadHashMismatch { index, seq, expected: sha256.to_owned(), found });
    }
    // Checked even when the hash matches: a ledger rewritten along with its payload must still
    // only describe batches the guard lets out.
    let batch = match guard.check(body) {
        Ok(batch) => batch,
        Err(rejection) => {
            out.violations.push(Violation::PayloadRejected { index, seq, rejection });
            return;
        }
    };
    if batch.seq != seq {
        out.violations.push(Violation::PayloadSeqMismatch { index, seq, found: batch.seq });
    }
    let summary = &mut out.summary;
    summary.schema_versions.insert(batch.schema_version);
    summary.cluster_ids.insert(batch.cluster_id);
    match &batch.topology {
        TopologyPayload::Snapshot { entities, edges } => {
            count_sent(summary, entities, edges);
            summary.snapshots += 1;
        }
        TopologyPayload::Delta { added_entities, removed_entities, added_edges, removed_edges } => {
            count_sent(summary, added_entities, added_edges);
            summary.entities_removed += removed_entities.len() as u64;
            summary.edges_removed += removed_edges.len() as u64;
            summary.deltas += 1;
        }
    }
    for change in &batch.symptoms {
        match change {
            SymptomChange::Opened { symptom } => {
                summary.symptoms_opened += 1;
                summary.symptom_kinds.insert(symptom.kind);
            }
            SymptomChange::Resolved { .. } => summary.symptoms_resolved += 1,
        }
    }
}

/// Counts the entities and edges a batch sends, by kind.
fn count_sent(summary: &mut Summary, entities: &[crate::entity::Entity], edges: &[crate::edge::Edge]) {
    for entity in entities {
        *summary.entity_kinds.entry(entity.id.kind().to_string()).or_default() += 1;
    }
    for edge in edges {
        *summary.edge_kinds.entry(edge.relation.kind_name().to_owned()).or_default() += 1;
    }
}

/// Builds a ledger in memory the way the store appends to its file. For tests and tools that
/// need a ledger without a store.
#[derive(Debug, Default)]
pub struct LedgerWriter {
    pub bytes: Vec<u8>,
    next_index: u64,
    prev: Option<String>,
}

impl LedgerWriter {
    /// Appends an entry and returns the exact line written (without the newline).
    pub fn append(&mut self, time: UnixMillis, record: LedgerRecord) -> Result<Vec<u8>, serde_json::Error> {
        let entry = self.next_entry(time, record);
        let line = entry.to_line()?;
        self.commit(&line);
        self.bytes.extend_from_slice(&line);
        self.bytes.push(b'\n');
        Ok(line)
    }

    /// The entry that would come next.
    pub fn next_entry(&self, time: UnixMillis, record: LedgerRecord) -> LedgerEntry {
        LedgerEntry {
            index: self.next_index,
            time,
            prev: self.prev.clone().unwrap_or_else(|| GENESIS_PREV.to_owned()),
            record,
        }
    }

    /// Moves past `line`, which the caller has made durable.
    pub fn commit(&mut self, line: &[u8]) {
        self.next_index += 1;
        self.prev = Some(sha256_hex(line));
    }

    /// Resumes after an existing ledger's last line.
    pub fn resume(entries: u64, last_line: Option<&[u8]>) -> Self {
        LedgerWriter { bytes: Vec::new(), next_index: entries, prev: last_line.map(sha256_hex) }
    }

    pub fn next_index(&self) -> u64 {
        self.next_index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::{Edge, Relation};
    use crate::egress::{EgressBatch, SCHEMA_VERSION};
    use crate::entity::Entity;
    use crate::id::EntityId;
    use crate::symptom::{Severity, Symptom, SymptomId};
    use std::collections::BTreeMap;

    fn batch(seq: u64, snapshot: bool) -> EgressBatch {
        let pod = EntityId::pod("shop", format!("web-{seq}"));
        let topology = if snapshot {
            TopologyPayload::Snapshot {
                entities: vec![Entity::new(pod.clone()), Entity::new(EntityId::node("n1"))],
                edges: vec![Edge::new(pod.clone(), Relation::RunsOn {}, EntityId::node("n1"))],
            }
        } else {
            TopologyPayload::Delta {
                added_entities: vec![Entity::new(pod.clone())],
                removed_entities: vec![],
                added_edges: vec![],
                removed_edges: vec![],
            }
        };
        EgressBatch {
            cluster_id: "prod-eu-1".into(),
            seq,
            time: UnixMillis(1_000 * seq),
            schema_version: SCHEMA_VERSION,
            topology,
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

    /// A ledger of five sent batches (seq 1 a snapshot), one rejection and one drop of seq 4,
    /// with payloads kept for all but the dropped one.
    struct Fixture {
        ledger: Vec<u8>,
        payloads: BTreeMap<u64, Vec<u8>>,
    }

    impl Fixture {
        fn new() -> Self {
            let mut writer = LedgerWriter::default();
            let mut payloads = BTreeMap::new();
            for seq in 1..=5 {
                let body = serde_json::to_vec(&batch(seq, seq == 1)).unwrap();
                let record = LedgerRecord::Sent { seq, bytes: body.len() as u64, sha256: sha256_hex(&body) };
                writer.append(UnixMillis(1_000 * seq), record).unwrap();
                payloads.insert(seq, body);
                if seq == 2 {
                    let refused = LedgerRecord::Rejected {
                        bytes: 10,
                        sha256: sha256_hex(b"0123456789"),
                        rule: RejectionRule::NumberArray,
                        path: "/topology".into(),
                        detail: "array of 3 items holds a number (item 0)".into(),
                    };
                    writer.append(UnixMillis(2_500), refused).unwrap();
                }
            }
            writer.append(UnixMillis(6_000), LedgerRecord::Dropped { seq: 4, reason: "disk bound".into() }).unwrap();
            payloads.remove(&4);
            Fixture { ledger: writer.bytes, payloads }
        }

        fn verify(&self) -> Verification {
            verify(&self.ledger, |seq| self.payloads.get(&seq).cloned(), &EgressGuard::new())
        }

        fn lines(&self) -> Vec<Vec<u8>> {
            split_lines(&self.ledger).0.into_iter().map(<[u8]>::to_vec).collect()
        }

        fn set_lines(&mut self, lines: &[Vec<u8>]) {
            self.ledger = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
        }
    }

    #[test]
    fn a_clean_ledger_verifies_and_summarises_what_left() {
        let verification = Fixture::new().verify();
        assert_eq!(verification.violations, vec![]);
        let s = verification.summary;
        assert_eq!((s.entries, s.sent, s.rejected, s.dropped), (7, 5, 1, 1));
        assert_eq!((s.payloads_checked, s.payloads_not_kept), (4, 1));
        assert_eq!((s.snapshots, s.deltas, s.symptoms_opened), (1, 3, 4));
        assert_eq!(s.symptom_kinds, BTreeSet::from([SymptomKind::CrashLoop]));
        assert_eq!((s.first_time, s.last_time), (Some(UnixMillis(1_000)), Some(UnixMillis(6_000))));
        assert!(!s.unterminated_tail);
    }

    #[test]
    fn checked_payloads_give_the_kinds_of_data_that_left() {
        let s = Fixture::new().verify().summary;
        assert_eq!(s.schema_versions, BTreeSet::from([SCHEMA_VERSION]));
        assert_eq!(s.cluster_ids, BTreeSet::from(["prod-eu-1".to_owned()]));
        // Seq 1 is a snapshot of a pod, a node and one runs-on edge; seqs 2, 3, 5 each add a pod.
        assert_eq!(s.entity_kinds, BTreeMap::from([("node".to_owned(), 1), ("pod".to_owned(), 4)]));
        assert_eq!(s.edge_kinds, BTreeMap::from([("runs-on".to_owned(), 1)]));
        assert_eq!((s.entities_removed, s.edges_removed), (0, 0));
        assert_eq!(s.next_seq, 6);
    }

    #[test]
    fn payloads_left_unchecked_are_counted_apart_while_the_chain_is_still_verified() {
        let mut fixture = Fixture::new();
        let mut lines = fixture.lines();
        lines.swap(0, 1);
        fixture.set_lines(&lines);
        let lines = fixture.lines();
        let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let lookup = |seq: u64| match fixture.payloads.get(&seq) {
            _ if seq < 3 => PayloadLookup::NotChecked,
            Some(body) => PayloadLookup::Kept(body.clone()),
            None => PayloadLookup::NotKept,
        };
        let verification = verify_lines_with(&lines, lookup, &EgressGuard::new());
        let s = &verification.summary;
        assert_eq!((s.payloads_not_checked, s.payloads_checked, s.payloads_not_kept), (2, 2, 1));
        assert!(verification.violations.iter().any(|v| v.name() == "chain-broken" && v.index() == 0));
        assert!(verification.violations.iter().all(Violation::is_of_the_chain), "{:?}", verification.violations);
    }

    #[test]
    fn violations_name_themselves_as_their_json_tag_does() {
        let violations = [
            Violation::Unreadable { index: 1, detail: "x".into() },
            Violation::SeqGap { index: 2, expected: 3, found: 5 },
            Violation::PayloadHashMismatch { index: 4, seq: 3, expected: "a".into(), found: "b".into() },
        ];
        for violation in violations {
            let json = serde_json::to_value(&violation).unwrap();
            assert_eq!(json["violation"], violation.name());
            assert_eq!(json["index"], violation.index());
        }
        assert_eq!(Violation::SeqGap { index: 2, expected: 3, found: 5 }.seq(), Some(5));
        assert!(!Violation::PayloadSeqMismatch { index: 1, seq: 1, found: 2 }.is_of_the_chain());
    }

    #[test]
    fn expired_payloads_are_counted_as_not_kept_rather_than_reported() {
        let mut fixture = Fixture::new();
        fixture.payloads.clear();
        let verification = fixture.verify();
        assert!(verification.is_clean(), "{:?}", verification.violations);
        assert_eq!(verification.summary.payloads_not_kept, 5);
    }

    #[test]
    fn a_changed_byte_in_a_kept_payload_is_named_by_seq() {
        let mut fixture = Fixture::new();
        let body = fixture.payloads.get_mut(&3).unwrap();
        let at = body.windows(5).position(|w| w == b"web-3").unwrap();
        body[at] = b'x';
        let violations = fixture.verify().violations;
        assert!(
            violations.iter().any(|v| matches!(v, Violation::PayloadHashMismatch { seq: 3, index: 3, .. })),
            "{violations:?}"
        );
        assert_eq!(violations.len(), 1, "{violations:?}");
    }

    #[test]
    fn a_deleted_entry_breaks_the_chain_and_the_index_sequence() {
        let mut fixture = Fixture::new();
        let mut lines = fixture.lines();
        lines.remove(2);
        fixture.set_lines(&lines);
        let violations = fixture.verify().violations;
        assert!(
            violations.contains(&Violation::IndexNotContiguous { index: 2, expected: 2, found: 3 }),
            "{violations:?}"
        );
        assert!(violations.iter().any(|v| matches!(v, Violation::ChainBroken { index: 2, .. })), "{violations:?}");
        assert_eq!(violations.len(), 2, "one deletion is reported once: {violations:?}");
    }

    #[test]
    fn deleting_a_sent_entry_shows_as_a_seq_gap() {
        let mut fixture = Fixture::new();
        let mut lines = fixture.lines();
        lines.remove(3); // seq 3
        fixture.set_lines(&lines);
        let violations = fixture.verify().violations;
        assert!(violations.contains(&Violation::SeqGap { index: 3, expected: 3, found: 4 }), "{violations:?}");
    }

    #[test]
    fn two_swapped_entries_are_detected() {
        let mut fixture = Fixture::new();
        let mut lines = fixture.lines();
        lines.swap(3, 4);
        fixture.set_lines(&lines);
        let violations = fixture.verify().violations;
        assert!(
            violations.contains(&Violation::IndexNotContiguous { index: 3, expected: 3, found: 4 }),
            "{violations:?}"
        );
        assert!(violations.iter().any(|v| matches!(v, Violation::ChainBroken { index: 3, .. })), "{violations:?}");
        assert!(violations.iter().any(|v| matches!(v, Violation::SeqGap { .. })), "{violations:?}");
    }

    /// Replaces seq 3's payload by one smuggling a series and rewrites its ledger line to match.
    fn smuggle(fixture: &mut Fixture, rechain: bool) {
        let mut value = serde_json::to_value(batch(3, false)).unwrap();
        value["topology"]["addedEntities"][0]["labels"] = serde_json::json!({"cpu": "0.93_0.95_0.97"});
        let body = serde_json::to_vec(&value).unwrap();
        let mut lines = fixture.lines();
        let mut entry = LedgerEntry::parse(&lines[3]).unwrap();
        entry.record = LedgerRecord::Sent { seq: 3, bytes: body.len() as u64, sha256: sha256_hex(&body) };
        lines[3] = entry.to_line().unwrap();
        if rechain {
            for i in 4..lines.len() {
                let mut entry = LedgerEntry::parse(&lines[i]).unwrap();
                entry.prev = sha256_hex(&lines[i - 1]);
                lines[i] = entry.to_line().unwrap();
            }
        }
        fixture.set_lines(&lines);
        fixture.payloads.insert(3, body);
    }

    #[test]
    fn a_smuggled_series_with_a_rewritten_ledger_line_breaks_the_chain_and_fails_the_guard() {
        let mut fixture = Fixture::new();
        smuggle(&mut fixture, false);
        let violations = fixture.verify().violations;
        assert!(violations.iter().any(|v| matches!(v, Violation::ChainBroken { index: 4, .. })), "{violations:?}");
        assert!(
            violations.iter().any(|v| matches!(v, Violation::PayloadRejected { seq: 3, rejection, .. }
                if rejection.rule == RejectionRule::SeriesString)),
            "{violations:?}"
        );
    }

    #[test]
    fn a_smuggled_series_survives_a_rewritten_chain_only_until_the_guard_reads_it() {
        let mut fixture = Fixture::new();
        smuggle(&mut fixture, true);
        let violations = fixture.verify().violations;
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(matches!(&violations[0], Violation::PayloadRejected { index: 3, seq: 3, .. }), "{violations:?}");
        assert!(violations[0].to_string().contains("series-string"), "{}", violations[0]);
    }

    #[test]
    fn a_payload_kept_under_the_wrong_seq_is_detected() {
        let mut fixture = Fixture::new();
        let other = fixture.payloads[&5].clone();
        fixture.payloads.insert(3, other.clone());
        let mut lines = fixture.lines();
        let mut entry = LedgerEntry::parse(&lines[3]).unwrap();
        entry.record = LedgerRecord::Sent { seq: 3, bytes: other.len() as u64, sha256: sha256_hex(&other) };
        lines[3] = entry.to_line().unwrap();
        fixture.set_lines(&lines);
        let violations = fixture.verify().violations;
        assert!(violations.contains(&Violation::PayloadSeqMismatch { index: 3, seq: 3, found: 5 }), "{violations:?}");
    }

    #[test]
    fn an_edited_line_and_a_drop_of_an_unsent_seq_are_detected() {
        let mut fixture = Fixture::new();
        let mut lines = fixture.lines();
        lines[1] = String::from_utf8(lines[1].clone()).unwrap().replace("\"seq\":2", "\"seq\":9").into_bytes();
        let last = lines.len() - 1;
        lines[last] = String::from_utf8(lines[last].clone()).unwrap().replace("\"seq\":4", "\"seq\":77").into_bytes();
        fixture.set_lines(&lines);
        let violations = fixture.verify().violations;
        assert!(violations.iter().any(|v| matches!(v, Violation::ChainBroken { index: 2, .. })), "{violations:?}");
        assert!(violations.contains(&Violation::SeqGap { index: 1, expected: 2, found: 9 }), "{violations:?}");
        assert!(violations.contains(&Violation::UnknownDrop { index: last as u64, seq: 77 }), "{violations:?}");
    }

    #[test]
    fn garbage_lines_are_reported_and_an_unterminated_tail_is_only_noted() {
        let mut fixture = Fixture::new();
        fixture.ledger.extend_from_slice(b"{\"index\":7,\"ti");
        let verification = fixture.verify();
        assert!(verification.is_clean(), "{:?}", verification.violations);
        assert!(verification.summary.unterminated_tail);
        let mut fixture = Fixture::new();
        let mut lines = fixture.lines();
        lines.insert(2, b"not json".to_vec());
        fixture.set_lines(&lines);
        let violations = fixture.verify().violations;
        assert!(violations.iter().any(|v| matches!(v, Violation::Unreadable { index: 2, .. })), "{violations:?}");
    }

    #[test]
    fn an_empty_ledger_is_clean_and_empty() {
        let verification = verify(b"", |_| None, &EgressGuard::new());
        assert!(verification.is_clean());
        assert_eq!(verification.summary, Summary { next_seq: FIRST_SEQ, ..Summary::default() });
    }

    #[test]
    fn entries_are_tagged_json_lines() {
        let entry = LedgerWriter::default()
            .next_entry(UnixMillis(5), LedgerRecord::Dropped { seq: 2, reason: "disk bound".into() });
        let line = String::from_utf8(entry.to_line().unwrap()).unwrap();
        assert_eq!(
            line,
            format!(
                r#"{{"index":0,"time":5,"prev":"{GENESIS_PREV}","record":{{"kind":"dropped","seq":2,"reason":"disk bound"}}}}"#
            )
        );
        assert!(LedgerEntry::parse(line.replace("\"reason\"", "\"extra\":1,\"reason\"").as_bytes()).is_err());
    }
}
