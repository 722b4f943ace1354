//! Component tests of the report path over real HTTP on loopback.
//!
//! The mediator's intake here is a test double: a small axum server that answers what each test
//! scripts (202, 500, 401, 422, or never). The real mediator needs a Kubernetes API server to
//! verify the agent's ServiceAccount token against, so the agent against the real mediator is
//! exercised in the cluster tests (`tests/`), not here.

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use causely_agent::ship::Backoff;
use causely_agent::ship::mediator::{MediatorConfig, MediatorCounters, ReportSender, mediator};
use causely_model::id::EntityId;
use causely_model::report::AgentReport;
use causely_model::symptom::{SymptomChange, SymptomId};
use causely_model::time::UnixMillis;
use tokio::task::JoinHandle;

/// How the double answers one request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Never answers (until the test ends).
    Hang,
}

/// One request the double received.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    authorization: String,
    seq: u64,
    symptoms: usize,
}

#[derive(Debug, Default)]
struct Script {
    answers: VecDeque<Answer>,
    /// Answer once the script has run out.
    then: Option<Answer>,
    /// 401 unless the request carries this bearer token.
    require_token: Option<String>,
    /// Tokens written to `token_file` after each request, in turn (the kubelet rotating it).
    rotations: VecDeque<String>,
    token_file: Option<PathBuf>,
    seen: Vec<Seen>,
}

type Double = Arc<Mutex<Script>>;

async fn intake(State(double): State<Double>, headers: HeaderMap, body: String) -> StatusCode {
    let answer = {
        let mut script = double.lock().unwrap();
        let report: AgentReport = serde_json::from_str(&body).expect("the body is an AgentReport");
        let authorization = headers.get("authorization").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let authorized = script.require_token.as_ref().is_none_or(|t| authorization == format!("Bearer {t}"));
        assert_eq!(headers.get("content-type").unwrap(), "application/json");
        script.seen.push(Seen { authorization, seq: report.seq, symptoms: report.symptoms.len() });
        if let (Some(next), Some(path)) = (script.rotations.pop_front(), script.token_file.clone()) {
            std::fs::write(path, next).unwrap();
        }
        if authorized {
            script.answers.pop_front().or(script.then).unwrap_or(Answer::Status(202))
        } else {
            Answer::Status(401)
        }
    };
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
        Answer::Hang => std::future::pending().await,
    }
}

struct Setup {
    double: Double,
    token_file: PathBuf,
    config: MediatorConfig,
    _dir: tempfile::TempDir,
}

/// Starts the double and returns the configuration of an agent that reports to it.
async fn setup(script: Script) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "token-0\n").unwrap();
    let double = Arc::new(Mutex::new(Script { token_file: Some(token_file.clone()), ..script }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/v1/reports", post(intake)).with_state(double.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut config = MediatorConfig::new(url.parse().unwrap(), token_file.clone());
    config.timeout = Duration::from_millis(300);
    config.backoff = Backoff { min: Duration::from_millis(20), max: Duration::from_millis(100) };
    Setup { double, token_file, config, _dir: dir }
}

fn start(config: MediatorConfig) -> (ReportSender, JoinHandle<()>) {
    let (sender, shipper) = mediator(config).unwrap();
    (sender, tokio::spawn(async move { shipper.run().await.unwrap() }))
}

fn report(symptoms: usize) -> AgentReport {
    let entity: EntityId = "node/worker-1".parse().unwrap();
    AgentReport {
        node: "worker-1".into(),
        agent_version: "0.1.0".into(),
        seq: 0,
        time: UnixMillis(1_000),
        connections: vec![],
        symptoms: (0..symptoms as u64)
            .map(|i| SymptomChange::Resolved {
                id: SymptomId::of("agent.cpu.utilization", &entity, UnixMillis(i)),
                resolved: UnixMillis(999),
            })
            .collect(),
    }
}

async fn wait_for(sender: &ReportSender, what: &str, done: impl Fn(&MediatorCounters) -> bool) {
    for _ in 0..200 {
        if done(&sender.counters()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}: {:?}", sender.counters());
}

/// Drops the sender, waits for the shipper to finish its queue and stop, and returns its counters.
async fn finish(sender: ReportSender, task: JoinHandle<()>) -> MediatorCounters {
    let probe = sender.probe();
    drop(sender);
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("the shipper stops").unwrap();
    probe.counters()
}

fn seen(double: &Double) -> Vec<Seen> {
    double.lock().unwrap().seen.clone()
}

#[tokio::test]
async fn a_report_is_retried_through_server_errors_throttling_and_a_hang_until_it_is_accepted() {
    let script = Script {
        answers: [Answer::Status(500), Answer::Status(429), Answer::Hang, Answer::Status(503)].into(),
        ..Script::default()
    };
    let s = setup(script).await;
    let (sender, task) = start(s.config.clone());
    assert_eq!(sender.push(report(1)).unwrap(), 1);
    wait_for(&sender, "the report to be accepted", |c| c.sent_reports == 1).await;
    let c = finish(sender, task).await;
    assert_eq!((c.failed_attempts, c.refused_reports, c.queued_reports), (4, 0, 0), "{c:?}");
    let seqs: Vec<u64> = seen(&s.double).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 1, 1, 1, 1]);
}

#[tokio::test]
async fn the_token_file_is_read_again_at_every_attempt() {
    let script = Script {
        answers: [Answer::Status(500), Answer::Status(502)].into(),
        rotations: ["token-1".into(), "token-2".into(), "token-3".into()].into(),
        ..Script::default()
    };
    let s = setup(script).await;
    let (sender, task) = start(s.config.clone());
    sender.push(report(0)).unwrap();
    wait_for(&sender, "the report to be accepted", |c| c.sent_reports == 1).await;
    sender.push(report(0)).unwrap();
    wait_for(&sender, "the second report to be accepted", |c| c.sent_reports == 2).await;
    finish(sender, task).await;
    let auth: Vec<String> = seen(&s.double).into_iter().map(|r| r.authorization).collect();
    assert_eq!(auth, ["Bearer token-0", "Bearer token-1", "Bearer token-2", "Bearer token-3"]);
}

#[tokio::test]
async fn a_401_is_retried_with_the_rotated_token_and_succeeds() {
    let script =
        Script { require_token: Some("fresh".into()), rotations: ["fresh".into()].into(), ..Script::default() };
    let s = setup(script).await;
    let (sender, task) = start(s.config.clone());
    sender.push(report(2)).unwrap();
    wait_for(&sender, "the report to be accepted", |c| c.sent_reports == 1).await;
    let c = finish(sender, task).await;
    assert_eq!((c.failed_attempts, c.refused_reports), (1, 0));
    let auth: Vec<String> = seen(&s.double).into_iter().map(|r| r.authorization).collect();
    assert_eq!(auth, ["Bearer token-0", "Bearer fresh"]);
}

#[tokio::test]
async fn a_401_that_persists_drops_the_report_after_a_bounded_number_of_attempts_and_the_next_is_sent() {
    let s = setup(Script { require_token: Some("never-written".into()), ..Script::default() }).await;
    let mut config = s.config.clone();
    config.max_unauthorized = 3;
    let (sender, task) = start(config);
    sender.push(report(2)).unwrap();
    wait_for(&sender, "the report to be refused", |c| c.refused_reports == 1).await;
    let c = sender.counters();
    assert_eq!((c.refused_symptom_changes, c.failed_attempts, c.sent_reports), (2, 3, 0), "{c:?}");
    assert_eq!(seen(&s.double).len(), 3);

    // The token becomes valid: the next report goes through under the next seq.
    s.double.lock().unwrap().require_token = None;
    std::fs::write(&s.token_file, "valid").unwrap();
    assert_eq!(sender.push(report(0)).unwrap(), 2);
    wait_for(&sender, "the next report to be accepted", |c| c.sent_reports == 1).await;
    finish(sender, task).await;
    let last = seen(&s.double).pop().unwrap();
    assert_eq!((last.seq, last.authorization.as_str()), (2, "Bearer valid"));
}

#[tokio::test]
async fn a_permanent_refusal_drops_that_report_and_counts_its_symptom_changes_without_retrying() {
    let s = setup(Script { answers: [Answer::Status(422)].into(), ..Script::default() }).await;
    let (sender, task) = start(s.config.clone());
    sender.push(report(2)).unwrap();
    sender.push(report(1)).unwrap();
    wait_for(&sender, "both reports to be settled", |c| c.sent_reports + c.refused_reports == 2).await;
    let c = finish(sender, task).await;
    assert_eq!((c.sent_reports, c.refused_reports, c.refused_symptom_changes, c.failed_attempts), (1, 1, 2, 1));
    let got: Vec<(u64, usize)> = seen(&s.double).iter().map(|r| (r.seq, r.symptoms)).collect();
    assert_eq!(got, [(1, 2), (2, 1)], "the refused report was sent once, and the next one right after");
}

#[tokio::test]
async fn a_full_queue_keeps_the_newest_reports_and_carries_the_dropped_reports_symptom_changes_forward() {
    let s = setup(Script::default()).await;
    let mut config = s.config.clone();
    config.queue_capacity = 2;
    let (sender, shipper) = mediator(config).unwrap();
    // Queued before the shipper runs, as while the mediator is unreachable.
    for symptoms in [1, 3, 0, 4] {
        sender.push(report(symptoms)).unwrap();
    }
    let c = sender.counters();
    assert_eq!((c.dropped_reports, c.dropped_symptom_changes, c.queued_reports), (2, 0, 2), "{c:?}");
    let task = tokio::spawn(async move { shipper.run().await.unwrap() });
    wait_for(&sender, "the kept reports to be sent", |c| c.sent_reports == 2).await;
    finish(sender, task).await;
    let got: Vec<(u64, usize)> = seen(&s.double).iter().map(|r| (r.seq, r.symptoms)).collect();
    assert_eq!(got, [(3, 4), (4, 4)], "the 1 + 3 changes of the dropped reports arrive with report 3");
}

#[tokio::test]
async fn while_the_mediator_fails_each_retry_sends_whatever_is_oldest_in_the_queue_then() {
    let s = setup(Script { then: Some(Answer::Status(503)), ..Script::default() }).await;
    let mut config = s.config.clone();
    config.queue_capacity = 2;
    let (sender, task) = start(config);
    sender.push(report(0)).unwrap();
    wait_for(&sender, "a first failure", |c| c.failed_attempts >= 1).await;
    // Reports 2 and 3 push report 1 out of the queue while it is being retried.
    sender.push(report(0)).unwrap();
    sender.push(report(0)).unwrap();
    let failed = sender.counters().failed_attempts;
    // Two more failures: at least one attempt began after report 1 had left the queue.
    wait_for(&sender, "failures after the eviction", |c| c.failed_attempts >= failed + 2).await;
    s.double.lock().unwrap().then = None;
    wait_for(&sender, "the queue to drain", |c| c.queued_reports == 0).await;
    let c = finish(sender, task).await;
    assert_eq!((c.sent_reports, c.dropped_reports, c.refused_reports), (2, 1, 0), "report 1 was never accepted");
    let seqs: Vec<u64> = seen(&s.double).iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "{seqs:?}");
    assert_eq!((seqs.first(), seqs.last()), (Some(&1), Some(&3)), "{seqs:?}");
    assert!(seqs.contains(&2), "{seqs:?}");
}
