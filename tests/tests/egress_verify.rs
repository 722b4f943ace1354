//! `kubectl causely egress verify` and `egress tail`, run as the real binary against a real
//! mediator and API server: a clean ledger is proven; each tampering (a payload byte changed, a
//! guard-violating payload smuggled in with a correctly chained entry, the ledger cut behind a
//! running mediator's back, an entry deleted, two entries swapped, a NetworkPolicy removed or
//! widened) is a violation that names what broke; `tail` shows a batch accepted while it runs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, ensure};
use causely_model::ledger::{LedgerRecord, LedgerWriter, sha256_hex, split_lines};
use causely_model::{EgressBatch, Entity, EntityId, SCHEMA_VERSION, TopologyPayload, UnixMillis};
use causely_tests::cluster::Cluster;
use causely_tests::mediator::{
    Mediator, MediatorOptions, agent_token, ensure_namespace, forget_stream, reqwest_client,
};
use causely_tests::plugin::{self, Run};
use causely_tests::poll;
use causely_tests::workspace::workspace_bin;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kubectl_causely::baseline::Baseline;
use kubectl_causely::record::Record;
use kubectl_causely::render::render;
use kubectl_causely::render::settings::Settings;
use serde_json::{Value, json};

/// The local cluster's VictoriaMetrics (`tests/cluster/up`).
const VICTORIA_METRICS: &str = "http://127.0.0.1:38428";

/// An agent report opening one symptom (and resolving the previous one) on a container of `ns`.
fn symptom_report(ns: &str, seq: u64) -> Value {
    let entity = |i: u64| format!("container/{ns}/burner-{i}/main");
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

/// A mediator of its own namespace with an agent token to report with.
async fn mediator(cluster: &Cluster, ns: &str, state: &Path) -> anyhow::Result<(Mediator, String)> {
    let client = cluster.client().await?;
    ensure_namespace(&client, ns).await?;
    forget_stream(&client, ns).await?;
    let mediator = Mediator::start(cluster, state, MediatorOptions::new(ns)).await?;
    let token = agent_token(&client, ns, "causely-agent", "causely-mediator", None).await?;
    Ok((mediator, token))
}

async fn report(mediator: &Mediator, token: &str, body: &Value) -> anyhow::Result<()> {
    let response =
        reqwest_client()?.post(format!("{}/v1/reports", mediator.url)).bearer_auth(token).json(body).send().await?;
    ensure!(response.status().as_u16() == 202, "report refused: {}", response.status());
    Ok(())
}

async fn accepted(mediator: &Mediator) -> anyhow::Result<u64> {
    Ok(mediator.get_json("/v1/egress").await?["batchesAccepted"].as_u64().unwrap_or(0))
}

/// The release's NetworkPolicies and install record for an install in `ns`, applied as the
/// installer would (the workloads are left out: the mediator runs as a host process here).
async fn apply_policies(cluster: &Cluster, ns: &str) -> anyhow::Result<()> {
    let client = cluster.client().await?;
    let settings = Settings { namespace: ns.to_owned(), ..Settings::defaults() };
    let objects = render(&settings, &Baseline::seed()?)?;
    let record = Record { settings, objects: objects.clone() }.to_manifest();
    for manifest in objects.iter().filter(|m| m.kind == "NetworkPolicy").chain([&record]) {
        kubectl_causely::cluster::apply(&client, manifest, false).await?;
    }
    Ok(())
}

fn verify(cluster: &Cluster, ns: &str, mediator: &Mediator, extra: &[&str]) -> anyhow::Result<(Run, Value)> {
    let mut args = vec!["egress", "verify", "-n", ns, "--mediator-url", &mediator.url, "-o", "json"];
    args.extend_from_slice(extra);
    let run = plugin::run(cluster, &args)?;
    let doc: Value = serde_json::from_str(&run.stdout)
        .with_context(|| format!("stdout is not JSON:\n{}\nstderr:\n{}", run.stdout, run.stderr))?;
    Ok((run, doc))
}

/// `(rule, seq)` of every violation.
fn violations(doc: &Value) -> Vec<(String, Option<u64>)> {
    doc["violations"]
        .as_array()
        .map(|list| list.iter().map(|v| (v["rule"].as_str().unwrap_or("").to_owned(), v["seq"].as_u64())).collect())
        .unwrap_or_default()
}

fn expect_code(run: &Run, code: i32, doc: &Value) -> anyhow::Result<()> {
    ensure!(run.code == Some(code), "exit {:?}, expected {code}: {doc:#}\nstderr: {}", run.code, run.stderr);
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to.join("payloads"))?;
    for name in ["ledger.jsonl", "delivered", "needs-snapshot"] {
        if from.join(name).exists() {
            std::fs::copy(from.join(name), to.join(name))?;
        }
    }
    for item in std::fs::read_dir(from.join("payloads"))? {
        let item = item?;
        std::fs::copy(item.path(), to.join("payloads").join(item.file_name()))?;
    }
    Ok(())
}

/// Replaces the state directory with `backup` (the mediator must be stopped).
fn restore(state: &Path, backup: &Path) -> anyhow::Result<()> {
    std::fs::remove_dir_all(state)?;
    copy_dir(backup, state)
}

fn payload_path(state: &Path, seq: u64) -> std::path::PathBuf {
    state.join("payloads").join(format!("{seq:020}.json"))
}

fn ledger_lines(state: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(state.join("ledger.jsonl"))?;
    Ok(split_lines(&bytes).0.into_iter().map(<[u8]>::to_vec).collect())
}

fn write_lines(state: &Path, lines: &[Vec<u8>]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    Ok(std::fs::write(state.join("ledger.jsonl"), bytes)?)
}

/// An attacker who can recompute hashes: a payload carrying a metric series, written as the next
/// seq, with a ledger entry correctly chained after the last one. Returns its seq.
fn smuggle_series(state: &Path, cluster_id: &str) -> anyhow::Result<u64> {
    let lines = ledger_lines(state)?;
    let mut next_seq = 1;
    for line in &lines {
        match causely_model::LedgerEntry::parse(line)?.record {
            LedgerRecord::Sent { seq, .. } => next_seq = seq + 1,
            LedgerRecord::Resumed { seq, .. } => next_seq = next_seq.max(seq),
            _ => {}
        }
    }
    let leaky = EgressBatch {
        cluster_id: cluster_id.to_owned(),
        seq: next_seq,
        time: UnixMillis(1_700_000_000_000),
        schema_version: SCHEMA_VERSION,
        topology: TopologyPayload::Delta {
            added_entities: vec![Entity::new(EntityId::node("kwok-node-1")).with_label("cpu", "0.93,0.95,0.97")],
            removed_entities: vec![],
            added_edges: vec![],
            removed_edges: vec![],
        },
        symptoms: vec![],
    };
    let body = serde_json::to_vec(&leaky)?;
    std::fs::write(payload_path(state, next_seq), &body)?;
    let mut writer = LedgerWriter::resume(lines.len() as u64, lines.last().map(Vec::as_slice));
    let record = LedgerRecord::Sent { seq: next_seq, bytes: body.len() as u64, sha256: sha256_hex(&body) };
    writer.append(UnixMillis(1_700_000_000_000), record)?;
    let mut file = std::fs::OpenOptions::new().append(true).open(state.join("ledger.jsonl"))?;
    std::io::Write::write_all(&mut file, &writer.bytes)?;
    Ok(next_seq)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_ledger_is_proven_and_each_tampering_is_named() -> anyhow::Result<()> {
    const NS: &str = "egress-verify";
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let (mut mediator, token) = mediator(&cluster, NS, &state).await?;
    apply_policies(&cluster, NS).await?;

    for seq in 1..=4 {
        let before = accepted(&mediator).await?;
        report(&mediator, &token, &symptom_report(NS, seq)).await?;
        poll::until("the report's batch is accepted", Duration::from_secs(30), || {
            let mediator = &mediator;
            async move { Ok((accepted(mediator).await? > before).then_some(())) }
        })
        .await?;
    }
    mediator.kill();
    let backup = dir.path().join("backup");
    copy_dir(&state, &backup)?;
    mediator.restart().await?;

    // Clean: proven, with the evidence of what left.
    let (run, doc) = verify(&cluster, NS, &mediator, &["--victoria-metrics-url", VICTORIA_METRICS])?;
    expect_code(&run, 0, &doc)?;
    ensure!(doc["verdict"] == "proven", "{doc:#}");
    let evidence = &doc["evidence"];
    ensure!(evidence["window"]["batches"].as_u64() >= Some(4), "{evidence:#}");
    ensure!(evidence["content"]["symptomKinds"].as_array().is_some_and(|k| k.contains(&json!("high-cpu-utilization"))));
    ensure!(evidence["content"]["schemaVersions"] == json!([SCHEMA_VERSION]), "{evidence:#}");
    ensure!(evidence["raw"]["egressRatio"].as_f64().is_some(), "VictoriaMetrics not compared: {evidence:#}");
    let checks: Vec<(&str, &str)> = doc["checks"]
        .as_array()
        .context("no checks")?
        .iter()
        .map(|c| (c["name"].as_str().unwrap_or(""), c["status"].as_str().unwrap_or("")))
        .collect();
    ensure!(checks.iter().all(|(_, status)| *status == "passed"), "{checks:?}");
    let text =
        plugin::expect(&cluster, &["egress", "verify", "-n", NS, "--mediator-url", &mediator.url, "--since", "1h"], 0)?;
    ensure!(text.stdout.starts_with("egress verify: PROVEN"), "{}", text.stdout);
    ensure!(text.stdout.contains("chain verified from entry 0"), "{}", text.stdout);

    // A NetworkPolicy removed, another widened.
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), NS);
    policies.delete("causely-mediator", &DeleteParams::default()).await?;
    let widen =
        json!([{"op": "add", "path": "/spec/egress/-", "value": {"ports": [{"port": 9999, "protocol": "TCP"}]}}]);
    policies
        .patch("causely-agent", &PatchParams::default(), &Patch::<Value>::Json(serde_json::from_value(widen)?))
        .await?;
    let (run, doc) = verify(&cluster, NS, &mediator, &[])?;
    expect_code(&run, 1, &doc)?;
    let found = violations(&doc);
    ensure!(found.contains(&("network-policy-missing".into(), None)), "{found:?}");
    ensure!(found.contains(&("network-policy-changed".into(), None)), "{found:?}");
    ensure!(found.len() == 2, "{found:?}");
    policies.delete("causely-agent", &DeleteParams::default()).await?;
    apply_policies(&cluster, NS).await?;

    // A byte changed in a kept payload: the mediator still starts; verify names the seq.
    mediator.kill();
    let path = payload_path(&state, 2);
    let mut body = std::fs::read(&path)?;
    let at = body.windows(6).position(|w| w == b"\"test\"").context("no cluster id in payload 2")? + 1;
    body[at] = b'b';
    std::fs::write(&path, &body)?;
    mediator.restart().await?;
    let (run, doc) = verify(&cluster, NS, &mediator, &[])?;
    expect_code(&run, 1, &doc)?;
    ensure!(violations(&doc) == vec![("payload-hash-mismatch".into(), Some(2))], "{doc:#}");

    // A payload carrying a metric series, with a correctly chained ledger entry: the mediator
    // starts on it (the chain holds), and the guard catches it.
    mediator.kill();
    restore(&state, &backup)?;
    let smuggled = smuggle_series(&state, "test")?;
    mediator.restart().await?;
    let (run, doc) = verify(&cluster, NS, &mediator, &[])?;
    expect_code(&run, 1, &doc)?;
    ensure!(violations(&doc) == vec![("payload-rejected".into(), Some(smuggled))], "{doc:#}");
    ensure!(doc["violations"][0]["guardRule"] == "series-string", "{doc:#}");
    ensure!(doc["violations"][0]["check"] == "egress-guard", "{doc:#}");

    // The ledger's last entry cut behind the running mediator's back: the chain of what is left
    // holds, the mediator's counters do not.
    mediator.kill();
    restore(&state, &backup)?;
    mediator.restart().await?;
    let ledger = std::fs::read(state.join("ledger.jsonl"))?;
    let last_start = ledger[..ledger.len() - 1].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    std::fs::OpenOptions::new().write(true).open(state.join("ledger.jsonl"))?.set_len(last_start as u64)?;
    let (run, doc) = verify(&cluster, NS, &mediator, &[])?;
    expect_code(&run, 1, &doc)?;
    let found = violations(&doc);
    ensure!(found.iter().any(|(rule, _)| rule == "counter-mismatch"), "{doc:#}");
    mediator.kill();

    // An entry deleted, or two swapped: the mediator refuses to open such a ledger, so the state
    // directory is audited directly.
    let offline = |dir: &Path, code: i32| -> anyhow::Result<Value> {
        let dir = dir.to_str().context("path")?;
        let run =
            plugin::run(&cluster, &["egress", "verify", "--state-dir", dir, "--skip-network-policies", "-o", "json"])?;
        let doc: Value = serde_json::from_str(&run.stdout).with_context(|| run.stderr.clone())?;
        expect_code(&run, code, &doc)?;
        Ok(doc)
    };
    let doc = offline(&backup, 0)?;
    ensure!(doc["verdict"] == "proven" && doc["checks"][3]["status"] == "not-applicable", "{doc:#}");
    let deleted = dir.path().join("deleted");
    copy_dir(&backup, &deleted)?;
    let mut lines = ledger_lines(&deleted)?;
    lines.remove(2);
    write_lines(&deleted, &lines)?;
    let refused = Command::new(workspace_bin("causely-mediator")?)
        .args(["--listen", "127.0.0.1:0", "--upstream-url", "none", "--state-dir"])
        .arg(&deleted)
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .env("POD_NAMESPACE", NS)
        .output()?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        stderr.contains("does not continue the chain"),
        "the mediator opened a ledger with an entry deleted: {stderr}"
    );
    let doc = offline(&deleted, 1)?;
    let found = violations(&doc);
    ensure!(found.contains(&("chain-broken".into(), None)), "{found:?}");
    ensure!(doc["violations"][0]["index"] == 2, "{doc:#}");
    let swapped = dir.path().join("swapped");
    copy_dir(&backup, &swapped)?;
    let mut lines = ledger_lines(&swapped)?;
    lines.swap(1, 2);
    write_lines(&swapped, &lines)?;
    let doc = offline(&swapped, 1)?;
    let found = violations(&doc);
    ensure!(found.contains(&("index-not-contiguous".into(), None)), "{found:?}");
    ensure!(doc["violations"][0]["index"] == 1, "{doc:#}");
    Ok(())
}

/// A running `kubectl-causely` whose stdout lines arrive on a channel.
struct Tail {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tail {
    fn start(cluster: &Cluster, args: &[&str]) -> anyhow::Result<Tail> {
        let mut child = Command::new(workspace_bin("kubectl-causely")?)
            .args(args)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Tail { child, lines })
    }

    /// The next line within `timeout`.
    fn line(&self, timeout: Duration) -> anyhow::Result<String> {
        self.lines.recv_timeout(timeout).context("no line from egress tail")
    }

    /// Sends ctrl-c and returns the exit code and stderr.
    fn interrupt(mut self) -> anyhow::Result<(Option<i32>, String)> {
        Command::new("kill").args(["-INT", &self.child.id().to_string()]).status()?;
        self.wait()
    }

    fn wait(&mut self) -> anyhow::Result<(Option<i32>, String)> {
        let status = self.child.wait()?;
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut err, &mut stderr)?;
        }
        Ok((status.code(), stderr))
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_shows_a_batch_accepted_while_it_runs_and_ends_on_ctrl_c() -> anyhow::Result<()> {
    const NS: &str = "egress-tail";
    let cluster = Cluster::get()?;
    let dir = tempfile::tempdir()?;
    let (mut mediator, token) = mediator(&cluster, NS, &dir.path().join("state")).await?;
    poll::until("the first batch", Duration::from_secs(30), || {
        let mediator = &mediator;
        async move { Ok((accepted(mediator).await? > 0).then_some(())) }
    })
    .await?;

    let tail = Tail::start(&cluster, &["egress", "tail", "-n", NS, "--mediator-url", &mediator.url])?;
    // The tail reads the position it starts from before it prints anything; give it that moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    report(&mediator, &token, &symptom_report(NS, 1)).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let line = loop {
        let line = tail.line(deadline.saturating_duration_since(std::time::Instant::now()))?;
        if line.contains("symptoms +1") {
            break line;
        }
    };
    ensure!(line.starts_with("seq ") && line.contains(" B "), "{line}");
    let (code, stderr) = tail.interrupt()?;
    ensure!(code == Some(0), "ctrl-c ended tail with {code:?}: {stderr}");

    // JSON Lines from the start: every line parses, and sent entries carry their batch.
    let sent = accepted(&mediator).await?;
    let tail = Tail::start(
        &cluster,
        &["egress", "tail", "-n", NS, "--mediator-url", &mediator.url, "--from-start", "-o", "json"],
    )?;
    let mut batches = 0;
    while batches < sent {
        let line = tail.line(Duration::from_secs(20))?;
        let object: Value = serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))?;
        if object["kind"] == "sent" {
            ensure!(object["batch"]["seq"] == object["seq"], "{object}");
            batches += 1;
        }
    }
    let (code, stderr) = tail.interrupt()?;
    ensure!(code == Some(0), "{stderr}");

    // The mediator goes away: one line, exit 2.
    let mut tail = Tail::start(&cluster, &["egress", "tail", "-n", NS, "--mediator-url", &mediator.url])?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    mediator.kill();
    let (code, stderr) = tail.wait()?;
    ensure!(code == Some(2), "exit {code:?}: {stderr}");
    ensure!(stderr.trim().lines().count() == 1 && stderr.starts_with("error: "), "{stderr}");
    Ok(())
}

#[test]
fn bad_flags_and_an_unreachable_mediator_are_one_line_and_exit_two() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let cases: [&[&str]; 5] = [
        &["egress", "verify", "--mediator-url", "http://127.0.0.1:9"],
        &["egress", "verify", "--since", "5 minutes"],
        &["egress", "verify", "--mediator-url", "127.0.0.1:9"],
        &["egress", "verify", "--state-dir", "/nonexistent/causely-state"],
        &["egress", "tail", "--mediator-url", "http://127.0.0.1:9"],
    ];
    for args in cases {
        let run = plugin::run(&cluster, args)?;
        ensure!(run.code == Some(2), "{args:?} exited {:?}: {}", run.code, run.stderr);
        ensure!(run.stdout.is_empty(), "{args:?} printed {}", run.stdout);
        let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        // clap adds a usage hint under its error line.
        ensure!(!lines.is_empty() && lines.len() <= 3 && !run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    }
    Ok(())
}
