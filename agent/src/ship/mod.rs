//! The agent's only two outbound paths: raw samples to VictoriaMetrics, reports to the mediator.
//!
//! Raw sample values never go to the mediator (an `AgentReport` has no place for them), and
//! nothing here connects anywhere else. Each path is a pure core (encoding, the on-disk spool's
//! bound accounting, the report queue's policy) and a thin async adapter around it.

pub mod mediator;
pub mod prom;
pub mod queue;
pub mod spool;
pub mod victoria;

use std::time::Duration;

/// One raw measurement from a collector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// A Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
    pub metric: String,
    /// Label names follow `[a-zA-Z_][a-zA-Z0-9_]*`; values are any UTF-8.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// The retry schedule, shared with the mediator's delivery.
pub use causely_runtime::Backoff;

/// An HTTP client with one bound on each attempt, from connecting to the end of the answer, and
/// no redirects, so a body only ever goes to the configured address.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    // reqwest is built without a provider; an error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_backend_rustls()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_delays_stay_between_the_minimum_and_the_maximum_without_a_limit_on_attempts() {
        let backoff = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(4) };
        let delays: Vec<Duration> = backon::BackoffBuilder::build(backoff.builder()).take(30).collect();
        assert_eq!(delays.len(), 30);
        assert!(delays.iter().all(|d| *d >= backoff.min && *d <= backoff.max), "{delays:?}");
        assert!(delays[29] >= Duration::from_secs(2), "{delays:?}");
    }
}
