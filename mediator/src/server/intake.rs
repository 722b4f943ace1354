//! `POST /v1/reports`: agent reports in, authenticated, size-limited and schema-checked. Every
//! refusal is a 4xx with the reason and a counter; nothing an agent sends can stop the mediator.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use causely_model::{AgentReport, EntityId, EntityKind, SymptomChange, UnixMillis};

use crate::state::Shared;

use causely_model::report::{MAX_CONNECTIONS, MAX_SYMPTOM_CHANGES};

fn refuse(shared: &Shared, status: StatusCode, result: &'static str, reason: String) -> Response {
    shared.metrics.intake(result);
    tracing::debug!(result, reason, "agent report refused");
    (status, axum::Json(serde_json::json!({"error": result, "reason": reason}))).into_response()
}

pub async fn post_report(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let identity = match shared.verifier.verify_header(authorization).await {
        Ok(identity) => identity,
        Err(err) => return refuse(&shared, StatusCode::UNAUTHORIZED, "unauthenticated", err.to_string()),
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        let reason = "content-type must be application/json".to_owned();
        return refuse(&shared, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", reason);
    }
    let limit = shared.limits.max_report_bytes;
    let bytes = match to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let reason = format!("body larger than {limit} bytes");
            return refuse(&shared, StatusCode::PAYLOAD_TOO_LARGE, "too-large", reason);
        }
    };
    let report: AgentReport = match serde_json::from_slice(&bytes) {
        Ok(report) => report,
        Err(err) if err.is_data() => {
            return refuse(&shared, StatusCode::UNPROCESSABLE_ENTITY, "invalid", err.to_string());
        }
        Err(err) => return refuse(&shared, StatusCode::BAD_REQUEST, "malformed", err.to_string()),
    };
    if let Err(err) = identity.check_node(&report.node) {
        return refuse(&shared, StatusCode::FORBIDDEN, "forbidden", err.to_string());
    }
    if let Err(reason) = validate(&report) {
        return refuse(&shared, StatusCode::UNPROCESSABLE_ENTITY, "invalid", reason);
    }
    let (summary, events) = shared.core().ingest(&report, UnixMillis::now());
    shared.publish(events);
    shared.metrics.intake("accepted");
    shared.metrics.intake_bytes.inc_by(bytes.len() as u64);
    let m = &shared.metrics.intake_connections;
    m.get_or_create(&crate::metrics::ResultLabel { result: "resolved" }).inc_by(summary.connections_resolved);
    m.get_or_create(&crate::metrics::ResultLabel { result: "unresolved" }).inc_by(summary.connections_unresolved);
    (StatusCode::ACCEPTED, axum::Json(summary)).into_response()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeQuery {
    node: String,
}

/// `GET /v1/pods?node=NODE`: the pods on the agent's node, so it can name its cgroups' containers.
/// Agents only (the same token check as reports), and a pod-bound token only for its own node.
pub async fn node_pods(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<NodeQuery>,
) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let identity = match shared.verifier.verify_header(authorization).await {
        Ok(identity) => identity,
        Err(err) => return refuse(&shared, StatusCode::UNAUTHORIZED, "unauthenticated", err.to_string()),
    };
    if let Err(err) = identity.check_node(&query.node) {
        return refuse(&shared, StatusCode::FORBIDDEN, "forbidden", err.to_string());
    }
    let pods = shared.core().index.pods_on_node(&query.node);
    axum::Json(causely_model::api::NodePods { pods }).into_response()
}

/// What the types cannot say: bounds, and that an agent speaks only for its own node and the
/// containers and pods on it.
fn validate(report: &AgentReport) -> Result<(), String> {
    EntityId::node(report.node.clone()).to_string().parse::<EntityId>().map_err(|e| format!("node: {e}"))?;
    if report.connections.len() > MAX_CONNECTIONS {
        return Err(format!("{} connections (at most {MAX_CONNECTIONS})", report.connections.len()));
    }
    if report.symptoms.len() > MAX_SYMPTOM_CHANGES {
        return Err(format!("{} symptom changes (at most {MAX_SYMPTOM_CHANGES})", report.symptoms.len()));
    }
    for change in &report.symptoms {
        if let SymptomChange::Opened { symptom } = change {
            let entity = &symptom.entity;
            let allowed = match entity.kind() {
                EntityKind::Node => *entity == EntityId::node(report.node.clone()),
                EntityKind::Pod | EntityKind::Container => true,
                _ => false,
            };
            if !allowed {
                return Err(format!("an agent on node {} cannot report a symptom of {entity}", report.node));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use causely_model::{Severity, Symptom, SymptomId, SymptomKind, UnixMillis};

    fn report_with(entity: &str) -> AgentReport {
        let entity: EntityId = entity.parse().unwrap();
        AgentReport {
            node: "n1".into(),
            agent_version: "0.1.0".into(),
            seq: 1,
            time: UnixMillis(1),
            connections: vec![],
            symptoms: vec![SymptomChange::Opened {
                symptom: Symptom {
                    id: SymptomId::of("agent.cpu", &entity, UnixMillis(1)),
                    kind: SymptomKind::HighCpuUtilization,
                    entity,
                    severity: Severity::High,
                    rule: "agent.cpu".into(),
                    threshold: None,
                    started: UnixMillis(1),
                    resolved: None,
                },
            }],
        }
    }

    #[test]
    fn an_agent_may_report_its_own_node_and_the_containers_on_it() {
        assert!(validate(&report_with("node/n1")).is_ok());
        assert!(validate(&report_with("container/shop/web-1/nginx")).is_ok());
    }

    #[test]
    fn an_agent_may_not_speak_for_another_node_or_for_services() {
        assert!(validate(&report_with("node/n2")).unwrap_err().contains("cannot report"));
        assert!(validate(&report_with("svc/shop/web")).unwrap_err().contains("cannot report"));
    }

    #[test]
    fn an_invalid_node_name_is_refused() {
        let mut report = report_with("node/n1");
        report.node = "Not A Node".into();
        report.symptoms.clear();
        assert!(validate(&report).is_err());
    }
}
