//! `egress verify` benchmark: a ledger of 10,000 batches (a 600-entity snapshot, then deltas of a
//! few pods, edges and symptom changes each), verified in memory: the model's chain and payload
//! checks alone, and the whole report. With `CAUSELY_BENCH_STATE_DIR=DIR` it also writes that
//! ledger as a mediator state directory, for timing the command end to end
//! (`scripts/bench-egress-verify`). Run with `cargo bench -p kubectl-causely --bench egress_verify`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use causely_model::api::EgressStatus;
use causely_model::guard::EgressGuard;
use causely_model::ledger::{self, LedgerRecord, LedgerWriter, sha256_hex};
use causely_model::symptom::{Severity, Symptom, SymptomChange, SymptomId, SymptomKind};
use causely_model::{Edge, EgressBatch, Entity, EntityId, Relation, SCHEMA_VERSION, TopologyPayload, UnixMillis};
use kubectl_causely::egress::verify::{self, Counters, Gathered, Later, PolicyCheck, RawStore};

const BATCHES: u64 = 10_000;
/// Milliseconds between batches.
const EVERY_MS: u64 = 5_000;

/// The first batch's time: the ledger ends now, so a mediator opening the directory keeps every
/// payload (its retention counts from acceptance).
fn start() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    now - BATCHES * EVERY_MS
}

fn pod(i: u64) -> EntityId {
    EntityId::pod(format!("team-{}", i % 20), format!("web-{i}"))
}

fn batch(seq: u64, start: u64) -> EgressBatch {
    let topology = if seq == 1 {
        let entities = (0..600).map(|i| Entity::new(pod(i)).with_label("app", "web")).collect();
        let edges =
            (0..600).map(|i| Edge::new(pod(i), Relation::RunsOn {}, EntityId::node(format!("node-{}", i % 30))));
        TopologyPayload::Snapshot { entities, edges: edges.collect() }
    } else {
        let added: Vec<u64> = (0..3).map(|k| 1_000 + seq * 3 + k).collect();
        TopologyPayload::Delta {
            added_entities: added.iter().map(|i| Entity::new(pod(*i)).with_label("app", "web")).collect(),
            removed_entities: vec![pod(seq % 600)],
            added_edges: added
                .iter()
                .map(|i| Edge::new(pod(*i), Relation::RunsOn {}, EntityId::node("node-1")))
                .collect(),
            removed_edges: vec![],
        }
    };
    let entity = pod(seq);
    let id = |s: u64| SymptomId::of("agent.cpu.utilization", &pod(s), UnixMillis(start + s));
    let mut symptoms = vec![SymptomChange::Opened {
        symptom: Symptom {
            id: id(seq),
            kind: SymptomKind::HighCpuUtilization,
            entity,
            severity: Severity::High,
            rule: "agent.cpu.utilization".into(),
            threshold: None,
            started: UnixMillis(start + seq),
            resolved: None,
        },
    }];
    if seq > 1 {
        symptoms.push(SymptomChange::Resolved { id: id(seq - 1), resolved: UnixMillis(start + seq) });
    }
    EgressBatch {
        cluster_id: "bench".into(),
        seq,
        time: UnixMillis(start + seq * EVERY_MS),
        schema_version: SCHEMA_VERSION,
        topology,
        symptoms,
    }
}

fn median(mut f: impl FnMut() -> usize, runs: usize) -> (Duration, usize) {
    let mut samples = Vec::new();
    let mut out = 0;
    for _ in 0..runs {
        let start = Instant::now();
        out = std::hint::black_box(f());
        samples.push(start.elapsed());
    }
    samples.sort();
    (samples[runs / 2], out)
}

fn main() {
    let guard = EgressGuard::new();
    let start = start();
    let mut writer = LedgerWriter::default();
    let mut payloads = BTreeMap::new();
    let mut bytes = 0;
    for seq in 1..=BATCHES {
        let body = serde_json::to_vec(&batch(seq, start)).expect("a batch serializes");
        let record = LedgerRecord::Sent { seq, bytes: body.len() as u64, sha256: sha256_hex(&body) };
        writer.append(UnixMillis(start + seq * EVERY_MS), record).expect("an entry serializes");
        bytes += body.len() as u64;
        payloads.insert(seq, body);
    }
    println!("ledger: {BATCHES} batches, {} bytes of payloads, {} bytes of ledger", bytes, writer.bytes.len());

    let (took, checked) = median(
        || ledger::verify(&writer.bytes, |seq| payloads.get(&seq).cloned(), &guard).summary.payloads_checked as usize,
        5,
    );
    println!(
        "{:<48} {took:>9.1?} median of 5 ({checked} payloads checked)",
        "ledger::verify (chain + payloads + guard)"
    );

    let status = EgressStatus {
        cluster_id: "bench".into(),
        upstream: "none".into(),
        leader: true,
        ledger_entries: BATCHES,
        batches_accepted: BATCHES,
        bytes_accepted: bytes,
        delivered_seq: BATCHES,
        next_seq: BATCHES + 1,
        ..EgressStatus::default()
    };
    let gathered = Gathered {
        source: "bench".into(),
        ledger: writer.bytes.clone(),
        payloads: payloads.clone(),
        since: None,
        counters: Counters::Mediator {
            status: Box::new(status),
            metrics: None,
            later: Later { delivered_seq: BATCHES, dropped: Default::default() },
        },
        policies: PolicyCheck::Skipped,
        raw: RawStore::Unknown("bench".into()),
        notes: vec![],
    };
    let (took, violations) = median(|| verify::verify(&gathered, &guard).violations.len(), 5);
    println!("{:<48} {took:>9.1?} median of 5 ({violations} violations)", "egress::verify::verify (the whole report)");

    if let Some(dir) = std::env::var_os("CAUSELY_BENCH_STATE_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(dir.join("payloads")).expect("creating the state directory");
        std::fs::write(dir.join("ledger.jsonl"), &writer.bytes).expect("writing the ledger");
        for (seq, body) in &payloads {
            std::fs::write(dir.join("payloads").join(format!("{seq:020}.json")), body).expect("writing a payload");
        }
        std::fs::write(dir.join("delivered"), BATCHES.to_string()).expect("writing the delivered cursor");
        println!("state directory written to {}", dir.display());
    }
}
