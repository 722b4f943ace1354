//! How the plugin reaches the mediator's read API (docs/mediator.md): by default through the API
//! server's service proxy to the install's mediator Service, so kubeconfig access is all it takes
//! (as `kubectl get --raw` does); or straight to `--mediator-url` for a mediator reached directly.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::cli::{ClusterFlags, MediatorFlags};
use crate::exit::Failure;
use crate::render::ports::MEDIATOR_API;

/// The mediator Service's port name (see `render::service`).
const SERVICE_PORT_NAME: &str = "api";

/// The longest error body quoted in an error line.
const QUOTED_BODY_CHARS: usize = 200;

/// Why a request to the mediator gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer at all (connection refused, timeout, TLS).
    #[error("cannot reach the mediator {via}: {detail}")]
    Unreachable { via: String, detail: String },
    /// An HTTP answer other than 2xx (from the mediator, or from the API server's proxy).
    #[error("the mediator {via} answered {status} to {method} {path}: {detail}")]
    Status { via: String, method: &'static str, path: String, status: u16, detail: String },
    /// A 2xx answer that is not what the path promises.
    #[error("the mediator {via} answered {method} {path} with something unexpected: {detail}")]
    Decode { via: String, method: &'static str, path: String, detail: String },
}

impl ApiError {
    /// The HTTP status, when the error is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Failure::CouldNotRun(err.to_string())
    }
}

/// A stream of response body chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ApiError>> + Send>>;

/// One server-sent event: its name and its data lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// A stream of server-sent events; ends when the connection does.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<SseEvent, ApiError>> + Send>>;

#[derive(Clone)]
enum Route {
    Direct { base: String, http: reqwest::Client },
    Proxy { client: kube::Client, prefix: String },
}

/// A handle on one mediator's read API.
#[derive(Clone)]
pub struct MediatorApi {
    route: Route,
    via: String,
    timeout: Duration,
}

impl std::fmt::Debug for MediatorApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediatorApi").field("via", &self.via).finish()
    }
}

/// Checks a `--mediator-url` and returns it without a trailing slash.
pub fn parse_mediator_url(url: &str) -> Result<String, Failure> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| Failure::Usage(format!("--mediator-url {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Failure::Usage(format!("--mediator-url {url:?} must be an http:// or https:// URL with a host")));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Failure::Usage(format!("--mediator-url {url:?} must not carry a query or fragment")));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The API server path that proxies to the mediator Service of the install in `namespace`.
pub fn proxy_prefix(namespace: &str) -> String {
    let service = crate::render::meta::name(crate::baseline::Component::Mediator);
    format!("/api/v1/namespaces/{namespace}/services/{service}:{SERVICE_PORT_NAME}/proxy")
}

/// The most useful one-line part of an error body: a Kubernetes `Status`'s message, else the
/// start of the text.
fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Status {
        message: String,
    }
    /// The mediator's own refusals: `{"error": "...", "reason": "..."}`.
    #[derive(serde::Deserialize)]
    struct Refusal {
        reason: String,
    }
    if let Ok(status) = serde_json::from_slice::<Status>(body) {
        return crate::exit::one_line(&status.message);
    }
    if let Ok(refusal) = serde_json::from_slice::<Refusal>(body) {
        return crate::exit::one_line(&refusal.reason);
    }
    let text = crate::exit::one_line(&String::from_utf8_lossy(body));
    if text.is_empty() {
        return "(no body)".to_owned();
    }
    match text.char_indices().nth(QUOTED_BODY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

impl MediatorApi {
    /// A handle for `--mediator-url` when given, else for the service proxy of the install in
    /// `namespace` of the cluster the flags select. Nothing is contacted yet.
    pub async fn connect(mediator_url: Option<&str>, namespace: &str, cluster: &ClusterFlags) -> Result<Self, Failure> {
        let timeout = cluster.request_timeout;
        if let Some(url) = mediator_url {
            let base = parse_mediator_url(url)?;
            let _ = rustls::crypto::ring::default_provider().install_default();
            let http = reqwest::Client::builder()
                .connect_timeout(timeout)
                .build()
                .map_err(|e| Failure::CouldNotRun(format!("cannot build an HTTP client: {e}")))?;
            return Ok(MediatorApi { via: format!("at {base}"), route: Route::Direct { base, http }, timeout });
        }
        let mut config = crate::kubeconfig::load_config(cluster).await?;
        // The change stream stays open for as long as it is read: only single requests get a deadline.
        config.read_timeout = None;
        let client = kube::Client::try_from(config.clone())
            .map_err(|e| Failure::CouldNotRun(format!("cannot build a client for {}: {e}", config.cluster_url)))?;
        let prefix = proxy_prefix(namespace);
        let via = format!("through the API server's proxy to service {namespace}/causely-mediator:{MEDIATOR_API}");
        Ok(MediatorApi { route: Route::Proxy { client, prefix }, via, timeout })
    }

    /// A handle for the flags of a command (`--mediator-url`, `-n`, the cluster flags).
    pub async fn from_flags(
        mediator: &MediatorFlags,
        namespace: &str,
        cluster: &ClusterFlags,
    ) -> Result<Self, Failure> {
        Self::connect(mediator.mediator_url.as_deref(), namespace, cluster).await
    }

    /// How the mediator is reached, for messages ("at URL", "through the API server's proxy …").
    pub fn via(&self) -> &str {
        &self.via
    }

    fn unreachable(&self, detail: impl std::fmt::Display) -> ApiError {
        ApiError::Unreachable { via: self.via.clone(), detail: crate::exit::one_line(&detail.to_string()) }
    }

    fn status_error(&self, path: &str, status: u16, body: &[u8]) -> ApiError {
        self.status_error_of("GET", path, status, body)
    }

    fn status_error_of(&self, method: &'static str, path: &str, status: u16, body: &[u8]) -> ApiError {
        ApiError::Status { via: self.via.clone(), method, path: path.to_owned(), status, detail: error_detail(body) }
    }

    /// Sends `GET path` (path and query, starting with `/`) and returns the status and a body stream.
    async fn open(&self, path: &str) -> Result<(u16, ByteStream), ApiError> {
        match &self.route {
            Route::Direct { base, http } => {
                let response = http
                    .get(format!("{base}{path}"))
                    .send()
                    .await
                    .map_err(|e| self.unreachable(causely_runtime::with_causes(&e)))?;
                let status = response.status().as_u16();
                let via = self.via.clone();
                let stream = response.bytes_stream().map_err(move |e| ApiError::Unreachable {
                    via: via.clone(),
                    detail: crate::exit::one_line(&causely_runtime::with_causes(&e)),
                });
                Ok((status, Box::pin(stream)))
            }
            Route::Proxy { client, prefix } => {
                let request = http::Request::get(format!("{prefix}{path}"))
                    .body(kube::client::Body::empty())
                    .map_err(|e| self.unreachable(e))?;
                let response = client.send(request).await.map_err(|e| self.unreachable(e))?;
                let status = response.status().as_u16();
                let via = self.via.clone();
                let stream = response.into_body().into_data_stream().map_err(move |e| ApiError::Unreachable {
                    via: via.clone(),
                    detail: crate::exit::one_line(&e.to_string()),
                });
                Ok((status, Box::pin(stream)))
            }
        }
    }

    /// The exact bytes of a 2xx answer to `GET path`, within the request timeout.
    pub async fn get(&self, path: &str) -> Result<Vec<u8>, ApiError> {
        let whole = async {
            let (status, mut body) = self.open(path).await?;
            let mut bytes = Vec::new();
            while let Some(chunk) = body.next().await {
                bytes.extend_from_slice(&chunk?);
            }
            if !(200..300).contains(&status) {
                return Err(self.status_error(path, status, &bytes));
            }
            Ok(bytes)
        };
        tokio::time::timeout(self.timeout, whole)
            .await
            .unwrap_or_else(|_| Err(self.unreachable(format!("no answer to GET {path} within {:?}", self.timeout))))
    }

    /// A 2xx JSON answer to `GET path`, decoded.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let bytes = self.get(path).await?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode {
            via: self.via.clone(),
            method: "GET",
            path: path.to_owned(),
            detail: e.to_string(),
        })
    }

    /// `POST path` with a JSON body; a 2xx JSON answer, decoded. Through the service proxy the
    /// caller needs `create` on `services/proxy` of the mediator Service.
    pub async fn post_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let payload = serde_json::to_vec(body).map_err(|e| self.unreachable(e))?;
        let whole = async {
            let (status, bytes) = match &self.route {
                Route::Direct { base, http } => {
                    let response = http
                        .post(format!("{base}{path}"))
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(payload)
                        .send()
                        .await
                        .map_err(|e| self.unreachable(causely_runtime::with_causes(&e)))?;
                    let status = response.status().as_u16();
                    let bytes =
                        response.bytes().await.map_err(|e| self.unreachable(causely_runtime::with_causes(&e)))?;
                    (status, bytes.to_vec())
                }
                Route::Proxy { client, prefix } => {
                    let request = http::Request::post(format!("{prefix}{path}"))
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(kube::client::Body::from(payload))
                        .map_err(|e| self.unreachable(e))?;
                    let response = client.send(request).await.map_err(|e| self.unreachable(e))?;
                    let status = response.status().as_u16();
                    let bytes = response.into_body().collect().await.map_err(|e| self.unreachable(e))?.to_bytes();
                    (status, bytes.to_vec())
                }
            };
            if !(200..300).contains(&status) {
                return Err(self.status_error_of("POST", path, status, &bytes));
            }
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode {
                via: self.via.clone(),
                method: "POST",
                path: path.to_owned(),
                detail: e.to_string(),
            })
        };
        tokio::time::timeout(self.timeout, whole)
            .await
            .unwrap_or_else(|_| Err(self.unreachable(format!("no answer to POST {path} within {:?}", self.timeout))))
    }

    /// The server-sent events of `GET path` (the change stream, `/v1/stream`). Opening it has the
    /// request timeout; the events then come for as long as the connection lasts.
    pub async fn events(&self, path: &str) -> Result<EventStream, ApiError> {
        let opened = tokio::time::timeout(self.timeout, self.open(path))
            .await
            .unwrap_or_else(|_| Err(self.unreachable(format!("no answer to GET {path} within {:?}", self.timeout))))?;
        let (status, mut body) = opened;
        if !(200..300).contains(&status) {
            let mut bytes = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > 4096 {
                    break;
                }
            }
            return Err(self.status_error(path, status, &bytes));
        }
        let via = self.via.clone();
        let events = eventsource_stream::EventStream::new(body).map(move |item| match item {
            Ok(event) => Ok(SseEvent { event: event.event, data: event.data }),
            Err(eventsource_stream::EventStreamError::Transport(e)) => Err(e),
            Err(e) => Err(ApiError::Unreachable { via: via.clone(), detail: crate::exit::one_line(&e.to_string()) }),
        });
        Ok(Box::pin(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mediator_urls_must_be_http_with_a_host_and_lose_a_trailing_slash() {
        assert_eq!(parse_mediator_url("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(parse_mediator_url("https://m.example/base").unwrap(), "https://m.example/base");
        assert!(matches!(parse_mediator_url("ftp://m.example"), Err(Failure::Usage(_))));
        assert!(matches!(parse_mediator_url("127.0.0.1:8080"), Err(Failure::Usage(_))));
        assert!(matches!(parse_mediator_url("http://m/?a=b"), Err(Failure::Usage(_))));
    }

    #[test]
    fn the_proxy_path_names_the_installs_mediator_service_and_port() {
        assert_eq!(proxy_prefix("causely"), "/api/v1/namespaces/causely/services/causely-mediator:api/proxy");
    }

    #[test]
    fn error_bodies_become_one_short_line_preferring_a_kubernetes_status_message() {
        let status = br#"{"kind":"Status","message":"no endpoints available for service \"causely-mediator\""}"#;
        assert_eq!(error_detail(status), "no endpoints available for service \"causely-mediator\"");
        assert_eq!(error_detail(b"not\nfound\n"), "not found");
        let refusal = br#"{"error":"duplicate","reason":"action id a was already submitted"}"#;
        assert_eq!(error_detail(refusal), "action id a was already submitted");
        assert_eq!(error_detail(b""), "(no body)");
        let long = "x".repeat(1000);
        assert_eq!(error_detail(long.as_bytes()).chars().count(), QUOTED_BODY_CHARS + 1);
    }
}
