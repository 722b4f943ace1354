//! A real HTTP upstream on loopback that records what the mediator delivers and can be switched
//! to misbehave: refuse connections, answer slowly, or answer 500.
//!
//! It stands in for the causal-analysis backend, which does not run here; it speaks the delivery
//! protocol (`POST`, exact batch bytes as the body, `x-causely-seq`) and acknowledges with 2xx,
//! over plain HTTP or over TLS with a certificate from a throwaway CA.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// The listener is closed: connections are refused.
    Down,
    /// Each request waits this long before being acknowledged.
    Slow(Duration),
    /// Every request gets a 500.
    Failing,
}

/// One request the upstream acknowledged.
#[derive(Debug, Clone)]
pub struct Received {
    pub seq: u64,
    pub body: Vec<u8>,
    pub authorization: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    received: Vec<Received>,
    mode: Option<Mode>,
    /// Bodies for the next acknowledgements, in order (the backend's actions); empty: 204.
    replies: std::collections::VecDeque<String>,
}

/// A running upstream; dropping it stops it.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: Option<JoinHandle<()>>,
    tls: Option<RustlsConfig>,
}

/// A CA and a server certificate for 127.0.0.1 it signed, in PEM.
#[derive(Debug, Clone)]
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn new() -> anyhow::Result<TestPki> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "causely test upstream CA");
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, "upstream.test");
        let cert = params.signed_by(&key, &issuer)?;
        Ok(TestPki { ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

impl Upstream {
    pub async fn start() -> anyhow::Result<Upstream> {
        Upstream::start_with(None).await
    }

    /// An HTTPS upstream serving `pki`'s server certificate.
    pub async fn start_tls(pki: &TestPki) -> anyhow::Result<Upstream> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = RustlsConfig::from_pem(pki.cert_pem.clone().into_bytes(), pki.key_pem.clone().into_bytes())
            .await
            .context("loading the upstream's certificate")?;
        Upstream::start_with(Some(config)).await
    }

    async fn start_with(tls: Option<RustlsConfig>) -> anyhow::Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the upstream")?;
        let addr = listener.local_addr()?;
        let shared =
            Arc::new(Mutex::new(Shared { received: Vec::new(), mode: Some(Mode::Up), replies: Default::default() }));
        let mut upstream = Upstream { addr, shared, server: None, tls };
        upstream.serve(listener);
        Ok(upstream)
    }

    /// `http(s)://127.0.0.1:PORT/v1/batches`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/v1/batches", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new().route("/v1/batches", post(receive)).with_state(self.shared.clone());
        let tls = self.tls.clone();
        self.server = Some(tokio::spawn(async move {
            match tls {
                None => {
                    let _ = axum::serve(listener, app).await;
                }
                Some(config) => {
                    let Ok(listener) = listener.into_std() else { return };
                    if let Ok(server) = axum_server::tls_rustls::from_tcp_rustls(listener, config) {
                        let _ = server.serve(app.into_make_service()).await;
                    }
                }
            }
        }));
    }

    /// Switches the behaviour; `Down` closes the listener, leaving it re-binds the same port.
    pub async fn set_mode(&mut self, mode: Mode) -> anyhow::Result<()> {
        let was_down = self.server.is_none();
        if let Ok(mut shared) = self.shared.lock() {
            shared.mode = Some(mode);
        }
        match (mode, was_down) {
            (Mode::Down, false) => {
                if let Some(server) = self.server.take() {
                    server.abort();
                    let _ = server.await;
                }
            }
            (Mode::Down, true) => {}
            (_, true) => {
                let listener = bind_again(self.addr).await?;
                self.serve(listener);
            }
            (_, false) => {}
        }
        Ok(())
    }

    /// Acknowledges the next batch with `body` (200) instead of an empty 204: how the backend
    /// asks for remediation actions (`{"actions": [...]}`).
    pub fn reply_next(&self, body: impl Into<String>) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.replies.push_back(body.into());
        }
    }

    /// Everything acknowledged so far, in arrival order (duplicates included).
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().map(|s| s.received.clone()).unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn bind_again(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    // The aborted server's socket may take a moment to be released.
    for _ in 0..50 {
        if let Ok(listener) = TcpListener::bind(addr).await {
            return Ok(listener);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    TcpListener::bind(addr).await.with_context(|| format!("re-binding the upstream on {addr}"))
}

async fn receive(State(shared): State<Arc<Mutex<Shared>>>, headers: HeaderMap, body: Bytes) -> Response {
    let mode = shared.lock().ok().and_then(|s| s.mode).unwrap_or(Mode::Up);
    match mode {
        Mode::Failing => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
        Mode::Up | Mode::Down => {}
    }
    let Some(seq) = headers.get("x-causely-seq").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Ok(mut shared) = shared.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    shared.received.push(Received { seq, body: body.to_vec(), authorization });
    match shared.replies.pop_front() {
        Some(reply) => {
            (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, "application/json")], reply).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// The received batches after deduplication by seq (first copy wins), in seq order, checking that
/// every copy of a seq carried the same bytes.
pub fn deduplicated(received: &[Received]) -> anyhow::Result<Vec<Received>> {
    let mut by_seq: std::collections::BTreeMap<u64, Received> = std::collections::BTreeMap::new();
    for item in received {
        match by_seq.get(&item.seq) {
            Some(first) if first.body != item.body => anyhow::bail!("seq {} was delivered with two bodies", item.seq),
            Some(_) => {}
            None => {
                by_seq.insert(item.seq, item.clone());
            }
        }
    }
    Ok(by_seq.into_values().collect())
}
