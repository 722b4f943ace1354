//! The read API under `/v1/` for `kubectl causely`: topology, symptoms, egress status, the ledger
//! and the exact bytes of kept payloads; plus `/metrics`, `/healthz` and `/readyz`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::state::Shared;

pub async fn topology(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.core().topology_view()).into_response()
}

pub async fn symptoms(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.core().symptoms_view()).into_response()
}

pub async fn egress(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.egress_status()).into_response()
}

pub async fn index(State(shared): State<Arc<Shared>>) -> Response {
    let core = shared.core();
    Json(serde_json::json!({"objects": core.index.counts(), "agents": core.agents})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    #[serde(default)]
    from: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    1000
}

/// The ledger's lines from entry `from`, byte for byte as stored (JSON Lines), so a verifier
/// recomputes the hash chain over exactly what the mediator hashed.
pub async fn ledger(State(shared): State<Arc<Shared>>, Query(query): Query<LedgerQuery>) -> Response {
    let limit = query.limit.clamp(1, 100_000);
    match shared.store().ledger_entries(query.from, limit) {
        Ok(lines) => {
            let body: String = lines.into_iter().map(|l| l.line + "\n").collect();
            ([(header::CONTENT_TYPE, "application/jsonl")], body).into_response()
        }
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadQuery {
    from: u64,
    #[serde(default = "default_payload_limit")]
    limit: u64,
}

fn default_payload_limit() -> u64 {
    100
}

/// The kept payloads of seqs `from` to `from + limit - 1` as JSON Lines, each line the exact bytes
/// accepted (a payload is compact JSON, so it holds no newline; its `seq` field says which it is).
/// Seqs no longer kept are left out.
pub async fn payloads(State(shared): State<Arc<Shared>>, Query(query): Query<PayloadQuery>) -> Response {
    let limit = query.limit.clamp(1, 10_000);
    let mut body = Vec::new();
    let store = shared.store();
    for seq in query.from..query.from.saturating_add(limit).min(store.next_seq()) {
        match store.payload(seq) {
            Ok(Some(bytes)) => {
                body.extend_from_slice(&bytes);
                body.push(b'\n');
            }
            Ok(None) => {}
            Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
        }
    }
    ([(header::CONTENT_TYPE, "application/jsonl")], body).into_response()
}

/// The exact bytes accepted under `seq`, while they are kept.
pub async fn payload(State(shared): State<Arc<Shared>>, Path(seq): Path<u64>) -> Response {
    match shared.store().payload(seq) {
        Ok(Some(bytes)) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, format!("no payload kept for seq {seq}")).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    refresh_gauges(&shared);
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &shared.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// Gauges read from the state at scrape time rather than kept in step with every change.
fn refresh_gauges(shared: &Shared) {
    let m = &shared.metrics;
    {
        let core = shared.core();
        let counts = core.index.counts();
        for kind in crate::index::ObjectKind::ALL {
            let label = crate::metrics::KindLabel { kind: format!("{kind:?}") };
            m.index_objects.get_or_create(&label).set(i64::try_from(counts.of(kind)).unwrap_or(i64::MAX));
        }
        let (entities, edges) = core.topology_size();
        m.topology_entities.set(entities as i64);
        m.topology_edges.set(edges as i64);
        m.symptoms_open.set(core.book.open_count() as i64);
    }
    let stats = shared.store().stats();
    m.egress_queue_batches.set(stats.pending_batches as i64);
    m.egress_queue_bytes.set(stats.pending_bytes as i64);
    m.egress_delivered_seq.set(stats.delivered_seq as i64);
    m.leader.set(i64::from(shared.is_leader()));
    m.stream_clients.set(shared.stream.receiver_count() as i64);
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when this replica leads and every watched kind has been listed. A standby is not ready
/// on purpose: the Service then sends agents and the CLI only to the replica that sends upstream.
pub async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if !shared.synced() {
        (StatusCode::SERVICE_UNAVAILABLE, "cluster index not yet listed").into_response()
    } else if !shared.is_leader() {
        (StatusCode::SERVICE_UNAVAILABLE, "standby: another replica holds the lease").into_response()
    } else {
        (StatusCode::OK, "ready").into_response()
    }
}
