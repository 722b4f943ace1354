//! `GET /v1/stream`: the change stream as server-sent events, one JSON `StreamEvent` per event,
//! for `kubectl causely top`. A client that falls behind gets a `resync` event and re-reads.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use causely_model::api::StreamEvent;
use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::state::Shared;

fn to_sse(event: &StreamEvent) -> Event {
    Event::default().event(event.name()).data(serde_json::to_string(event).unwrap_or_default())
}

pub async fn stream(State(shared): State<Arc<Shared>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let hello = StreamEvent::Egress { status: shared.egress_status() };
    let events = BroadcastStream::new(shared.stream.subscribe()).map(|item| {
        let event = match item {
            Ok(event) => event,
            Err(BroadcastStreamRecvError::Lagged(_)) => StreamEvent::Resync {},
        };
        Ok(to_sse(&event))
    });
    let first = tokio_stream::once(Ok(to_sse(&hello)));
    Sse::new(first.chain(events)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
