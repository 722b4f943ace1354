//! Ships raw samples to VictoriaMetrics, the only place they go, through a bounded on-disk spool
//! while VictoriaMetrics is unreachable.
//!
//! Protocol: `POST {url}/api/v1/import/prometheus` with a batch as Prometheus exposition text with
//! millisecond timestamps (see [`super::prom`]). A 2xx stores the batch. A transport error, a
//! timeout, a 5xx or a 429 means "not now": the batch goes to the spool and is replayed later,
//! oldest segment first, with exponential backoff and jitter between attempts. Any other 4xx
//! means VictoriaMetrics will never take that body, so it is dropped and counted instead of being
//! retried forever.
//!
//! Collectors hand samples over with [`SampleSender::push`], which never waits: a bounded channel
//! sits between them and this one task, so a VictoriaMetrics that answers 500 or hangs delays only
//! this task, never collection. While the spool holds anything, new batches are appended behind
//! it rather than sent directly, so VictoriaMetrics receives batches in the order they were made.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, StatusCode, Url};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::spool::{Spool, SpoolError};
use super::{Backoff, Sample, http_client, prom};

/// Where and how to ship.
#[derive(Debug, Clone)]
pub struct VictoriaConfig {
    /// VictoriaMetrics' base address, e.g. `http://victoria-metrics.causely:8428`.
    pub url: Url,
    /// The spool directory, inside the agent's state dir.
    pub spool_dir: PathBuf,
    /// Bound on the bytes of all spooled segments.
    pub max_spool_bytes: u64,
    /// Samples the channel from the collectors holds; sized to cover one attempt's timeout.
    pub channel_capacity: usize,
    /// A batch is sent when it has this many samples...
    pub batch_max_samples: usize,
    /// ...or this long after its first sample arrived.
    pub flush_interval: Duration,
    /// Bound on one attempt, from connecting to the end of the answer.
    pub timeout: Duration,
    pub backoff: Backoff,
}

impl VictoriaConfig {
    /// Defaults for everything but the address and the spool directory.
    pub fn new(url: Url, spool_dir: PathBuf) -> Self {
        VictoriaConfig {
            url,
            spool_dir,
            max_spool_bytes: 256 << 20,
            channel_capacity: 100_000,
            batch_max_samples: 10_000,
            flush_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
        }
    }
}

/// What the shipper has done so far, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VictoriaCounters {
    /// Samples VictoriaMetrics acknowledged.
    pub sent_samples: u64,
    /// Samples in the spool now (a gauge).
    pub buffered_samples: u64,
    /// Bytes in the spool now (a gauge).
    pub buffered_bytes: u64,
    /// Samples dropped at the spool's bound (oldest first) or lost to a failing disk.
    pub dropped_samples: u64,
    /// Attempts that failed and will be retried.
    pub failed_attempts: u64,
    /// Samples VictoriaMetrics refused with a 4xx and that were therefore dropped.
    pub rejected_samples: u64,
    /// Samples skipped for an invalid metric or label name.
    pub invalid_samples: u64,
    /// Samples refused by [`SampleSender::push`] because the channel was full or closed.
    pub channel_full_samples: u64,
}

#[derive(Debug, Default)]
struct Stats {
    sent_samples: AtomicU64,
    buffered_samples: AtomicU64,
    buffered_bytes: AtomicU64,
    dropped_samples: AtomicU64,
    failed_attempts: AtomicU64,
    rejected_samples: AtomicU64,
    invalid_samples: AtomicU64,
    channel_full_samples: AtomicU64,
}

impl Stats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> VictoriaCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        VictoriaCounters {
            sent_samples: get(&self.sent_samples),
            buffered_samples: get(&self.buffered_samples),
            buffered_bytes: get(&self.buffered_bytes),
            dropped_samples: get(&self.dropped_samples),
            failed_attempts: get(&self.failed_attempts),
            rejected_samples: get(&self.rejected_samples),
            invalid_samples: get(&self.invalid_samples),
            channel_full_samples: get(&self.channel_full_samples),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VictoriaError {
    #[error("VictoriaMetrics address {0} cannot take the import path")]
    BadUrl(Url),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("the spool lock is poisoned: a thread panicked while holding it")]
    SpoolPoisoned,
    #[error("a spool task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Why one attempt did not store a batch.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("VictoriaMetrics answered {0}")]
    Retry(StatusCode),
    #[error("VictoriaMetrics refused the batch with {0}")]
    Refused(StatusCode),
    #[error("sending to VictoriaMetrics failed: {0}")]
    Transport(#[source] reqwest::Error),
}

/// The collectors' end: cheap to clone, never waits.
#[derive(Debug, Clone)]
pub struct SampleSender {
    tx: mpsc::Sender<Sample>,
    stats: Arc<Stats>,
}

impl SampleSender {
    /// Hands `sample` to the shipper; false (and counted) when the channel is full or the shipper
    /// has stopped.
    pub fn push(&self, sample: Sample) -> bool {
        let ok = self.tx.try_send(sample).is_ok();
        if !ok {
            Stats::add(&self.stats.channel_full_samples, 1);
        }
        ok
    }

    pub fn counters(&self) -> VictoriaCounters {
        self.stats.snapshot()
    }

    /// A handle for `/metrics` that, unlike a sender, does not keep the channel open.
    pub fn probe(&self) -> VictoriaProbe {
        VictoriaProbe(Arc::clone(&self.stats))
    }
}

/// Reads the shipper's counters.
#[derive(Debug, Clone)]
pub struct VictoriaProbe(Arc<Stats>);

impl VictoriaProbe {
    pub fn counters(&self) -> VictoriaCounters {
        self.0.snapshot()
    }
}

/// The shipping task; run it with [`VictoriaShipper::run`].
#[derive(Debug)]
pub struct VictoriaShipper {
    config: VictoriaConfig,
    import_url: Url,
    client: Client,
    rx: mpsc::Receiver<Sample>,
    spool: Arc<Mutex<Spool>>,
    stats: Arc<Stats>,
}

/// Opens the spool (what an earlier run left there is replayed first) and builds both ends.
pub fn victoria(config: VictoriaConfig) -> Result<(SampleSender, VictoriaShipper), VictoriaError> {
    let import_url = import_url(&config.url)?;
    let client = http_client(config.timeout).map_err(VictoriaError::Client)?;
    let spool = Spool::open(&config.spool_dir, config.max_spool_bytes)?;
    let stats = Arc::new(Stats::default());
    stats.buffered_samples.store(spool.index().samples(), Ordering::Relaxed);
    stats.buffered_bytes.store(spool.index().bytes(), Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
    let shipper =
        VictoriaShipper { config, import_url, client, rx, spool: Arc::new(Mutex::new(spool)), stats: stats.clone() };
    Ok((SampleSender { tx, stats }, shipper))
}

/// `{url}/api/v1/import/prometheus`, keeping any path prefix of `url` (VictoriaMetrics behind a
/// proxy).
pub fn import_url(url: &Url) -> Result<Url, VictoriaError> {
    let base = format!("{}/", url.as_str().trim_end_matches('/'));
    Url::parse(&base)
        .and_then(|b| b.join("api/v1/import/prometheus"))
        .map_err(|_| VictoriaError::BadUrl(url.clone()))
        .and_then(|u| if u.cannot_be_a_base() { Err(VictoriaError::BadUrl(url.clone())) } else { Ok(u) })
}

impl VictoriaShipper {
    pub fn counters(&self) -> VictoriaCounters {
        self.stats.snapshot()
    }

    /// Ships until every [`SampleSender`] is dropped, then flushes the last batch (to the spool
    /// if VictoriaMetrics does not take it) and returns. What remains in the spool is replayed by
    /// the next run. Returns an error only when the spool cannot be read or cleaned up.
    pub async fn run(mut self) -> Result<(), VictoriaError> {
        let mut batch: Vec<Sample> = Vec::new();
        let mut flush_at: Option<Instant> = None;
        let mut delays = self.config.backoff.builder().build();
        // A spool left by an earlier run is replayed at once.
        let mut retry_at = (!self.spool_is_empty()?).then(Instant::now);
        let mut open = true;
        loop {
            let wake_at = match (flush_at, retry_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                biased;
                received = self.rx.recv(), if open => match received {
                    Some(sample) => {
                        flush_at.get_or_insert_with(|| Instant::now() + self.config.flush_interval);
                        batch.push(sample);
                        // Take all that is waiting, so a replay of one segment per turn of this
                        // loop cannot fall behind a collector that pushes many samples per turn.
                        while batch.len() < self.config.batch_max_samples {
                            let Ok(sample) = self.rx.try_recv() else { break };
                            batch.push(sample);
                        }
                    }
                    None => open = false,
                },
                () = sleep_until_opt(wake_at) => {}
            }
            let now = Instant::now();
            if batch.len() >= self.config.batch_max_samples
                || flush_at.is_some_and(|t| t <= now)
                || (!open && !batch.is_empty())
            {
                flush_at = None;
                let samples = std::mem::take(&mut batch);
                if let Some(failed) = self.flush(&samples, retry_at.is_some()).await? {
                    tracing::warn!(error = %failed, "VictoriaMetrics did not take a batch; spooled it");
                    retry_at = Some(Instant::now() + delays.next().unwrap_or(self.config.backoff.max));
                }
            }
            if !open && batch.is_empty() {
                return Ok(());
            }
            if retry_at.is_some_and(|t| t <= Instant::now()) {
                retry_at = match self.replay_oldest().await? {
                    Replay::Done { more } => {
                        delays = self.config.backoff.builder().build();
                        more.then(Instant::now)
                    }
                    Replay::Failed(error) => {
                        let wait = delays.next().unwrap_or(self.config.backoff.max);
                        tracing::warn!(%error, retry_in = ?wait, "replaying the spool to VictoriaMetrics failed");
                        Some(Instant::now() + wait)
                    }
                };
            }
        }
    }

    /// Sends `samples` directly, or spools them when the spool is in use or the attempt fails;
    /// returns the failure that made it spool.
    async fn flush(&self, samples: &[Sample], spooling: bool) -> Result<Option<AttemptError>, VictoriaError> {
        let encoded = prom::encode(samples);
        Stats::add(&self.stats.invalid_samples, encoded.invalid);
        if encoded.samples == 0 {
            return Ok(None);
        }
        let body = encoded.text.into_bytes();
        if !spooling {
            match self.attempt(body.clone()).await {
                Ok(()) => {
                    Stats::add(&self.stats.sent_samples, encoded.samples);
                    return Ok(None);
                }
                Err(AttemptError::Refused(status)) => {
                    tracing::error!(%status, samples = encoded.samples, "VictoriaMetrics refused a batch; dropped it");
                    Stats::add(&self.stats.rejected_samples, encoded.samples);
                    return Ok(None);
                }
                Err(error) => {
                    Stats::add(&self.stats.failed_attempts, 1);
                    self.spool_append(body, encoded.samples).await?;
                    return Ok(Some(error));
                }
            }
        }
        self.spool_append(body, encoded.samples).await?;
        Ok(None)
    }

    async fn spool_append(&self, body: Vec<u8>, samples: u64) -> Result<(), VictoriaError> {
        let appended = self.with_spool(move |s| s.append(&body, samples)).await;
        match appended {
            Ok(outcome) => {
                if outcome.dropped_samples > 0 {
                    tracing::warn!(dropped = outcome.dropped_samples, "spool full; dropped the oldest samples");
                }
                Stats::add(&self.stats.dropped_samples, outcome.dropped_samples);
            }
            // A full or failing disk loses this batch but must not stop shipping the next ones.
            Err(VictoriaError::Spool(error)) => {
                tracing::error!(%error, samples, "cannot spool a batch; dropped it");
                Stats::add(&self.stats.dropped_samples, samples);
            }
            Err(other) => return Err(other),
        }
        Ok(())
    }

    async fn replay_oldest(&self) -> Result<Replay, VictoriaError> {
        let Some((meta, body)) = self.with_spool(|s| Ok(s.read_oldest())).await? else {
            return Ok(Replay::Done { more: false });
        };
        let body = match body {
            Ok(body) => body,
            Err(error) => {
                // An unreadable segment would block every later one; it is dropped and counted.
                tracing::error!(%error, "cannot read a spool segment; dropped it");
                Stats::add(&self.stats.dropped_samples, meta.samples);
                return self.remove_oldest().await;
            }
        };
        match self.attempt(body).await {
            Ok(()) => Stats::add(&self.stats.sent_samples, meta.samples),
            Err(AttemptError::Refused(status)) => {
                tracing::error!(%status, seq = meta.seq, "VictoriaMetrics refused a spooled batch; dropped it");
                Stats::add(&self.stats.rejected_samples, meta.samples);
            }
            Err(error) => {
                Stats::add(&self.stats.failed_attempts, 1);
                return Ok(Replay::Failed(error));
            }
        }
        self.remove_oldest().await
    }

    async fn remove_oldest(&self) -> Result<Replay, VictoriaError> {
        let more = self.with_spool(|s| s.remove_oldest().map(|_| !s.index().is_empty())).await?;
        Ok(Replay::Done { more })
    }

    fn spool_is_empty(&self) -> Result<bool, VictoriaError> {
        Ok(self.spool.lock().map_err(|_| VictoriaError::SpoolPoisoned)?.index().is_empty())
    }

    /// Runs `f` on the spool in a blocking thread (it writes and fsyncs) and refreshes the gauges.
    async fn with_spool<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Spool) -> Result<T, SpoolError> + Send + 'static,
    ) -> Result<T, VictoriaError> {
        let spool = Arc::clone(&self.spool);
        let stats = Arc::clone(&self.stats);
        tokio::task::spawn_blocking(move || {
            let mut guard = spool.lock().map_err(|_| VictoriaError::SpoolPoisoned)?;
            let result = f(&mut guard);
            stats.buffered_samples.store(guard.index().samples(), Ordering::Relaxed);
            stats.buffered_bytes.store(guard.index().bytes(), Ordering::Relaxed);
            result.map_err(VictoriaError::from)
        })
        .await?
    }

    async fn attempt(&self, body: Vec<u8>) -> Result<(), AttemptError> {
        let response = self
            .client
            .post(self.import_url.clone())
            .header(CONTENT_TYPE, "text/plain; version=0.0.4")
            .body(body)
            .send()
            .await
            .map_err(AttemptError::Transport)?;
        classify(response.status())
    }
}

enum Replay {
    Done { more: bool },
    Failed(AttemptError),
}

/// 2xx stores; 5xx and 429 are worth retrying; any other status will never take this body.
fn classify(status: StatusCode) -> Result<(), AttemptError> {
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Err(AttemptError::Retry(status))
    } else {
        Err(AttemptError::Refused(status))
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_import_path_is_appended_to_the_base_address_keeping_a_prefix() {
        for (base, want) in [
            ("http://vm:8428", "http://vm:8428/api/v1/import/prometheus"),
            ("http://vm:8428/", "http://vm:8428/api/v1/import/prometheus"),
            ("http://proxy/vm/", "http://proxy/vm/api/v1/import/prometheus"),
            ("https://proxy/vm", "https://proxy/vm/api/v1/import/prometheus"),
        ] {
            assert_eq!(import_url(&base.parse().unwrap()).unwrap().as_str(), want, "{base}");
        }
        assert!(matches!(import_url(&"mailto:vm@example.com".parse().unwrap()), Err(VictoriaError::BadUrl(_))));
    }

    #[test]
    fn server_errors_and_throttling_are_retried_and_other_client_errors_are_refusals() {
        assert!(classify(StatusCode::NO_CONTENT).is_ok());
        for status in
            [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::SERVICE_UNAVAILABLE, StatusCode::TOO_MANY_REQUESTS]
        {
            assert!(matches!(classify(status), Err(AttemptError::Retry(_))), "{status}");
        }
        for status in [StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND, StatusCode::PAYLOAD_TOO_LARGE] {
            assert!(matches!(classify(status), Err(AttemptError::Refused(_))), "{status}");
        }
    }

    #[tokio::test]
    async fn pushing_into_a_full_channel_returns_at_once_and_counts_the_sample() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = VictoriaConfig::new("http://127.0.0.1:9".parse().unwrap(), dir.path().join("spool"));
        config.channel_capacity = 2;
        let (sender, _shipper) = victoria(config).unwrap();
        let sample = Sample { metric: "m".into(), labels: vec![], value: 1.0, time_ms: 1 };
        let pushed: Vec<bool> = (0..4).map(|_| sender.push(sample.clone())).collect();
        assert_eq!(pushed, [true, true, false, false]);
        assert_eq!(sender.counters().channel_full_samples, 2);
    }
}
