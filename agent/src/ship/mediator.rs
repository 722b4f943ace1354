//! Sends the agent's reports to the mediator's intake, `POST {mediator}/v1/reports`.
//!
//! Protocol (docs/mediator.md): the body is one `AgentReport` as JSON, with
//! `authorization: Bearer <projected ServiceAccount token>`. The token file is read again at every
//! attempt because the kubelet rotates it. A 2xx accepts the report. A transport error, a timeout,
//! a 5xx, a 408 or a 429 is retried with exponential backoff and jitter, without limit. A 401 is
//! retried too (the token may have rotated between the read and the check), but only
//! `max_unauthorized` times in a row for one report. Any other 4xx means the mediator will never
//! take that report: it is logged, counted and dropped, so one bad report cannot stall the rest.
//!
//! Each attempt sends whatever is oldest in the queue at that moment, so while the mediator is
//! down the queue's bound (newest wins) decides what is sent once it is back, not the report that
//! happened to be in flight when it went away.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::Retryable;
use causely_model::report::AgentReport;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Client, StatusCode, Url};
use tokio::sync::Notify;

use super::queue::ReportQueue;
use super::{Backoff, http_client};

/// Where and how to report.
#[derive(Debug, Clone)]
pub struct MediatorConfig {
    /// The mediator's base address, e.g. `http://causely-mediator.causely:8080`.
    pub url: Url,
    /// The projected ServiceAccount token (audience [`causely_model::AGENT_TOKEN_AUDIENCE`]).
    pub token_file: PathBuf,
    /// Bound on one attempt, from connecting to the end of the answer.
    pub timeout: Duration,
    pub backoff: Backoff,
    /// Reports held while the mediator is unreachable.
    pub queue_capacity: usize,
    /// The seq of the first report.
    pub first_seq: u64,
    /// 401s in a row for one report before it is dropped.
    pub max_unauthorized: u32,
}

impl MediatorConfig {
    /// Defaults for everything but the address and the token file.
    pub fn new(url: Url, token_file: PathBuf) -> Self {
        MediatorConfig {
            url,
            token_file,
            timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            queue_capacity: 64,
            first_seq: 1,
            max_unauthorized: 3,
        }
    }
}

/// What the reporter has done so far, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediatorCounters {
    /// Reports waiting now (a gauge).
    pub queued_reports: u64,
    /// Reports the mediator accepted.
    pub sent_reports: u64,
    /// Attempts that did not deliver (each retry, and each final refusal).
    pub failed_attempts: u64,
    /// Reports the mediator refused for good (a 4xx, or 401s past the limit), dropped.
    pub refused_reports: u64,
    /// Symptom changes inside refused reports.
    pub refused_symptom_changes: u64,
    /// Reports dropped because the queue was full.
    pub dropped_reports: u64,
    /// Symptom changes inside reports dropped because the queue was full.
    pub dropped_symptom_changes: u64,
}

#[derive(Debug, Default)]
struct Stats {
    queued_reports: AtomicU64,
    sent_reports: AtomicU64,
    failed_attempts: AtomicU64,
    refused_reports: AtomicU64,
    refused_symptom_changes: AtomicU64,
    dropped_reports: AtomicU64,
    dropped_symptom_changes: AtomicU64,
}

impl Stats {
    fn snapshot(&self) -> MediatorCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MediatorCounters {
            queued_reports: get(&self.queued_reports),
            sent_reports: get(&self.sent_reports),
            failed_attempts: get(&self.failed_attempts),
            refused_reports: get(&self.refused_reports),
            refused_symptom_changes: get(&self.refused_symptom_changes),
            dropped_reports: get(&self.dropped_reports),
            dropped_symptom_changes: get(&self.dropped_symptom_changes),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MediatorError {
    #[error("mediator address {0} cannot take the intake path")]
    BadUrl(Url),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("the report queue lock is poisoned: a thread panicked while holding it")]
    QueuePoisoned,
}

/// Why one attempt did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("cannot read the token file {}: {source}", path.display())]
    TokenFile { path: PathBuf, source: std::io::Error },
    #[error("the token file {} is empty or not a valid header value", path.display())]
    BadToken { path: PathBuf },
    #[error("the mediator answered {status} to report {seq}")]
    Status { seq: u64, status: StatusCode },
    #[error("sending report {seq} failed: {source}")]
    Transport {
        seq: u64,
        #[source]
        source: reqwest::Error,
    },
}

impl AttemptError {
    /// Whether another attempt may succeed, not counting the limit on 401s.
    fn retryable(&self) -> bool {
        match self {
            AttemptError::Status { status, .. } => {
                status.is_server_error()
                    || matches!(
                        *status,
                        StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
                    )
            }
            _ => true,
        }
    }
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<ReportQueue>,
    wake: Notify,
    stats: Stats,
}

impl Shared {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ReportQueue>, MediatorError> {
        self.queue.lock().map_err(|_| MediatorError::QueuePoisoned)
    }
}

/// The detectors' end: queues reports, never waits on the network.
#[derive(Debug, Clone)]
pub struct ReportSender {
    shared: Arc<Shared>,
    _open: Arc<Closer>,
}

/// Wakes the shipper when the last [`ReportSender`] is dropped, so it can finish.
#[derive(Debug)]
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.wake.notify_one();
    }
}

impl ReportSender {
    /// Queues `report` under the next seq, dropping the oldest queued report if the queue is full,
    /// and returns the seq.
    pub fn push(&self, report: AgentReport) -> Result<u64, MediatorError> {
        let (seq, evicted, len) = {
            let mut queue = self.shared.lock()?;
            let (seq, evicted) = queue.push(report);
            (seq, evicted, queue.len())
        };
        let stats = &self.shared.stats;
        stats.queued_reports.store(len as u64, Ordering::Relaxed);
        if let Some(evicted) = evicted {
            stats.dropped_reports.fetch_add(1, Ordering::Relaxed);
            stats.dropped_symptom_changes.fetch_add(evicted.symptom_changes as u64, Ordering::Relaxed);
            if evicted.symptom_changes > 0 {
                tracing::error!(
                    seq = evicted.seq,
                    symptom_changes = evicted.symptom_changes,
                    "report queue full; dropped the oldest report and the symptom changes in it"
                );
            } else {
                tracing::warn!(seq = evicted.seq, "report queue full; dropped the oldest report");
            }
        }
        self.shared.wake.notify_one();
        Ok(seq)
    }

    pub fn counters(&self) -> MediatorCounters {
        self.shared.stats.snapshot()
    }

    /// A handle for `/metrics` that, unlike a sender, does not keep the shipper running.
    pub fn probe(&self) -> MediatorProbe {
        MediatorProbe(Arc::clone(&self.shared))
    }
}

/// Reads the reporter's counters.
#[derive(Debug, Clone)]
pub struct MediatorProbe(Arc<Shared>);

impl MediatorProbe {
    pub fn counters(&self) -> MediatorCounters {
        self.0.stats.snapshot()
    }
}

/// The sending task; run it with [`MediatorShipper::run`].
#[derive(Debug)]
pub struct MediatorShipper {
    config: MediatorConfig,
    intake_url: Url,
    client: Client,
    shared: Arc<Shared>,
    open: std::sync::Weak<Closer>,
}

/// Builds both ends of the path to the mediator.
pub fn mediator(config: MediatorConfig) -> Result<(ReportSender, MediatorShipper), MediatorError> {
    let intake_url = intake_url(&config.url)?;
    let client = http_client(config.timeout).map_err(MediatorError::Client)?;
    let shared = Arc::new(Shared {
        queue: Mutex::new(ReportQueue::new(config.queue_capacity, config.first_seq)),
        wake: Notify::new(),
        stats: Stats::default(),
    });
    let closer = Arc::new(Closer(Arc::clone(&shared)));
    let shipper =
        MediatorShipper { config, intake_url, client, shared: Arc::clone(&shared), open: Arc::downgrade(&closer) };
    Ok((ReportSender { shared, _open: closer }, shipper))
}

/// `{url}/v1/reports`, keeping any path prefix of `url`.
pub fn intake_url(url: &Url) -> Result<Url, MediatorError> {
    let base = format!("{}/", url.as_str().trim_end_matches('/'));
    Url::parse(&base)
        .and_then(|b| b.join("v1/reports"))
        .map_err(|_| MediatorError::BadUrl(url.clone()))
        .and_then(|u| if u.cannot_be_a_base() { Err(MediatorError::BadUrl(url.clone())) } else { Ok(u) })
}

/// Reads the bearer token; a missing, empty or unprintable token is an error of this attempt.
pub async fn bearer(path: &std::path::Path) -> Result<HeaderValue, AttemptError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| AttemptError::TokenFile { path: path.to_path_buf(), source })?;
    let token = text.trim();
    let bad = || AttemptError::BadToken { path: path.to_path_buf() };
    if token.is_empty() {
        return Err(bad());
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| bad())?;
    value.set_sensitive(true);
    Ok(value)
}

impl MediatorShipper {
    pub fn counters(&self) -> MediatorCounters {
        self.shared.stats.snapshot()
    }

    /// Sends queued reports, oldest first, until every [`ReportSender`] is dropped and the queue
    /// is empty. Fails only if the queue's lock is poisoned.
    pub async fn run(self) -> Result<(), MediatorError> {
        loop {
            // Registered before looking, so a report queued in between still wakes us.
            let notified = self.shared.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.lock()?.is_empty() {
                if self.open.strong_count() == 0 {
                    return Ok(());
                }
                notified.await;
                continue;
            }
            self.deliver_oldest().await?;
        }
    }

    /// Retries until the oldest report (whichever it is at each attempt) is delivered or refused.
    async fn deliver_oldest(&self) -> Result<(), MediatorError> {
        // 401s in a row, and for which report: a different report starts its own count.
        let unauthorized_seq = AtomicU64::new(0);
        let unauthorized = AtomicU32::new(0);
        let attempt = || async {
            let Some(report) = self.shared.lock()?.front().cloned() else {
                return Ok(None);
            };
            let result = self.send(&report).await;
            if result.is_err() {
                self.shared.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
            }
            result.map(|()| Some(report.seq)).map_err(Failure::Attempt)
        };
        let outcome = attempt
            .retry(self.config.backoff.builder())
            .when(|failure: &Failure| {
                let Failure::Attempt(error) = failure else { return false };
                if let AttemptError::Status { seq, status: StatusCode::UNAUTHORIZED } = error {
                    if unauthorized_seq.swap(*seq, Ordering::Relaxed) != *seq {
                        unauthorized.store(0, Ordering::Relaxed);
                    }
                    return unauthorized.fetch_add(1, Ordering::Relaxed) + 1 < self.config.max_unauthorized;
                }
                error.retryable()
            })
            .notify(|failure: &Failure, wait: Duration| {
                tracing::warn!(error = %failure, retry_in = ?wait, "reporting to the mediator failed");
            })
            .await;
        let stats = &self.shared.stats;
        match outcome {
            Ok(None) => {}
            Ok(Some(seq)) => {
                self.remove(seq)?;
                stats.sent_reports.fetch_add(1, Ordering::Relaxed);
            }
            Err(Failure::Queue(error)) => return Err(error),
            Err(Failure::Attempt(error)) => {
                let seq = match &error {
                    AttemptError::Status { seq, .. } | AttemptError::Transport { seq, .. } => Some(*seq),
                    // Token errors are always retried, so they do not end up here.
                    _ => None,
                };
                if let Some(report) = seq.map(|seq| self.remove(seq)).transpose()?.flatten() {
                    tracing::error!(%error, seq = report.seq, symptom_changes = report.symptoms.len(), "the mediator refused a report; dropped it");
                    stats.refused_reports.fetch_add(1, Ordering::Relaxed);
                    stats.refused_symptom_changes.fetch_add(report.symptoms.len() as u64, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }

    fn remove(&self, seq: u64) -> Result<Option<AgentReport>, MediatorError> {
        let mut queue = self.shared.lock()?;
        let removed = queue.remove(seq);
        self.shared.stats.queued_reports.store(queue.len() as u64, Ordering::Relaxed);
        Ok(removed)
    }

    /// One attempt to deliver `report`.
    async fn send(&self, report: &AgentReport) -> Result<(), AttemptError> {
        let token = bearer(&self.config.token_file).await?;
        let seq = report.seq;
        let response = self
            .client
            .post(self.intake_url.clone())
            .header(AUTHORIZATION, token)
            .json(report)
            .send()
            .await
            .map_err(|source| AttemptError::Transport { seq, source })?;
        let status = response.status();
        if status.is_success() { Ok(()) } else { Err(AttemptError::Status { seq, status }) }
    }
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Attempt(AttemptError),
    #[error(transparent)]
    Queue(#[from] MediatorError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intake_path_is_appended_to_the_base_address_keeping_a_prefix() {
        for (base, want) in [
            ("http://causely-mediator:8080", "http://causely-mediator:8080/v1/reports"),
            ("http://causely-mediator:8080/", "http://causely-mediator:8080/v1/reports"),
            ("https://proxy/mediator", "https://proxy/mediator/v1/reports"),
        ] {
            assert_eq!(intake_url(&base.parse().unwrap()).unwrap().as_str(), want, "{base}");
        }
        assert!(matches!(intake_url(&"mailto:x@example.com".parse().unwrap()), Err(MediatorError::BadUrl(_))));
    }

    #[test]
    fn transient_answers_are_retried_and_other_client_errors_are_final() {
        let status = |code: u16| AttemptError::Status { seq: 1, status: StatusCode::from_u16(code).unwrap() };
        for code in [500, 502, 503, 504, 401, 408, 429] {
            assert!(status(code).retryable(), "{code}");
        }
        for code in [400, 403, 404, 413, 415, 422] {
            assert!(!status(code).retryable(), "{code}");
        }
        assert!(AttemptError::BadToken { path: "t".into() }.retryable());
    }

    #[tokio::test]
    async fn the_token_is_read_fresh_and_must_be_a_non_empty_header_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert!(matches!(bearer(&path).await, Err(AttemptError::TokenFile { .. })));
        std::fs::write(&path, "first\n").unwrap();
        assert_eq!(bearer(&path).await.unwrap(), "Bearer first");
        std::fs::write(&path, "second").unwrap();
        assert_eq!(bearer(&path).await.unwrap(), "Bearer second");
        assert!(bearer(&path).await.unwrap().is_sensitive());
        for bad in [" \n", "a\rb"] {
            std::fs::write(&path, bad).unwrap();
            assert!(matches!(bearer(&path).await, Err(AttemptError::BadToken { .. })), "{bad:?}");
        }
    }
}
