//! Two mediator replicas share one Lease: only the holder sends; when it is SIGKILLed the standby
//! takes over, resumes the cluster's sequence, and neither loses nor duplicates a seq; the old
//! leader, back as a standby, still delivers what it had accepted.

use std::collections::BTreeSet;
use std::time::Duration;

use causely_model::guard::EgressGuard;
use causely_model::ledger::{LedgerEntry, LedgerRecord, split_lines, verify};
use causely_tests::cluster::Cluster;
use causely_tests::mediator::{
    Mediator, MediatorOptions, agent_token, ensure_namespace, forget_stream, reqwest_client,
};
use causely_tests::poll;
use causely_tests::upstream::{Upstream, deduplicated};
use serde_json::json;

const NS: &str = "med-failover";

fn options(upstream: &Upstream, identity: &str) -> MediatorOptions {
    let mut options = MediatorOptions::new(NS);
    options.upstream = upstream.url();
    options.batch_interval = "200ms";
    options.extra_args = vec!["--identity".into(), identity.into()];
    options
}

async fn is_leader(mediator: &Mediator) -> anyhow::Result<bool> {
    Ok(mediator.get_json("/v1/egress").await?["leader"] == true)
}

async fn report(mediator: &Mediator, token: &str, seq: u64) {
    let entity = format!("container/{NS}/burner-{seq}/main");
    let body = json!({"node": "kwok-node-2", "agentVersion": "0.1.0", "seq": seq, "time": seq, "symptoms": [
        {"change": "opened", "symptom": {"id": format!("agent.cpu.utilization:{entity}:{seq}"),
         "kind": "high-cpu-utilization", "entity": entity, "severity": "high",
         "rule": "agent.cpu.utilization", "started": seq}}]});
    if let Ok(http) = reqwest_client() {
        let _ = http.post(format!("{}/v1/reports", mediator.url)).bearer_auth(token).json(&body).send().await;
    }
}

/// The seqs a replica's ledger records as sent, after checking its chain and kept payloads.
async fn ledgered(mediator: &Mediator) -> anyhow::Result<(BTreeSet<u64>, Vec<LedgerEntry>)> {
    let http = reqwest_client()?;
    let ledger = http.get(format!("{}/v1/ledger?from=0&limit=100000", mediator.url)).send().await?.bytes().await?;
    let mut payloads = std::collections::BTreeMap::new();
    let entries: Vec<LedgerEntry> =
        split_lines(&ledger).0.into_iter().map(LedgerEntry::parse).collect::<Result<_, _>>()?;
    for entry in &entries {
        if let LedgerRecord::Sent { seq, .. } = entry.record {
            let body = http.get(format!("{}/v1/payloads/{seq}", mediator.url)).send().await?.bytes().await?;
            payloads.insert(seq, body.to_vec());
        }
    }
    let verification = verify(&ledger, |seq| payloads.get(&seq).cloned(), &EgressGuard::new());
    assert!(verification.violations.is_empty(), "{}: {:?}", mediator.url, verification.violations);
    Ok((payloads.keys().copied().collect(), entries))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_takes_over_without_losing_or_duplicating_a_seq() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    forget_stream(&client, NS).await?;
    let upstream = Upstream::start().await?;
    let token = agent_token(&client, NS, "causely-agent", "causely-mediator", None).await?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);

    let mut a = Mediator::start(&cluster, &dir_a.path().join("state"), options(&upstream, "replica-a")).await?;
    poll::until("replica a leads", Duration::from_secs(40), || async { Ok(is_leader(&a).await?.then_some(())) })
        .await?;
    let b = Mediator::start(&cluster, &dir_b.path().join("state"), options(&upstream, "replica-b")).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!is_leader(&b).await?, "two leaders");
    let standby = reqwest_client()?.get(format!("{}/readyz", b.url)).send().await?;
    assert_eq!(standby.status().as_u16(), 503, "a standby is not ready, so the Service routes to the leader");

    let mut seq = 0;
    for _ in 0..15 {
        seq += 1;
        report(&a, &token, seq).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.kill();
    poll::until("replica b takes over", Duration::from_secs(40), || async { Ok(is_leader(&b).await?.then_some(())) })
        .await?;
    for _ in 0..15 {
        seq += 1;
        report(&b, &token, seq).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.restart().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!is_leader(&a).await?, "the old leader comes back as a standby");

    for m in [&a, &b] {
        poll::until("everything accepted is acknowledged", Duration::from_secs(30), || async move {
            Ok((m.get_json("/v1/egress").await?["pendingBatches"] == 0).then_some(()))
        })
        .await?;
    }
    let (sent_a, _) = ledgered(&a).await?;
    let (sent_b, entries_b) = ledgered(&b).await?;
    assert!(sent_a.is_disjoint(&sent_b), "a seq was used by both replicas: {:?}", sent_a.intersection(&sent_b));
    assert!(!sent_a.is_empty() && !sent_b.is_empty(), "a: {sent_a:?} b: {sent_b:?}");
    let resumed = entries_b.iter().find_map(|e| match &e.record {
        LedgerRecord::Resumed { seq, holder } => Some((*seq, holder.clone())),
        _ => None,
    });
    let (resumed_at, from) = resumed.expect("replica b ledgers where it resumed the stream");
    assert_eq!(from, "replica-a");
    assert!(sent_a.iter().all(|s| *s < resumed_at) && sent_b.iter().all(|s| *s >= resumed_at));

    let delivered: BTreeSet<u64> = deduplicated(&upstream.received())?.into_iter().map(|r| r.seq).collect();
    let ledgered: BTreeSet<u64> = sent_a.union(&sent_b).copied().collect();
    assert_eq!(delivered, ledgered, "the upstream has exactly the seqs the replicas accepted");

    // The new leader's first batch is a full snapshot, so the receiver's state converges.
    let first_b = sent_b.iter().next().copied().unwrap_or_default();
    let first = b.get_json(&format!("/v1/payloads/{first_b}")).await?;
    assert_eq!(first["topology"]["type"], "snapshot", "{first}");
    Ok(())
}
