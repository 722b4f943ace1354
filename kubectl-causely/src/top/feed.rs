//! The I/O side of `top`: follows the mediator's change stream, reads `/v1/topology` and
//! `/v1/symptoms` whenever it (re)connects or is told to resync, and sends the app what it learnt
//! through a channel. Reconnects by itself with exponential backoff.

use std::time::Duration;

use backon::BackoffBuilder;
use causely_model::api::{EgressStatus, StreamEvent, SymptomsView, TopologyView};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::mediator_api::{ApiError, EventStream, MediatorApi};

/// The first wait after a connection is lost, and the longest.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(10);

/// One message from the feed to the app.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A full read: replaces everything the app knew.
    Snapshot { topology: TopologyView, symptoms: SymptomsView, egress: EgressStatus },
    /// One change-stream event, to apply on top of the last snapshot.
    Event(StreamEvent),
    /// The mediator cannot be reached (or the stream broke); the feed tries again after `retry_in`.
    Down { error: String, retry_in: Duration },
}

/// Why a session with the mediator ended.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("the mediator closed the change stream")]
    Closed,
    #[error("the change stream sent an event that is not understood: {0}")]
    Garbled(String),
    /// The app is gone: stop.
    #[error("the app stopped listening")]
    AppGone,
}

/// Runs until the app drops its receiver.
pub async fn run(api: MediatorApi, updates: mpsc::Sender<Update>) {
    let backoff = || {
        backon::ExponentialBuilder::default()
            .with_min_delay(FIRST_RETRY)
            .with_max_delay(LONGEST_RETRY)
            .with_jitter()
            .without_max_times()
            .build()
    };
    let mut delays = backoff();
    loop {
        let mut reached = false;
        let end = session(&api, &updates, &mut reached).await;
        if matches!(end, SessionEnd::AppGone) {
            return;
        }
        if reached {
            // A session that got as far as a snapshot starts the waits over.
            delays = backoff();
        }
        let retry_in = delays.next().unwrap_or(LONGEST_RETRY);
        let down = Update::Down { error: crate::exit::one_line(&end.to_string()), retry_in };
        if updates.send(down).await.is_err() {
            return;
        }
        tokio::time::sleep(retry_in).await;
    }
}

/// One connection: subscribe, read the snapshot, then forward events until the stream ends.
async fn session(api: &MediatorApi, updates: &mpsc::Sender<Update>, reached: &mut bool) -> SessionEnd {
    let mut events = match api.events("/v1/stream").await {
        Ok(events) => events,
        Err(err) => return err.into(),
    };
    // The first event (an `egress` hello) is sent once the subscription exists, so every change
    // after the snapshot read below reaches us through the stream.
    let egress = match next_event(&mut events).await {
        Ok(StreamEvent::Egress { status }) => status,
        Ok(other) => return SessionEnd::Garbled(format!("expected an egress hello first, got {}", other.name())),
        Err(end) => return end,
    };
    if let Err(end) = send_snapshot(api, updates, egress).await {
        return end;
    }
    *reached = true;
    loop {
        match next_event(&mut events).await {
            Ok(StreamEvent::Resync {}) => {
                let egress = match api.get_json::<EgressStatus>("/v1/egress").await {
                    Ok(status) => status,
                    Err(err) => return err.into(),
                };
                if let Err(end) = send_snapshot(api, updates, egress).await {
                    return end;
                }
            }
            Ok(event) => {
                if updates.send(Update::Event(event)).await.is_err() {
                    return SessionEnd::AppGone;
                }
            }
            Err(end) => return end,
        }
    }
}

async fn next_event(events: &mut EventStream) -> Result<StreamEvent, SessionEnd> {
    let event = events.next().await.ok_or(SessionEnd::Closed)??;
    serde_json::from_str(&event.data).map_err(|e| SessionEnd::Garbled(format!("{} event: {e}", event.event)))
}

async fn send_snapshot(
    api: &MediatorApi,
    updates: &mpsc::Sender<Update>,
    egress: EgressStatus,
) -> Result<(), SessionEnd> {
    let (topology, symptoms) =
        tokio::try_join!(api.get_json::<TopologyView>("/v1/topology"), api.get_json::<SymptomsView>("/v1/symptoms"))?;
    updates.send(Update::Snapshot { topology, symptoms, egress }).await.map_err(|_| SessionEnd::AppGone)
}
