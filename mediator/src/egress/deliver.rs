//! Delivery of accepted batches to the upstream over HTTPS, strictly in seq order, each until
//! acknowledged.
//!
//! Protocol: `POST <url>` with the batch's exact stored bytes as the body and the headers
//! `content-type: application/json`, `x-causely-cluster-id`, `x-causely-seq` and, when a token
//! file is configured, `authorization: Bearer <token>`, read again at every attempt because tokens
//! rotate. A 2xx answer acknowledges the batch. Anything else, a transport error or a timeout is
//! retried with exponential backoff and jitter, without limit: a batch may therefore arrive more
//! than once, and the upstream deduplicates by seq. Redirects are not followed, so the body only
//! ever goes to the configured address.
//!
//! The 2xx answer is also the upstream's one way back: its body, when not empty, is an
//! `ActionList` (`{"actions": [...]}`), remediation actions the backend asks for. They are handed
//! on for the action queue, which checks each as it checks the CLI's. An answer that cannot be read
//! still acknowledges the batch; it is logged and counted, never retried.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::Retryable;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Certificate, Client, Url};
use tokio::sync::{Notify, watch};

use causely_model::Action;
use causely_model::api::ActionList;
use tokio::sync::mpsc;

use super::store::{EgressStore, StoreError};

/// Largest reply body read from the upstream.
const MAX_REPLY_BYTES: usize = 1 << 20;

/// What the upstream's acknowledgement carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// No body: nothing asked.
    Empty,
    /// Actions the backend asks for.
    Actions(Vec<Action>),
    /// A body that is not an `ActionList` (or too large); the reason.
    Unreadable(String),
}

/// Reads a reply body as the upstream's actions.
pub fn parse_reply(body: &[u8]) -> Reply {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Reply::Empty;
    }
    match serde_json::from_slice::<ActionList>(body) {
        Ok(list) if list.actions.is_empty() => Reply::Empty,
        Ok(list) => Reply::Actions(list.actions),
        Err(err) => Reply::Unreadable(err.to_string()),
    }
}

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `https://...`; plain `http://` only to a loopback address (for tests).
    pub url: Url,
    pub cluster_id: String,
    /// PEM bundle of extra CA certificates trusted besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// File holding the bearer token; read at each attempt.
    pub token_file: Option<PathBuf>,
    /// Bound on one attempt, from connecting to the end of the answer.
    pub timeout: Duration,
    pub backoff: Backoff,
}

/// The retry schedule, shared with the agent's shippers.
pub use causely_runtime::Backoff;

/// What delivery has done so far, for metrics and the read API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStatus {
    pub delivered: u64,
    pub failed_attempts: u64,
    pub last_delivered_seq: Option<u64>,
    pub last_error: Option<String>,
    /// Acknowledgements whose body could not be read as actions.
    pub unreadable_replies: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("upstream {0} uses plain http to a host that is not loopback; use https")]
    InsecureUrl(Url),
    #[error("upstream {0} is neither https nor http")]
    UnsupportedScheme(Url),
    #[error("cannot read the upstream CA file {}: {source}", path.display())]
    CaFile { path: PathBuf, source: std::io::Error },
    #[error("the upstream CA file {} holds no usable PEM certificate{}", path.display(), detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    BadCa { path: PathBuf, detail: Option<String> },
    #[error("cannot build the HTTPS client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot read the upstream token file {}: {source}", path.display())]
    TokenFile { path: PathBuf, source: std::io::Error },
    #[error("the upstream token file {} is empty or not a valid header value", path.display())]
    BadToken { path: PathBuf },
    #[error("upstream answered {status} to seq {seq}")]
    Status { seq: u64, status: reqwest::StatusCode },
    #[error("sending seq {seq} failed: {source}")]
    Transport {
        seq: u64,
        #[source]
        source: reqwest::Error,
    },
    #[error("egress store: {0}")]
    Store(#[from] StoreError),
    #[error("the egress store lock is poisoned: a thread panicked while holding it")]
    StorePoisoned,
    #[error("a store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Refuses plain http anywhere but loopback, so batches cannot leave unencrypted by mistake.
pub fn check_url(url: &Url) -> Result<(), DeliverError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback { Ok(()) } else { Err(DeliverError::InsecureUrl(url.clone())) }
        }
        _ => Err(DeliverError::UnsupportedScheme(url.clone())),
    }
}

/// Builds the client for `upstream`: rustls with the system roots plus the CA file, if any.
pub fn client(upstream: &Upstream) -> Result<Client, DeliverError> {
    check_url(&upstream.url)?;
    // reqwest is built without a provider; an error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = Client::builder()
        .tls_backend_rustls()
        .timeout(upstream.timeout)
        .connect_timeout(upstream.timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &upstream.ca_file {
        let pem = std::fs::read(path).map_err(|source| DeliverError::CaFile { path: path.clone(), source })?;
        let certs = Certificate::from_pem_bundle(&pem)
            .map_err(|e| DeliverError::BadCa { path: path.clone(), detail: Some(e.to_string()) })?;
        if certs.is_empty() {
            return Err(DeliverError::BadCa { path: path.clone(), detail: None });
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(DeliverError::Client)
}

async fn bearer(upstream: &Upstream) -> Result<Option<HeaderValue>, DeliverError> {
    let Some(path) = &upstream.token_file else {
        return Ok(None);
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| DeliverError::TokenFile { path: path.clone(), source })?;
    let token = text.trim();
    let bad = || DeliverError::BadToken { path: path.clone() };
    if token.is_empty() {
        return Err(bad());
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| bad())?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// One attempt to deliver `seq`; on acknowledgement, what the upstream's reply carried.
pub async fn send(client: &Client, upstream: &Upstream, seq: u64, body: &[u8]) -> Result<Reply, DeliverError> {
    let mut request = client
        .post(upstream.url.clone())
        .header(CONTENT_TYPE, "application/json")
        .header("x-causely-cluster-id", upstream.cluster_id.as_str())
        .header("x-causely-seq", seq.to_string())
        .body(body.to_vec());
    if let Some(token) = bearer(upstream).await? {
        request = request.header(AUTHORIZATION, token);
    }
    let mut response = request.send().await.map_err(|source| DeliverError::Transport { seq, source })?;
    let status = response.status();
    if !status.is_success() {
        return Err(DeliverError::Status { seq, status });
    }
    let mut reply = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if reply.len() + chunk.len() > MAX_REPLY_BYTES => {
                return Ok(Reply::Unreadable(format!("a reply larger than {MAX_REPLY_BYTES} bytes")));
            }
            Ok(Some(chunk)) => reply.extend_from_slice(&chunk),
            Ok(None) => return Ok(parse_reply(&reply)),
            // The status already acknowledged the batch; only the reply is lost.
            Err(err) => return Ok(Reply::Unreadable(format!("reading the reply: {err}"))),
        }
    }
}

/// Runs `f` on the store in a blocking thread, holding the lock only for that call.
async fn with_store<T: Send + 'static>(
    store: &Arc<Mutex<EgressStore>>,
    f: impl FnOnce(&mut EgressStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, DeliverError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || {
        let mut guard = store.lock().map_err(|_| DeliverError::StorePoisoned)?;
        f(&mut guard).map_err(DeliverError::from)
    })
    .await?
}

/// Delivers pending batches forever, oldest first, waiting on `wake` when there are none (call
/// `wake.notify_one()` after accepting a batch). Returns only when the client cannot be built
/// or the store fails; attempts that fail are retried and reported through `status`. Actions the
/// upstream's replies carry go to `actions`.
pub async fn run(
    store: Arc<Mutex<EgressStore>>,
    upstream: Upstream,
    wake: Arc<Notify>,
    status: watch::Sender<DeliveryStatus>,
    actions: mpsc::Sender<Vec<Action>>,
) -> Result<(), DeliverError> {
    let client = client(&upstream)?;
    loop {
        // Registered before looking, so a batch accepted in between still wakes us.
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some((seq, body)) = with_store(&store, EgressStore::next_pending).await? else {
            notified.await;
            continue;
        };
        let attempt = || send(&client, &upstream, seq, &body);
        let delivered = attempt
            .retry(upstream.backoff.builder())
            .notify(|error: &DeliverError, wait: Duration| {
                tracing::warn!(seq, %error, retry_in = ?wait, "egress delivery failed");
                status.send_modify(|s| {
                    s.failed_attempts += 1;
                    s.last_error = Some(error.to_string());
                });
            })
            .await;
        let reply = match delivered {
            Ok(reply) => reply,
            Err(error) => {
                // Attempts are unbounded, so this is not expected; the batch is still pending.
                tracing::error!(seq, %error, "egress delivery gave up; starting over");
                continue;
            }
        };
        with_store(&store, move |s| s.mark_delivered(seq)).await?;
        match reply {
            Reply::Empty => {}
            Reply::Actions(asked) => {
                tracing::info!(seq, actions = asked.len(), "the upstream's reply asks for actions");
                // Only if the mediator is shutting down is there no one to take them.
                let _ = actions.send(asked).await;
            }
            Reply::Unreadable(reason) => {
                tracing::warn!(seq, reason, "the upstream's reply is not a list of actions; ignored");
                status.send_modify(|s| s.unreadable_replies += 1);
            }
        }
        status.send_modify(|s| {
            s.delivered += 1;
            s.last_delivered_seq = Some(seq);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str) -> Upstream {
        Upstream {
            url: url.parse().unwrap(),
            cluster_id: "prod-eu-1".into(),
            ca_file: None,
            token_file: None,
            timeout: Duration::from_secs(1),
            backoff: Backoff::default(),
        }
    }

    #[test]
    fn a_reply_is_nothing_a_list_of_actions_or_unreadable() {
        assert_eq!(parse_reply(b""), Reply::Empty);
        assert_eq!(parse_reply(b" \n"), Reply::Empty);
        assert_eq!(parse_reply(br#"{"actions":[]}"#), Reply::Empty);
        let one = br#"{"actions":[{"id":"a-1","kind":{"type":"cordon"},"target":"node/n1","reason":"disk",
            "requester":"backend","expires":99}]}"#;
        let Reply::Actions(actions) = parse_reply(one) else { panic!("{:?}", parse_reply(one)) };
        assert_eq!((actions.len(), actions[0].id.0.as_str()), (1, "a-1"));
        assert!(matches!(parse_reply(b"ok"), Reply::Unreadable(_)));
        assert!(matches!(parse_reply(br#"{"actions":[],"extra":1}"#), Reply::Unreadable(_)), "unknown keys refused");
    }

    #[test]
    fn plain_http_is_allowed_only_to_loopback() {
        for ok in
            ["https://causely.example/v1/egress", "http://127.0.0.1:8080/x", "http://[::1]:1/", "http://localhost/"]
        {
            assert!(check_url(&ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for bad in ["http://causely.example/", "http://10.0.0.1/", "http://127.0.0.1.example/"] {
            let err = check_url(&bad.parse().unwrap()).unwrap_err();
            assert!(matches!(err, DeliverError::InsecureUrl(_)), "{bad}");
            assert!(err.to_string().contains("use https"), "{err}");
        }
        assert!(matches!(check_url(&"ftp://127.0.0.1/".parse().unwrap()), Err(DeliverError::UnsupportedScheme(_))));
        assert!(matches!(client(&upstream("http://causely.example/")), Err(DeliverError::InsecureUrl(_))));
    }

    #[test]
    fn a_missing_or_empty_ca_file_stops_the_client_from_being_built() {
        let dir = tempfile::tempdir().unwrap();
        let mut up = upstream("https://causely.example/");
        up.ca_file = Some(dir.path().join("absent.pem"));
        assert!(matches!(client(&up), Err(DeliverError::CaFile { .. })));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        up.ca_file = Some(empty);
        assert!(matches!(client(&up), Err(DeliverError::BadCa { .. })));
        up.ca_file = None;
        assert!(client(&up).is_ok());
    }

    #[test]
    fn a_pem_ca_file_is_added_to_the_trusted_roots() {
        let mut up = upstream("https://causely.example/");
        // A self-signed CA certificate made for this test; its key was discarded.
        up.ca_file = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/src/egress/testdata/upstream-ca.pem").into());
        assert!(client(&up).is_ok());
    }

    #[tokio::test]
    async fn the_token_is_read_at_each_attempt_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let mut up = upstream("https://causely.example/");
        assert_eq!(bearer(&up).await.unwrap(), None);
        up.token_file = Some(path.clone());
        assert!(matches!(bearer(&up).await, Err(DeliverError::TokenFile { .. })));
        std::fs::write(&path, "first\n").unwrap();
        assert_eq!(bearer(&up).await.unwrap().unwrap(), "Bearer first");
        std::fs::write(&path, "second").unwrap();
        assert_eq!(bearer(&up).await.unwrap().unwrap(), "Bearer second");
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(bearer(&up).await, Err(DeliverError::BadToken { .. })));
        std::fs::write(&path, "a\rb").unwrap();
        assert!(matches!(bearer(&up).await, Err(DeliverError::BadToken { .. })));
    }

    #[test]
    fn backoff_delays_stay_between_the_minimum_and_the_maximum() {
        let backoff = Backoff { min: Duration::from_millis(200), max: Duration::from_secs(30) };
        let delays: Vec<Duration> = backon::BackoffBuilder::build(backoff.builder()).take(40).collect();
        assert_eq!(delays.len(), 40, "attempts are unbounded");
        assert!(delays.iter().all(|d| *d >= backoff.min && *d <= backoff.max), "{delays:?}");
        assert!(delays[0] < Duration::from_millis(400) && delays[39] >= Duration::from_secs(15), "{delays:?}");
    }
}
