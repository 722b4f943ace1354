//! `egress tail`: follows the mediator's change stream and, on each `egress` event, reads the new
//! ledger entries and the payloads of the sent ones, printing each as it is accepted. The stream
//! only says that something changed; the ledger says what, so nothing is missed between events.

use std::time::Duration;

use causely_model::api::EgressStatus;
use causely_model::ledger::{self, LedgerEntry, LedgerRecord};
use futures::StreamExt;

use super::format;
use crate::cli::OutputFormat;
use crate::exit::{Failure, Outcome};
use crate::mediator_api::{ApiError, MediatorApi};

/// Ledger entries read per request while catching up.
const PAGE: u64 = 1_000;
/// How often the ledger is read even without an event, in case one was missed.
const POLL: Duration = Duration::from_secs(5);

/// Prints the ledger entries from `cursor` on; returns the new cursor.
async fn catch_up(api: &MediatorApi, mut cursor: u64, output: OutputFormat) -> Result<u64, ApiError> {
    loop {
        let page = api.get(&format!("/v1/ledger?from={cursor}&limit={PAGE}")).await?;
        let (lines, _) = ledger::split_lines(&page);
        for line in &lines {
            let entry = LedgerEntry::parse(line).map_err(|e| ApiError::Decode {
                via: api.via().to_owned(),
                method: "GET",
                path: "/v1/ledger".into(),
                detail: format!("entry {cursor}: {e}"),
            })?;
            let payload = match entry.record {
                LedgerRecord::Sent { seq, .. } => match api.get(&format!("/v1/payloads/{seq}")).await {
                    Ok(bytes) => Some(bytes),
                    Err(e) if e.status() == Some(404) => None,
                    Err(e) => return Err(e),
                },
                _ => None,
            };
            match output {
                OutputFormat::Text => crate::outln!("{}", format::tail_line(&entry, payload.as_deref())),
                OutputFormat::Json => crate::outln!("{}", format::tail_json(&entry, payload.as_deref())),
            }
            cursor += 1;
        }
        if (lines.len() as u64) < PAGE {
            return Ok(cursor);
        }
    }
}

/// Resolves on ctrl-c. The handler is installed when this is called, not when first polled, so a
/// ctrl-c while the first entries print is not the default (killing) action.
#[cfg(unix)]
pub(crate) fn interrupted() -> Result<impl std::future::Future<Output = ()>, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| Failure::CouldNotRun(format!("cannot handle ctrl-c: {e}")))?;
    Ok(async move {
        interrupt.recv().await;
    })
}

#[cfg(not(unix))]
pub(crate) fn interrupted() -> Result<impl std::future::Future<Output = ()>, Failure> {
    use tokio::signal::windows::ctrl_c;
    let mut interrupt = ctrl_c().map_err(|e| Failure::CouldNotRun(format!("cannot handle ctrl-c: {e}")))?;
    Ok(async move {
        interrupt.recv().await;
    })
}

/// Follows the mediator until ctrl-c (exit 0) or until it goes away (exit 2).
pub async fn follow(api: &MediatorApi, from_start: bool, output: OutputFormat) -> Result<Outcome, Failure> {
    let ctrl_c = interrupted()?;
    tokio::pin!(ctrl_c);
    let status: EgressStatus = api.get_json("/v1/egress").await?;
    let mut events = api.events("/v1/stream").await?;
    let mut cursor = if from_start { 0 } else { status.ledger_entries };
    cursor = tokio::select! {
        () = &mut ctrl_c => return Ok(Outcome::Clean),
        caught_up = catch_up(api, cursor, output) => caught_up?,
    };
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut ctrl_c => return Ok(Outcome::Clean),
            event = events.next() => match event {
                Some(Ok(event)) if event.event == "egress" || event.event == "resync" => {
                    cursor = catch_up(api, cursor, output).await?;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => {
                    return Err(Failure::CouldNotRun(format!("the mediator {} closed its change stream", api.via())));
                }
            },
            _ = poll.tick() => cursor = catch_up(api, cursor, output).await?,
        }
    }
}
