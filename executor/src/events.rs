//! Each decision as a Kubernetes Event (events.k8s.io/v1) on its target, so `kubectl describe`
//! and `kubectl events` show what the executor did or refused, and why.

use causely_model::{Action, ActionOutcome, ActionResult};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};

/// Who the Events say reported them.
pub const REPORTING_CONTROLLER: &str = "causely.io/executor";
/// Events of cluster-scoped targets (nodes) go where kubectl puts them.
const CLUSTER_SCOPED_EVENTS_NAMESPACE: &str = "default";
/// events.k8s.io/v1 refuses longer notes.
const MAX_NOTE_BYTES: usize = 1024;

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max.saturating_sub(3);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

/// The Event for one decision (pure).
pub fn event(action: &Action, result: &ActionResult, regarding: ObjectReference, instance: &str) -> Event {
    let (reason, type_, detail) = match &result.outcome {
        ActionOutcome::Applied {} => ("RemediationApplied", "Normal", None),
        ActionOutcome::Rejected { reason } => ("RemediationRejected", "Warning", Some(reason.as_str())),
        ActionOutcome::Failed { reason } => ("RemediationFailed", "Warning", Some(reason.as_str())),
    };
    let mut note = format!(
        "{}{} {}: {} (action {}, requested by {}: {})",
        action.kind.name(),
        if result.dry_run { " (dry run)" } else { "" },
        crate::decide::outcome_word(&result.outcome),
        detail.unwrap_or("done"),
        action.id,
        action.requester,
        action.reason,
    );
    note = truncate(&note, MAX_NOTE_BYTES);
    let namespace = regarding.namespace.clone().unwrap_or_else(|| CLUSTER_SCOPED_EVENTS_NAMESPACE.to_owned());
    Event {
        metadata: ObjectMeta {
            generate_name: Some("causely-executor-".to_owned()),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        action: Some(action.kind.name().to_owned()),
        reason: Some(reason.to_owned()),
        type_: Some(type_.to_owned()),
        note: Some(note),
        regarding: Some(regarding),
        reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
        reporting_instance: Some(truncate(instance, 128)),
        ..Event::default()
    }
}

/// Creates the Event; the error is the API server's one-line answer.
pub async fn record(client: &Client, event: &Event) -> Result<(), String> {
    let namespace = event.metadata.namespace.as_deref().unwrap_or(CLUSTER_SCOPED_EVENTS_NAMESPACE);
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), event)
        .await
        .map(|_| ())
        .map_err(|e| crate::kube_actions::KubeActionError::from(e).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use causely_model::{ActionId, ActionKind, UnixMillis};

    fn action() -> Action {
        Action {
            id: ActionId("a-1".into()),
            kind: ActionKind::Cordon {},
            target: "node/n1".parse().unwrap(),
            reason: "disk pressure".into(),
            requester: "cli:alice".into(),
            expires: UnixMillis(1),
            dry_run: false,
        }
    }

    #[test]
    fn a_refusal_is_a_warning_with_the_reason_and_node_events_go_to_default() {
        let result = ActionResult {
            id: ActionId("a-1".into()),
            outcome: ActionOutcome::Rejected { reason: "action cordon is not enabled".into() },
            dry_run: false,
            finished: UnixMillis(2),
        };
        let e = event(&action(), &result, crate::kube_actions::reference(&action().target), "exec-0");
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.reason.as_deref(), Some("RemediationRejected"));
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            e.note.as_deref(),
            Some("cordon rejected: action cordon is not enabled (action a-1, requested by cli:alice: disk pressure)")
        );
    }

    #[test]
    fn long_notes_are_cut_to_what_the_api_server_accepts() {
        let mut a = action();
        a.reason = "\u{e9}".repeat(1000);
        let result = ActionResult {
            id: a.id.clone(),
            outcome: ActionOutcome::Applied {},
            dry_run: true,
            finished: UnixMillis(2),
        };
        let e = event(&a, &result, crate::kube_actions::reference(&a.target), "exec-0");
        let note = e.note.unwrap();
        assert!(note.len() <= MAX_NOTE_BYTES && note.ends_with("..."), "{}", note.len());
        assert!(note.starts_with("cordon (dry run) applied: done"), "{note}");
    }
}
