//! Delivery over HTTPS: the mediator trusts the upstream only through the CA it is given, sends the
//! bearer token from a file and picks up a rotated token without a restart; without the CA it
//! refuses the connection, keeps the batches queued and says why.

use std::time::Duration;

use causely_tests::cluster::Cluster;
use causely_tests::mediator::{Mediator, MediatorOptions, agent_token, ensure_namespace, reqwest_client};
use causely_tests::poll;
use causely_tests::upstream::{TestPki, Upstream};
use serde_json::json;

async fn open_symptom(mediator: &Mediator, token: &str, ns: &str, n: u64) -> anyhow::Result<()> {
    let entity = format!("container/{ns}/burner-{n}/main");
    let report = json!({"node": "kwok-node-3", "agentVersion": "0.1.0", "seq": n, "time": n, "symptoms": [
        {"change": "opened", "symptom": {"id": format!("agent.cpu.utilization:{entity}:{n}"),
         "kind": "high-cpu-utilization", "entity": entity, "severity": "high",
         "rule": "agent.cpu.utilization", "started": n}}]});
    let response =
        reqwest_client()?.post(format!("{}/v1/reports", mediator.url)).bearer_auth(token).json(&report).send().await?;
    anyhow::ensure!(response.status().as_u16() == 202, "report refused: {}", response.text().await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_reach_an_https_upstream_through_a_custom_ca_with_a_rotating_token() -> anyhow::Result<()> {
    const NS: &str = "med-tls";
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    let pki = TestPki::new()?;
    let upstream = Upstream::start_tls(&pki).await?;
    assert!(upstream.url().starts_with("https://"));
    let dir = tempfile::tempdir()?;
    let (ca, token_file) = (dir.path().join("ca.pem"), dir.path().join("upstream-token"));
    std::fs::write(&ca, &pki.ca_pem)?;
    std::fs::write(&token_file, "first-token\n")?;
    let mut options = MediatorOptions::new(NS);
    options.upstream = upstream.url();
    options.extra_args = vec![
        "--upstream-ca".into(),
        ca.display().to_string(),
        "--upstream-token-file".into(),
        token_file.display().to_string(),
    ];
    let mediator = Mediator::start(&cluster, &dir.path().join("state"), options).await?;
    let agent = agent_token(&client, NS, "causely-agent", "causely-mediator", None).await?;

    poll::until("a batch arrives over TLS", Duration::from_secs(30), || async {
        Ok(upstream.received().first().cloned())
    })
    .await?;
    assert!(upstream.received().iter().all(|r| r.authorization.as_deref() == Some("Bearer first-token")));

    std::fs::write(&token_file, "second-token\n")?;
    open_symptom(&mediator, &agent, NS, 1).await?;
    poll::until("the rotated token is used", Duration::from_secs(30), || async {
        Ok(upstream.received().iter().any(|r| r.authorization.as_deref() == Some("Bearer second-token")).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_whose_certificate_is_not_trusted_gets_nothing() -> anyhow::Result<()> {
    const NS: &str = "med-tls-untrusted";
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    let upstream = Upstream::start_tls(&TestPki::new()?).await?;
    let dir = tempfile::tempdir()?;
    let mut options = MediatorOptions::new(NS);
    options.upstream = upstream.url();
    let mediator = Mediator::start(&cluster, &dir.path().join("state"), options).await?;
    let status = poll::until("delivery reports the failure", Duration::from_secs(30), || async {
        let s = mediator.get_json("/v1/egress").await?;
        Ok((s["lastError"].is_string() && s["pendingBatches"].as_u64().unwrap_or(0) > 0).then_some(s))
    })
    .await?;
    assert!(upstream.received().is_empty(), "an untrusted upstream received data");
    assert_eq!(status["deliveredSeq"], 0, "{status}");
    Ok(())
}
