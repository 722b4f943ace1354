//! Component test of egress delivery: a real HTTP upstream on loopback that goes up, down, slow
//! and failing while batches are accepted, and what it finally holds.

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use causely_mediator::egress::deliver::{self, Backoff, DeliveryStatus, Upstream};
use causely_mediator::egress::store::{EgressStore, StoreLimits};
use causely_model::ledger::verify;
use causely_model::{EgressBatch, EgressGuard, Entity, EntityId, SCHEMA_VERSION, TopologyPayload, UnixMillis};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_millis(250);
const SLOW: Duration = Duration::from_millis(750);
const PHASE: Duration = Duration::from_millis(300);
const BATCHES: u64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers 200.
    Up,
    /// The listener is closed: connections are refused.
    Down,
    /// Stores the batch, then answers only after the client has given up: a lost acknowledgement.
    Slow,
    /// Answers 500 without storing.
    Failing,
}

#[derive(Debug)]
struct Received {
    seq_header: u64,
    cluster_header: String,
    content_type: String,
    token: String,
    body: Vec<u8>,
}

#[derive(Debug)]
struct Shared {
    mode: Mutex<Mode>,
    token: Mutex<String>,
    stored: Mutex<Vec<Received>>,
    slow_hits: AtomicU64,
    failing_hits: AtomicU64,
    unauthorized_hits: AtomicU64,
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mode = *shared.mode.lock().unwrap();
    let token = header(&headers, "authorization");
    if token != format!("Bearer {}", shared.token.lock().unwrap()) {
        shared.unauthorized_hits.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    match mode {
        Mode::Failing => {
            shared.failing_hits.fetch_add(1, Ordering::SeqCst);
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        Mode::Down => return StatusCode::SERVICE_UNAVAILABLE,
        Mode::Up | Mode::Slow => {}
    }
    shared.stored.lock().unwrap().push(Received {
        seq_header: header(&headers, "x-causely-seq").parse().unwrap_or(0),
        cluster_header: header(&headers, "x-causely-cluster-id"),
        content_type: header(&headers, "content-type"),
        token,
        body: body.to_vec(),
    });
    if mode == Mode::Slow {
        shared.slow_hits.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(SLOW).await;
    }
    StatusCode::OK
}

/// The upstream: an axum server on a fixed loopback port that can be stopped and started again.
struct TestUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl TestUpstream {
    async fn start(token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Up),
            token: Mutex::new(token.to_owned()),
            stored: Mutex::new(Vec::new()),
            slow_hits: AtomicU64::new(0),
            failing_hits: AtomicU64::new(0),
            unauthorized_hits: AtomicU64::new(0),
        });
        let mut upstream = TestUpstream { addr: listener.local_addr().unwrap(), shared, running: None };
        upstream.serve(listener);
        upstream
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new().route("/v1/egress", post(receive)).with_state(Arc::clone(&self.shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        self.running = Some((stop, task));
    }

    async fn set(&mut self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
        match (mode, self.running.is_some()) {
            (Mode::Down, true) => {
                let (stop, task) = self.running.take().unwrap();
                stop.send(()).unwrap();
                // Graceful: idle keep-alive connections close too, so the upstream is really gone.
                task.await.unwrap();
            }
            (Mode::Up | Mode::Slow | Mode::Failing, false) => {
                let started = Instant::now();
                let listener = loop {
                    match TcpListener::bind(self.addr).await {
                        Ok(listener) => break listener,
                        Err(e) if started.elapsed() < Duration::from_secs(5) => {
                            eprintln!("rebinding {}: {e}", self.addr);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => panic!("cannot rebind {}: {e}", self.addr),
                    }
                };
                self.serve(listener);
            }
            _ => {}
        }
    }
}

fn batch(seq: u64) -> EgressBatch {
    EgressBatch {
        cluster_id: "prod-eu-1".into(),
        seq,
        time: UnixMillis(1_700_000_000_000 + seq),
        schema_version: SCHEMA_VERSION,
        topology: TopologyPayload::Delta {
            added_entities: vec![Entity::new(EntityId::pod("shop", format!("web-{seq}"))).with_label("app", "web")],
            removed_entities: vec![],
            added_edges: vec![],
            removed_edges: vec![],
        },
        symptoms: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_reaches_a_flapping_upstream_once_after_dedup_in_order_and_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let guard = Arc::new(EgressGuard::new());
    let limits = StoreLimits { max_pending_bytes: 64 << 20, retention: Duration::from_secs(3600) };
    let store = Arc::new(Mutex::new(EgressStore::open(dir.path(), limits, &guard).unwrap()));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "token-1\n").unwrap();
    let mut upstream = TestUpstream::start("token-1").await;

    let config = Upstream {
        url: format!("http://{}/v1/egress", upstream.addr).parse().unwrap(),
        cluster_id: "prod-eu-1".into(),
        ca_file: None,
        token_file: Some(token_file.clone()),
        timeout: TIMEOUT,
        // Shorter than production so the test spends its time flipping modes, not sleeping.
        backoff: Backoff { min: Duration::from_millis(10), max: Duration::from_millis(200) },
    };
    let wake = Arc::new(Notify::new());
    let (status_tx, status) = watch::channel(DeliveryStatus::default());
    // This upstream's replies carry no actions; the channel only has to exist.
    let (asked, _replies) = tokio::sync::mpsc::channel(1);
    let delivery = tokio::spawn(deliver::run(Arc::clone(&store), config, Arc::clone(&wake), status_tx, asked));

    let producer = {
        let (store, guard, wake) = (Arc::clone(&store), Arc::clone(&guard), Arc::clone(&wake));
        tokio::spawn(async move {
            for seq in 1..=BATCHES {
                store.lock().unwrap().accept(&batch(seq), &guard, UnixMillis(seq)).unwrap();
                wake.notify_one();
                tokio::time::sleep(Duration::from_millis(70)).await;
            }
        })
    };
    let schedule = [
        Mode::Slow,
        Mode::Down,
        Mode::Failing,
        Mode::Up,
        Mode::Slow,
        Mode::Failing,
        Mode::Down,
        Mode::Up,
        Mode::Failing,
        Mode::Slow,
        Mode::Down,
        Mode::Up,
    ];
    for (i, mode) in schedule.into_iter().enumerate() {
        upstream.set(mode).await;
        if i == 6 {
            // Rotate the token while the upstream is down; later attempts must read the new one.
            std::fs::write(&token_file, "token-2\n").unwrap();
            *upstream.shared.token.lock().unwrap() = "token-2".into();
        }
        tokio::time::sleep(PHASE).await;
    }
    producer.await.unwrap();
    upstream.set(Mode::Up).await;
    let started = Instant::now();
    while store.lock().unwrap().stats().delivered_seq < BATCHES {
        assert!(started.elapsed() < Duration::from_secs(60), "not delivered: {:?}", store.lock().unwrap().stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    delivery.abort();

    let stored = std::mem::take(&mut *upstream.shared.stored.lock().unwrap());
    let seqs: Vec<u64> = stored.iter().map(|r| r.seq_header).collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "a batch arrived before an earlier one: {seqs:?}");
    let mut deduped: Vec<&Received> = Vec::new();
    for received in &stored {
        if deduped.last().is_none_or(|last| last.seq_header != received.seq_header) {
            deduped.push(received);
        }
    }
    assert_eq!(deduped.iter().map(|r| r.seq_header).collect::<Vec<_>>(), (1..=BATCHES).collect::<Vec<_>>());

    let store = store.lock().unwrap();
    for received in &stored {
        let kept = store.payload(received.seq_header).unwrap().unwrap();
        assert_eq!(received.body, kept, "seq {} differs from its kept payload", received.seq_header);
        let body: EgressBatch = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(body.seq, received.seq_header);
        assert_eq!(received.cluster_header, "prod-eu-1");
        assert_eq!(received.content_type, "application/json");
    }
    let tokens: std::collections::BTreeSet<&str> = stored.iter().map(|r| r.token.as_str()).collect();
    assert_eq!(tokens, ["Bearer token-1", "Bearer token-2"].into(), "the rotated token was not picked up");

    let shared = &upstream.shared;
    assert!(shared.slow_hits.load(Ordering::SeqCst) > 0, "the slow mode was never exercised");
    assert!(shared.failing_hits.load(Ordering::SeqCst) > 0, "the failing mode was never exercised");
    let status = status.borrow().clone();
    assert_eq!((status.delivered, status.last_delivered_seq), (BATCHES, Some(BATCHES)));
    assert!(status.failed_attempts > 0 && status.last_error.is_some(), "{status:?}");

    let ledger = std::fs::read(store.ledger_path()).unwrap();
    let verification = verify(&ledger, |seq| store.payload(seq).ok().flatten(), &guard);
    assert!(verification.is_clean(), "{:?}", verification.violations);
    assert_eq!((verification.summary.sent, verification.summary.payloads_checked), (BATCHES, BATCHES));
}
