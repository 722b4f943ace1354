//! A stand-in for a node's kubelet metrics endpoints (`/metrics`, `/metrics/cadvisor`): HTTPS
//! with a certificate from a throwaway CA, a bearer-token check, and fixed exposition text.
//!
//! It stands in because no kubelet runs on this machine: kwok's nodes have none, and a real
//! kubelet needs a container runtime, which this machine lacks. The text it serves is in the
//! shape a kubelet with containerd writes (`agent/src/kubelet/fixtures`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::RustlsConfig;

use crate::upstream::TestPki;

/// One request the stand-in answered: its path and `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
}

#[derive(Debug)]
struct Shared {
    token: String,
    metrics: String,
    cadvisor: String,
    seen: Vec<Seen>,
}

/// A running stand-in; dropping it stops it.
#[derive(Debug)]
pub struct KubeletDouble {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl KubeletDouble {
    /// Serves `metrics` and `cadvisor` to requests bearing `token`, over TLS with `pki`'s certificate.
    pub async fn start(pki: &TestPki, token: &str, metrics: String, cadvisor: String) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = RustlsConfig::from_pem(pki.cert_pem.clone().into_bytes(), pki.key_pem.clone().into_bytes())
            .await
            .context("loading the kubelet stand-in's certificate")?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding the kubelet stand-in")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared { token: token.to_owned(), metrics, cadvisor, seen: Vec::new() }));
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let server = axum_server::tls_rustls::from_tcp_rustls(listener, config).context("serving TLS")?;
        let server = tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        Ok(KubeletDouble { addr, shared, server })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Every request answered so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().map(|s| s.seen.clone()).unwrap_or_default()
    }
}

impl Drop for KubeletDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(State(shared): State<Arc<Mutex<Shared>>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let authorization = request.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Ok(mut shared) = shared.lock() else { return StatusCode::INTERNAL_SERVER_ERROR.into_response() };
    shared.seen.push(Seen { path: path.clone(), authorization: authorization.clone() });
    if authorization.as_deref() != Some(format!("Bearer {}", shared.token).as_str()) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    match path.as_str() {
        "/metrics" => shared.metrics.clone().into_response(),
        "/metrics/cadvisor" => shared.cadvisor.clone().into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
