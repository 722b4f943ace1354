//! The egress survives an unreliable upstream and a mediator killed at random moments: after 20
//! SIGKILLs while symptoms are produced and the upstream is down, slow or failing, the upstream
//! holds every seq exactly once after deduplication, in order, byte for byte as ledgered, and the
//! ledger's hash chain verifies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use causely_tests::cluster::Cluster;
use causely_tests::mediator::{
    Mediator, MediatorOptions, agent_token, ensure_namespace, forget_stream, reqwest_client,
};
use causely_tests::poll;
use causely_tests::upstream::{Mode, Upstream, deduplicated};
use serde_json::json;

const NS: &str = "med-egress";

/// A small deterministic generator, so a failure can be replayed from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn symptom_report(seq: u64) -> serde_json::Value {
    let entity = |i: u64| format!("container/{NS}/burner-{i}/main");
    let id = |i: u64| format!("agent.cpu.utilization:{}:{}", entity(i), 1000 + i);
    let mut changes = vec![json!({"change": "opened", "symptom": {
        "id": id(seq), "kind": "high-cpu-utilization", "entity": entity(seq), "severity": "high",
        "rule": "agent.cpu.utilization", "started": 1000 + seq
    }})];
    if seq > 1 {
        changes.push(json!({"change": "resolved", "id": id(seq - 1), "resolved": 2000 + seq}));
    }
    json!({"node": "kwok-node-1", "agentVersion": "0.1.0", "seq": seq, "time": 1000 + seq, "symptoms": changes})
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_lost_or_duplicated_across_twenty_sigkills_and_a_flaky_upstream() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    forget_stream(&client, NS).await?;
    let mut upstream = Upstream::start().await?;
    let state = tempfile::tempdir()?;
    let mut options = MediatorOptions::new(NS);
    options.upstream = upstream.url();
    options.batch_interval = "150ms";
    let mut mediator = Mediator::start(&cluster, &state.path().join("state"), options).await?;
    let token = agent_token(&client, NS, "causely-agent", "causely-mediator", None).await?;

    // Agents keep reporting symptoms throughout; reports that hit a dead mediator are lost the way
    // a real agent's would be retried, which does not matter here: what was accepted must arrive.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (producing, url, token) = (producing.clone(), format!("{}/v1/reports", mediator.url), token.clone());
        tokio::spawn(async move {
            let http = reqwest_client()?;
            let mut seq = 0;
            while producing.load(Ordering::Relaxed) {
                seq += 1;
                let _ = http.post(&url).bearer_auth(&token).json(&symptom_report(seq)).send().await;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            anyhow::Ok(seq)
        })
    };

    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64 | 1;
    eprintln!("kill schedule seed: {seed}");
    let mut rng = Rng(seed);
    let modes = [Mode::Up, Mode::Down, Mode::Slow(Duration::from_secs(3)), Mode::Failing];
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(150 + rng.next(1200))).await;
        mediator.kill();
        upstream.set_mode(modes[rng.next(modes.len() as u64) as usize]).await?;
        mediator.restart().await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    producing.store(false, Ordering::Relaxed);
    let reports = producer.await??;
    upstream.set_mode(Mode::Up).await?;

    let status = poll::until("the upstream acknowledges everything", Duration::from_secs(90), || {
        let mediator = &mediator;
        async move {
            let s = mediator.get_json("/v1/egress").await?;
            let done = s["pendingBatches"] == 0 && s["batchesAccepted"].as_u64().unwrap_or(0) > 0;
            Ok(done.then_some(s))
        }
    })
    .await?;
    let next_seq = status["nextSeq"].as_u64().unwrap_or(0);
    assert!(next_seq > 5, "too few batches to mean anything: {status} after {reports} reports");
    assert_eq!(status["deliveredSeq"].as_u64(), Some(next_seq - 1), "{status}");

    let received = upstream.received();
    eprintln!("{} batches, {} deliveries (duplicates included), {reports} reports", next_seq - 1, received.len());
    // What was accepted by the time of `status`; later batches may be on their way.
    let batches: Vec<_> = deduplicated(&received)?.into_iter().filter(|b| b.seq < next_seq).collect();
    let seqs: Vec<u64> = batches.iter().map(|b| b.seq).collect();
    assert_eq!(seqs, (1..next_seq).collect::<Vec<_>>(), "every seq exactly once after dedup");
    let mut first_arrivals = Vec::new();
    for item in received.iter().filter(|r| r.seq < next_seq) {
        if !first_arrivals.contains(&item.seq) {
            first_arrivals.push(item.seq);
        }
    }
    assert_eq!(first_arrivals, seqs, "first copies arrive in seq order");

    // The upstream got exactly the ledgered bytes, and the ledger verifies.
    let http = reqwest_client()?;
    // The mediator keeps batching (agents' symptoms on entities the cluster never had resolve
    // after a grace), so read the ledger and the payloads as they were at `status`.
    let entries = status["ledgerEntries"].as_u64().unwrap_or(0);
    let ledger = http.get(format!("{}/v1/ledger?from=0&limit={entries}", mediator.url)).send().await?.bytes().await?;
    let mut payloads = std::collections::BTreeMap::new();
    for batch in &batches {
        let kept = http.get(format!("{}/v1/payloads/{}", mediator.url, batch.seq)).send().await?.bytes().await?;
        assert_eq!(kept.as_ref(), batch.body.as_slice(), "seq {} differs from what was ledgered", batch.seq);
        payloads.insert(batch.seq, kept.to_vec());
    }
    let range =
        http.get(format!("{}/v1/payloads?from=1&limit={}", mediator.url, next_seq - 1)).send().await?.bytes().await?;
    let lines: Vec<&[u8]> = range.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let kept: Vec<&[u8]> = payloads.values().map(Vec::as_slice).collect();
    assert_eq!(lines, kept, "the range endpoint returns the same exact bytes, in seq order");
    let guard = causely_model::guard::EgressGuard::new();
    let verification = causely_model::ledger::verify(&ledger, |seq| payloads.get(&seq).cloned(), &guard);
    assert!(verification.violations.is_empty(), "{:?}", verification.violations);
    assert_eq!(verification.summary.sent, next_seq - 1);

    // A replica whose state directory is lost continues the cluster's sequence from the Lease: it
    // never sends different bytes under a seq the upstream already has.
    mediator.kill();
    std::fs::remove_dir_all(&mediator.state_dir)?;
    mediator.restart().await?;
    let resumed = poll::until("the new state continues the sequence", Duration::from_secs(30), || {
        let upstream = &upstream;
        async move { Ok(upstream.received().into_iter().map(|r| r.seq).filter(|s| *s >= next_seq).min()) }
    })
    .await?;
    assert_eq!(resumed, next_seq, "no gap and no reuse");
    deduplicated(&upstream.received())?;
    Ok(())
}
