//! Component test of the egress store's crash safety: a real process accepting batches is
//! SIGKILLed at arbitrary instants, and each reopen must keep every batch it reported accepted and
//! continue the sequence without a gap or a reuse.

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use causely_mediator::egress::store::{EgressStore, StoreLimits};
use causely_model::ledger::verify;
use causely_model::{EgressBatch, EgressGuard, Entity, EntityId, SCHEMA_VERSION, TopologyPayload, UnixMillis};

/// Set in the child process to the state directory it should write to.
const CHILD_ENV: &str = "CAUSELY_EGRESS_CRASH_CHILD";
const TEST_NAME: &str = "a_store_killed_at_arbitrary_instants_keeps_every_accepted_batch_and_never_reuses_a_seq";
const LIMITS: StoreLimits = StoreLimits { max_pending_bytes: 1 << 30, retention: Duration::from_secs(3600) };

fn batch(seq: u64) -> EgressBatch {
    EgressBatch {
        cluster_id: "prod-eu-1".into(),
        seq,
        time: UnixMillis(seq),
        schema_version: SCHEMA_VERSION,
        topology: TopologyPayload::Delta {
            added_entities: vec![Entity::new(EntityId::pod("shop", format!("web-{seq}")))],
            removed_entities: vec![],
            added_edges: vec![],
            removed_edges: vec![],
        },
        symptoms: vec![],
    }
}

/// The child: accepts batches (and acknowledges every third) until it is killed, reporting each
/// accepted seq on stdout only after `accept` has returned.
fn child(dir: &Path) -> ! {
    use std::io::Write;
    let guard = EgressGuard::new();
    let mut store = EgressStore::open(dir, LIMITS, &guard).unwrap();
    let mut out = std::io::stdout().lock();
    loop {
        let seq = store.next_seq();
        store.accept(&batch(seq), &guard, UnixMillis(seq)).unwrap();
        writeln!(out, "accepted {seq}").unwrap();
        out.flush().unwrap();
        if seq.is_multiple_of(3) {
            while let Some((pending, _)) = store.next_pending().unwrap() {
                store.mark_delivered(pending).unwrap();
            }
        }
    }
}

#[test]
fn a_store_killed_at_arbitrary_instants_keeps_every_accepted_batch_and_never_reuses_a_seq() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let guard = EgressGuard::new();
    let mut reported_total = 0;
    // A fixed pseudo-random sequence of kill delays, so a failure can be rerun as it happened.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..12 {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_millis(40 + (state >> 33) % 260);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        let mut output = String::new();
        child.stdout.take().unwrap().read_to_string(&mut output).unwrap();
        let reported: Vec<u64> =
            output.lines().filter_map(|l| l.strip_prefix("accepted ")).map(|s| s.parse().unwrap()).collect();
        reported_total += reported.len();

        let store = EgressStore::open(dir.path(), LIMITS, &guard).unwrap();
        let last = store.next_seq() - 1;
        for &seq in &reported {
            assert!(seq <= last, "round {round}: seq {seq} was reported accepted but the store ends at {last}");
            let kept = store.payload(seq).unwrap();
            assert_eq!(kept, Some(serde_json::to_vec(&batch(seq)).unwrap()), "round {round}: seq {seq}");
        }
        let ledger = std::fs::read(store.ledger_path()).unwrap();
        let verification = verify(&ledger, |seq| store.payload(seq).ok().flatten(), &guard);
        assert!(verification.is_clean(), "round {round}: {:?}", verification.violations);
        assert!(!verification.summary.unterminated_tail, "round {round}: a torn line survived the reopen");
        assert_eq!(verification.summary.sent, last, "round {round}");
        assert_eq!(verification.summary.payloads_checked, last, "round {round}: a payload is missing");
        assert_eq!(store.stats().accepted, last);
    }
    assert!(reported_total > 12, "the child accepted only {reported_total} batches in all rounds");
}
