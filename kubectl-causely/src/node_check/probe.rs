//! The cluster side of the node check: a temporary namespace, one check pod per group of alike
//! nodes, waiting for them (bounded), and deleting the namespace again, also on Ctrl-C and when
//! something fails. Every failure to create or run a pod becomes that node's failed check.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use tokio::time::Instant;

use super::{Group, NodeFacts, Outcome, Target};
use crate::baseline::Component;
use crate::checks::CheckResult;
use crate::exit::Failure;
use crate::render::settings::Settings;

/// How often the pods' status is read while waiting.
const POLL: Duration = Duration::from_secs(1);
/// How long the namespace may take to go before the command says it is still there.
const CLEANUP: Duration = Duration::from_secs(60);

/// The API server's own message for a failed call.
fn message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// Runs the agent's check on one node of each group and returns every group's lines, in the order
/// of [`super::plan`]. `Err` only when interrupted (the namespace is deleted first).
pub async fn run(
    client: &Client,
    settings: &Settings,
    nodes: &[Node],
    timeout: Duration,
) -> Result<Vec<CheckResult>, Failure> {
    let facts: Vec<NodeFacts> = nodes.iter().map(NodeFacts::of).collect();
    let groups = super::plan(&facts, settings.values.agent.node_selector.as_ref());
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    let targets: Vec<&str> = groups
        .iter()
        .filter_map(|g| match &g.target {
            Target::Check(node) => Some(node.as_str()),
            Target::Skip(_) => None,
        })
        .collect();
    if !targets.is_empty() {
        // Listening before the namespace exists, so that a Ctrl-C from here on cleans it up.
        let interrupt = interrupted();
        tokio::pin!(interrupt);
        outcomes = match create_namespace(client).await {
            Err(why) => targets
                .iter()
                .map(|node| {
                    let outcome = Outcome::Failed {
                        description: format!("cannot check {node}: cannot create a namespace for the check pods: {why}"),
                        hint: "the node check needs to create and delete namespaces and create pods; ask a cluster administrator".to_owned(),
                    };
                    ((*node).to_owned(), outcome)
                })
                .collect(),
            Ok(namespace) => {
                let checked = tokio::select! {
                    outcomes = check_nodes(client, settings, &namespace, &targets, timeout) => Ok(outcomes),
                    () = &mut interrupt => Err(()),
                };
                delete_namespace(client, &namespace, targets.len()).await;
                checked.map_err(|()| {
                    Failure::CouldNotRun(format!("interrupted; the check's namespace {namespace} is deleted"))
                })?
            }
        };
    }
    Ok(groups.iter().flat_map(|g| super::results(g, node_of(g).and_then(|n| outcomes.get(n)))).collect())
}

fn node_of(group: &Group) -> Option<&str> {
    match &group.target {
        Target::Check(node) => Some(node),
        Target::Skip(_) => None,
    }
}

/// A fresh namespace that admits the agent's posture (host mounts need Pod Security "privileged").
async fn create_namespace(client: &Client) -> Result<String, String> {
    let mut labels = super::labels();
    labels.insert("pod-security.kubernetes.io/enforce".to_owned(), "privileged".to_owned());
    let namespace = Namespace {
        metadata: ObjectMeta {
            generate_name: Some("causely-node-check-".to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let created = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .map_err(|e| message(&e))?;
    created.metadata.name.ok_or_else(|| "the API server named no namespace".to_owned())
}

/// The name of the check pod of the `i`-th node checked.
fn pod_name(i: usize) -> String {
    format!("check-{i}")
}

/// Deletes the check pods at once and then the namespace, and waits, bounded, until it is gone; what
/// cannot be done is said on stderr (stdout may be a JSON document).
async fn delete_namespace(client: &Client, namespace: &str, pods: usize) {
    // At once (grace period 0): a pod whose image pull hangs would otherwise hold the namespace until
    // the kubelet gets to it; finished pods go at once anyway, and the kubelet stops what is left.
    let at_once = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::background() };
    let check_pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for i in 0..pods {
        // The namespace's deletion removes whatever this could not.
        let _ = check_pods.delete(&pod_name(i), &at_once).await;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Err(err) = namespaces.delete(namespace, &DeleteParams::background()).await {
        eprintln!(
            "warning: cannot delete the node check's namespace {namespace}: {}; delete it with kubectl delete namespace {namespace}",
            message(&err)
        );
        return;
    }
    let gone = async {
        let deadline = Instant::now() + CLEANUP;
        while Instant::now() < deadline {
            if let Ok(None) = namespaces.get_opt(namespace).await {
                return true;
            }
            tokio::time::sleep(POLL).await;
        }
        false
    };
    // Another Ctrl-C stops the waiting, not the deletion.
    let gone = tokio::select! {
        gone = gone => gone,
        () = interrupted() => false,
    };
    if !gone {
        eprintln!("warning: the node check's namespace {namespace} is still being deleted");
    }
}

/// Resolves on Ctrl-C; never when no handler can be installed (Ctrl-C then ends the process as usual).
fn interrupted() -> impl std::future::Future<Output = ()> {
    let handler = crate::egress::tail::interrupted().ok();
    async move {
        match handler {
            Some(interrupt) => interrupt.await,
            None => std::future::pending().await,
        }
    }
}

/// One pod per node, all at once; each node's outcome once its pod finished, failed, or ran out of time.
async fn check_nodes(
    client: &Client,
    settings: &Settings,
    namespace: &str,
    targets: &[&str],
    timeout: Duration,
) -> BTreeMap<String, Outcome> {
    let deadline = Instant::now() + timeout;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let image = settings.image(Component::Agent);
    let mut outcomes = BTreeMap::new();
    let mut waiting: BTreeMap<String, &str> = BTreeMap::new();
    for (i, node) in targets.iter().enumerate() {
        let name = pod_name(i);
        let pod = super::check_pod(settings, namespace, &name, node, timeout);
        match create_pod(&pods, &pod, deadline).await {
            Ok(()) => {
                waiting.insert(name, node);
            }
            Err(why) => {
                let outcome = Outcome::Failed {
                    description: format!("cannot create the check pod on {node}: {why}"),
                    hint: "the node check creates pods in a namespace of its own that enforces Pod Security \"privileged\"; the caller needs create on pods, and admission must admit the agent's posture".to_owned(),
                };
                outcomes.insert((*node).to_owned(), outcome);
            }
        }
    }
    let mut last_seen: BTreeMap<String, Pod> = BTreeMap::new();
    while !waiting.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        // A failed read is retried at the next poll; the deadline bounds the wait.
        let Ok(list) = pods.list(&ListParams::default()).await else { continue };
        for pod in list.items {
            let Some(name) = pod.metadata.name.clone() else { continue };
            let Some(node) = waiting.get(&name).copied() else { continue };
            if let Some(outcome) = super::judge(&pod, node, &image) {
                outcomes.insert(node.to_owned(), outcome);
                waiting.remove(&name);
            } else {
                last_seen.insert(name, pod);
            }
        }
    }
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    for (name, node) in waiting {
        let warning = last_warning(&events, &name).await;
        let outcome = super::timed_out(last_seen.get(&name), node, timeout, warning.as_deref());
        outcomes.insert(node.to_owned(), outcome);
    }
    outcomes
}

/// Creates the pod; a namespace this new may not have its default ServiceAccount yet (the admission
/// of every pod looks it up), so that refusal is retried until the deadline.
async fn create_pod(pods: &Api<Pod>, pod: &Pod, deadline: Instant) -> Result<(), String> {
    loop {
        match pods.create(&PostParams::default(), pod).await {
            Ok(_) => return Ok(()),
            Err(err) => {
                let why = message(&err);
                if !why.contains("serviceaccount") || Instant::now() + POLL >= deadline {
                    return Err(why);
                }
            }
        }
        tokio::time::sleep(POLL / 2).await;
    }
}

/// The newest Warning event about the pod, if the caller may read events.
async fn last_warning(events: &Api<Event>, pod: &str) -> Option<String> {
    let selector = format!("involvedObject.name={pod},type=Warning");
    let list = events.list(&ListParams::default().fields(&selector)).await.ok()?;
    list.items
        .into_iter()
        .max_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)))
        .map(|e| format!("{}: {}", e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
}
