//! The mediator's HTTP server: agent intake, the read API, the change stream, the action queue,
//! metrics and health.

pub(crate) mod actions;
mod intake;
mod read;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::state::Shared;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/reports", post(intake::post_report))
        .route("/v1/pods", get(intake::node_pods))
        .route("/v1/topology", get(read::topology))
        .route("/v1/symptoms", get(read::symptoms))
        .route("/v1/egress", get(read::egress))
        .route("/v1/index", get(read::index))
        .route("/v1/ledger", get(read::ledger))
        .route("/v1/payloads", get(read::payloads))
        .route("/v1/payloads/{seq}", get(read::payload))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/actions", post(actions::submit).get(actions::list))
        .route("/v1/actions/{id}", get(actions::get_one))
        .route("/v1/actions/{id}/result", post(actions::report))
        .route("/metrics", get(read::metrics))
        .route("/healthz", get(read::healthz))
        .route("/readyz", get(read::readyz))
        .with_state(shared)
}

/// Serves until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "serving");
    axum::serve(listener, router(shared)).await
}
