//! Waiting for the cluster to converge: poll a condition until it holds or a deadline passes.

use std::future::Future;
use std::time::Duration;

use anyhow::bail;

/// Polls `check` every 250 ms until it returns `Ok(Some(value))`, and fails with the last
/// reason `check` gave (`Ok(None)` means "not yet") once `timeout` has passed.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "condition not met yet".to_owned(),
            Err(err) => format!("{err:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("{what}: not reached within {timeout:?} ({last})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
