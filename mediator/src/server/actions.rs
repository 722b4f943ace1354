//! The action queue's HTTP face: `POST /v1/actions` (submit, from the CLI through the API server's
//! service proxy), `GET /v1/actions/{id}` (the CLI waits on it), and, for the executor only (its
//! projected ServiceAccount token), `GET /v1/actions?state=pending` and
//! `POST /v1/actions/{id}/result`.

use causely_model::UnixMillis;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use causely_model::api::{ActionList, ActionView};
use causely_model::{Action, ActionId, ActionResult};
use serde::de::DeserializeOwned;

use crate::actions::{JournalError, QueueError, Reported};
use crate::metrics::ResultLabel;
use crate::state::Shared;

/// Far above any action or result (their texts are bounded by the model).
const MAX_BODY_BYTES: usize = 64 * 1024;

fn answer(shared: &Shared, status: StatusCode, result: &'static str, reason: String) -> Response {
    shared.metrics.actions.get_or_create(&ResultLabel { result }).inc();
    if status.is_client_error() || status.is_server_error() {
        tracing::info!(result, reason, "action request refused");
    }
    (status, axum::Json(serde_json::json!({"error": result, "reason": reason}))).into_response()
}

fn count(shared: &Shared, result: &'static str) {
    shared.metrics.actions.get_or_create(&ResultLabel { result }).inc();
}

async fn json_body<T: DeserializeOwned>(shared: &Shared, body: Body) -> Result<T, Response> {
    let bytes = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        answer(shared, StatusCode::PAYLOAD_TOO_LARGE, "too-large", format!("body larger than {MAX_BODY_BYTES} bytes"))
    })?;
    serde_json::from_slice(&bytes).map_err(|err| {
        let status = if err.is_data() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::BAD_REQUEST };
        answer(shared, status, "invalid", err.to_string())
    })
}

/// Only the executor's ServiceAccount may see what to do and say how it went.
async fn executor_only(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match shared.executor_verifier.verify_header(authorization).await {
        Ok(_) => Ok(()),
        Err(err) => Err(answer(shared, StatusCode::UNAUTHORIZED, "unauthenticated", err.to_string())),
    }
}

fn refused(shared: &Shared, err: JournalError) -> Response {
    let (status, result) = match &err {
        JournalError::Refused(QueueError::Duplicate(_)) => (StatusCode::CONFLICT, "duplicate"),
        JournalError::Refused(QueueError::AlreadyDone(_)) => (StatusCode::CONFLICT, "already-done"),
        JournalError::Refused(QueueError::Invalid(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        JournalError::Refused(QueueError::Expired(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "expired"),
        JournalError::Refused(QueueError::Full) => (StatusCode::SERVICE_UNAVAILABLE, "full"),
        JournalError::Refused(QueueError::Unknown(_)) => (StatusCode::NOT_FOUND, "unknown"),
        JournalError::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "io"),
    };
    answer(shared, status, result, err.to_string())
}

fn set_pending_gauge(shared: &Shared, pending: usize) {
    shared.metrics.actions_pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
}

/// Queues one action, as submitted by the CLI or asked for by the upstream, with the same checks.
pub fn accept(shared: &Shared, action: Action) -> Result<ActionView, JournalError> {
    let mut store = shared.actions();
    let view = store.submit(action, UnixMillis::now())?;
    set_pending_gauge(shared, store.pending_count());
    drop(store);
    tracing::info!(id = %view.action.id, kind = view.action.kind.name(), target = %view.action.target,
        requester = %view.action.requester, "action submitted");
    count(shared, "submitted");
    Ok(view)
}

/// Queues the actions the upstream's replies ask for, each marked as the upstream's in its
/// requester; a refused one is counted and logged like a refused submission.
pub async fn from_upstream(shared: Arc<Shared>, mut replies: tokio::sync::mpsc::Receiver<Vec<Action>>) {
    while let Some(actions) = replies.recv().await {
        for mut action in actions {
            if !action.requester.starts_with("upstream:") {
                action.requester = format!("upstream:{}", action.requester);
            }
            let id = action.id.clone();
            if let Err(err) = accept(&shared, action) {
                let _ = refused(&shared, err);
                tracing::warn!(%id, "an action the upstream asked for was refused");
            }
        }
    }
}

pub async fn submit(State(shared): State<Arc<Shared>>, body: Body) -> Response {
    let action: Action = match json_body(&shared, body).await {
        Ok(action) => action,
        Err(response) => return response,
    };
    match accept(&shared, action) {
        Ok(view) => (StatusCode::CREATED, axum::Json(view)).into_response(),
        Err(err) => refused(&shared, err),
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: String,
}

pub async fn list(State(shared): State<Arc<Shared>>, headers: HeaderMap, Query(query): Query<ListQuery>) -> Response {
    if let Err(response) = executor_only(&shared, &headers).await {
        return response;
    }
    if query.state != "pending" {
        let reason = format!("state={} is not supported; only state=pending", query.state);
        return answer(&shared, StatusCode::BAD_REQUEST, "invalid", reason);
    }
    let actions = shared.actions().pending();
    count(&shared, "pulled");
    axum::Json(ActionList { actions }).into_response()
}

pub async fn get_one(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match shared.actions().view(&ActionId(id.clone())) {
        Some(view) => axum::Json(view).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "unknown", "reason": format!("no action {id}")})),
        )
            .into_response(),
    }
}

pub async fn report(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    if let Err(response) = executor_only(&shared, &headers).await {
        return response;
    }
    let result: ActionResult = match json_body(&shared, body).await {
        Ok(result) => result,
        Err(response) => return response,
    };
    if result.id.0 != id {
        let reason = format!("the result is for action {}, the path names {id}", result.id);
        return answer(&shared, StatusCode::UNPROCESSABLE_ENTITY, "invalid", reason);
    }
    let mut store = shared.actions();
    let reported = store.report(result.clone());
    let pending = store.pending_count();
    drop(store);
    match reported {
        Ok(reported) => {
            set_pending_gauge(&shared, pending);
            let recorded = reported == Reported::Recorded;
            if recorded {
                tracing::info!(id = %result.id, outcome = ?result.outcome, dry_run = result.dry_run, "action result");
            }
            count(&shared, if recorded { "result" } else { "result-repeated" });
            axum::Json(serde_json::json!({"recorded": recorded})).into_response()
        }
        Err(err) => refused(&shared, err),
    }
}
