//! `/healthz` and `/metrics` (Prometheus text): decisions by outcome and mediator errors.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// The executor's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub actions: Family<OutcomeLabel, Counter>,
    pub mediator_errors: Counter,
}

/// The counters and the registry that exposes them.
#[derive(Debug)]
pub struct Exposed {
    pub metrics: Metrics,
    registry: Registry,
}

impl Exposed {
    pub fn new() -> Arc<Exposed> {
        let metrics = Metrics::default();
        let mut registry = Registry::with_prefix("causely_executor");
        registry.register("actions", "Decisions on actions, by outcome", metrics.actions.clone());
        registry.register("mediator_errors", "Failed pulls and reports", metrics.mediator_errors.clone());
        Arc::new(Exposed { metrics, registry })
    }
}

pub fn router(exposed: Arc<Exposed>) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics)).with_state(exposed)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn metrics(State(exposed): State<Arc<Exposed>>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &exposed.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}
