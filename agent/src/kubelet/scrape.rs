//! Reads the kubelet's metrics endpoints over HTTPS with a bearer token, the way Prometheus and
//! metrics-server do, and hands the samples to the VictoriaMetrics shipper and the names to the
//! round loop. An unreachable, refusing or nonsense-answering kubelet is counted and retried on
//! the next tick; it never stops the agent.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use causely_model::UnixMillis;
use causely_model::api::NodePods;
use reqwest::Url;
use tokio::sync::watch;

use super::{Endpoint, pods, samples};
use crate::ship::victoria::SampleSender;

/// How to reach this node's kubelet.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// e.g. `https://10.0.0.7:10250`.
    pub url: Url,
    /// The ServiceAccount token the kubelet authorizes (`nodes/metrics`); re-read every scrape.
    pub token_file: Option<PathBuf>,
    /// CA bundle that signed the kubelet's serving certificate.
    pub ca_file: Option<PathBuf>,
    /// Accept any serving certificate (kubelets often serve a self-signed one).
    pub insecure_skip_tls_verify: bool,
    pub interval: Duration,
    pub timeout: Duration,
    /// Largest answer read; a kubelet answering more is counted as an error.
    pub max_bytes: usize,
}

/// Why one scrape gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("reading the CA bundle {path}: {source}")]
    Ca { path: PathBuf, source: std::io::Error },
    #[error("the CA bundle {0} holds no usable certificate")]
    BadCa(PathBuf),
    #[error("building the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("reading the token {path}: {source}")]
    Token { path: PathBuf, source: std::io::Error },
    #[error("GET {url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("GET {url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url} answered more than {max} bytes")]
    TooLarge { url: String, max: usize },
    #[error("GET {url} answered text that is not UTF-8")]
    NotText { url: String },
}

/// Scrape counts per endpoint, for the agent's `/metrics`.
#[derive(Debug, Default)]
pub struct KubeletStats {
    pub ok: [AtomicU64; 2],
    pub failed: [AtomicU64; 2],
    pub samples: [AtomicU64; 2],
    /// Pods cAdvisor named at the last good scrape.
    pub pods_named: AtomicU64,
}

impl KubeletStats {
    pub fn index(endpoint: Endpoint) -> usize {
        match endpoint {
            Endpoint::Metrics => 0,
            Endpoint::Cadvisor => 1,
        }
    }
}

/// A client for one kubelet.
#[derive(Debug, Clone)]
pub struct Kubelet {
    http: reqwest::Client,
    config: KubeletConfig,
}

impl Kubelet {
    pub fn new(config: KubeletConfig) -> Result<Self, ScrapeError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .tls_backend_rustls()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|source| ScrapeError::Ca { path: path.clone(), source })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| ScrapeError::BadCa(path.clone()))?;
            if certs.is_empty() {
                return Err(ScrapeError::BadCa(path.clone()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if config.insecure_skip_tls_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        Ok(Kubelet { http: builder.build().map_err(ScrapeError::Client)?, config })
    }

    /// The text of one endpoint.
    pub async fn fetch(&self, endpoint: Endpoint) -> Result<String, ScrapeError> {
        let url = self
            .config
            .url
            .join(endpoint.path())
            .map_err(|e| ScrapeError::Transport { url: self.config.url.to_string(), detail: e.to_string() })?;
        let shown = url.to_string();
        let transport =
            |e: reqwest::Error| ScrapeError::Transport { url: shown.clone(), detail: causely_runtime::with_causes(&e) };
        let mut request = self.http.get(url.clone());
        if let Some(path) = &self.config.token_file {
            let token = tokio::fs::read_to_string(path)
                .await
                .map_err(|source| ScrapeError::Token { path: path.clone(), source })?;
            request = request.bearer_auth(token.trim());
        }
        let mut response = request.send().await.map_err(transport)?;
        if !response.status().is_success() {
            return Err(ScrapeError::Status { url: shown, status: response.status().as_u16() });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > self.config.max_bytes {
                return Err(ScrapeError::TooLarge { url: shown, max: self.config.max_bytes });
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| ScrapeError::NotText { url: shown })
    }
}

/// Scrapes both endpoints every `interval` until the agent stops: samples to `sink`, the pods
/// cAdvisor names to `names`.
pub async fn run(
    kubelet: Kubelet,
    node: String,
    sink: SampleSender,
    names: watch::Sender<NodePods>,
    stats: Arc<KubeletStats>,
) {
    let mut ticker = tokio::time::interval(kubelet.config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // One warning per change of state, not one per failed tick.
    let mut failing = [false; 2];
    loop {
        ticker.tick().await;
        for endpoint in Endpoint::ALL {
            let i = KubeletStats::index(endpoint);
            match kubelet.fetch(endpoint).await {
                Ok(text) => {
                    if std::mem::take(&mut failing[i]) {
                        tracing::info!(endpoint = endpoint.path(), "the kubelet answers again");
                    }
                    stats.ok[i].fetch_add(1, Ordering::Relaxed);
                    let parsed = samples(&text, &node, UnixMillis::now().0);
                    if endpoint == Endpoint::Cadvisor {
                        let named = pods(&parsed);
                        stats.pods_named.store(named.pods.len() as u64, Ordering::Relaxed);
                        names.send_replace(named);
                    }
                    stats.samples[i].fetch_add(parsed.len() as u64, Ordering::Relaxed);
                    for sample in parsed {
                        sink.push(sample);
                    }
                }
                Err(err) => {
                    stats.failed[i].fetch_add(1, Ordering::Relaxed);
                    if !std::mem::replace(&mut failing[i], true) {
                        tracing::warn!(error = %err, "the kubelet's metrics cannot be read");
                    }
                }
            }
        }
    }
}
