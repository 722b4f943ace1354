//! `call`: GETs a URL again and again, resolving its host on every call (so a changed Service or
//! DNS answer is followed at once), and writes how many calls succeeded and failed to stderr once a
//! minute. It never exits on a failure: a demo client outlives the server it calls.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::CallOptions;
use crate::http::{self, HttpError, Url};

/// Why one call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("resolving {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("{0} resolves to no address")]
    NoAddress(String),
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("exchanging the request: {0}")]
    Io(#[from] std::io::Error),
    #[error("the response: {0}")]
    Http(#[from] HttpError),
    #[error("status {0}")]
    Status(u16),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Calls since the last report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub ok: u64,
    pub failed: u64,
    pub last_error: Option<String>,
}

impl Counts {
    pub fn record(&mut self, result: &Result<u16, CallError>) {
        match result {
            Ok(_) => self.ok += 1,
            Err(err) => {
                self.failed += 1;
                self.last_error = Some(err.to_string());
            }
        }
    }

    /// The report line for `url` over the last `window`.
    pub fn line(&self, url: &Url, window: Duration) -> String {
        let mut line =
            format!("{url}: {} ok, {} failed in the last {}", self.ok, self.failed, humantime::format_duration(window));
        if let Some(err) = &self.last_error {
            line.push_str(&format!(" (last failure: {err})"));
        }
        line
    }
}

/// Calls until SIGTERM.
pub async fn run(options: CallOptions) -> anyhow::Result<()> {
    tracing::info!(url = %options.url, interval = ?options.interval, "calling");
    let mut calls = tokio::time::interval(options.interval);
    calls.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut reports = tokio::time::interval_at(Instant::now() + options.report_every, options.report_every);
    let mut counts = Counts::default();
    let stop = causely_runtime::shutdown();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            _ = reports.tick() => {
                eprintln!("{}", counts.line(&options.url, options.report_every));
                counts = Counts::default();
            }
            _ = calls.tick() => {
                let result = match tokio::time::timeout(options.timeout, get(&options.url)).await {
                    Ok(Ok(status)) if (200..300).contains(&status) => Ok(status),
                    Ok(Ok(status)) => Err(CallError::Status(status)),
                    Ok(Err(err)) => Err(err),
                    Err(_) => Err(CallError::Timeout(options.timeout)),
                };
                counts.record(&result);
            }
        }
    }
}

/// One GET on a new connection (resolving the host anew); the response's status code.
pub async fn get(url: &Url) -> Result<u16, CallError> {
    // getaddrinfo, on a blocking thread: /etc/hosts, then the pod's resolv.conf (search domains, ndots).
    let addresses = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| CallError::Resolve(url.host.clone(), e))?;
    let mut last = None;
    let mut stream = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(err) => last = Some(err),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(err)) => return Err(CallError::Connect(err)),
        (None, None) => return Err(CallError::NoAddress(url.host.clone())),
    };
    stream.write_all(http::get_request(url).as_bytes()).await?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < http::MAX_HEAD {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(http::parse_status(&head)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_counts_both_and_names_the_last_failure() {
        let url: Url = "http://web.causely-demo.svc:8080/".parse().unwrap();
        let mut counts = Counts::default();
        counts.record(&Ok(200));
        counts.record(&Ok(204));
        counts.record(&Err(CallError::Status(503)));
        assert_eq!(
            counts.line(&url, Duration::from_secs(60)),
            "http://web.causely-demo.svc:8080/: 2 ok, 1 failed in the last 1m (last failure: status 503)"
        );
        assert_eq!(
            Counts::default().line(&url, Duration::from_secs(60)),
            "http://web.causely-demo.svc:8080/: 0 ok, 0 failed in the last 1m"
        );
    }

    #[tokio::test]
    async fn a_port_nobody_listens_on_is_a_failed_connect_not_a_crash() {
        // Bind and drop: the port was free a moment ago and nothing listens on it now.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url: Url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        assert!(matches!(get(&url).await, Err(CallError::Connect(_))));
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_failed_resolution() {
        let url: Url = "http://no-such-host.invalid/".parse().unwrap();
        assert!(matches!(get(&url).await, Err(CallError::Resolve(..))));
    }
}
