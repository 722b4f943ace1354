//! The node check of `check --pre`: which nodes run the agent's own `causely-agent check`, the pod
//! that runs it there (the agent DaemonSet's rendered pod template: the posture, image and mounts
//! `install` deploys), and what that pod's status says about its node. Pure; [`probe`] does the
//! cluster I/O.

pub mod probe;

use std::collections::BTreeMap;
use std::time::Duration;

use causely_model::{NodeCheckReport, NodeCheckStatus};
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::checks::CheckResult;
use crate::render::settings::Settings;

/// The facts of a node that decide whether and where the check runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub name: String,
    pub kernel: String,
    pub os_image: String,
    /// `containerd://1.7.2`; kwok's fake nodes say `kwok`.
    pub runtime: String,
    pub architecture: String,
    pub operating_system: String,
    pub ready: bool,
    pub labels: BTreeMap<String, String>,
}

impl NodeFacts {
    pub fn of(node: &Node) -> NodeFacts {
        let status = node.status.as_ref();
        let info = status.and_then(|s| s.node_info.as_ref());
        let text =
            |f: fn(&k8s_openapi::api::core::v1::NodeSystemInfo) -> &String| info.map(f).cloned().unwrap_or_default();
        NodeFacts {
            name: node.metadata.name.clone().unwrap_or_default(),
            kernel: text(|i| &i.kernel_version),
            os_image: text(|i| &i.os_image),
            runtime: text(|i| &i.container_runtime_version),
            architecture: text(|i| &i.architecture),
            operating_system: text(|i| &i.operating_system),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            labels: node.metadata.labels.clone().unwrap_or_default(),
        }
    }

    fn key(&self) -> GroupKey {
        GroupKey {
            kernel: self.kernel.clone(),
            os_image: self.os_image.clone(),
            runtime: self.runtime.clone(),
            architecture: self.architecture.clone(),
        }
    }
}

/// Nodes alike in what the check depends on: one of them speaks for all.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    pub kernel: String,
    pub os_image: String,
    pub runtime: String,
    pub architecture: String,
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_unknown = |s: &str| if s.is_empty() { "unknown".to_owned() } else { s.to_owned() };
        write!(
            f,
            "kernel {}, {}, {}, {}",
            or_unknown(&self.kernel),
            or_unknown(&self.os_image),
            or_unknown(&self.runtime),
            or_unknown(&self.architecture)
        )
    }
}

/// A group of alike nodes and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub key: GroupKey,
    /// Every node of the group, by name.
    pub nodes: Vec<String>,
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Run the check on this node.
    Check(String),
    /// Nothing can run or would run there.
    Skip(String),
}

impl Group {
    /// The category its results are printed under.
    pub fn category(&self) -> String {
        const SHOWN: usize = 3;
        let mut names = self.nodes.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
        if self.nodes.len() > SHOWN {
            names.push_str(&format!(" and {} more", self.nodes.len() - SHOWN));
        }
        format!("node-check: {names}")
    }
}

/// Whether the agent DaemonSet would place a pod on a node with these labels.
fn selected(labels: &BTreeMap<String, String>, selector: Option<&BTreeMap<String, String>>) -> bool {
    selector.is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// One group per distinct (kernel, OS image, runtime, architecture), each checked on one Ready
/// Linux node the agent would run on (the first by name), or skipped with the reason.
pub fn plan(nodes: &[NodeFacts], agent_selector: Option<&BTreeMap<String, String>>) -> Vec<Group> {
    let mut groups: BTreeMap<GroupKey, Vec<&NodeFacts>> = BTreeMap::new();
    for node in nodes {
        groups.entry(node.key()).or_default().push(node);
    }
    groups
        .into_iter()
        .map(|(key, mut members)| {
            members.sort_by(|a, b| a.name.cmp(&b.name));
            let first = members[0];
            let target = if !key.runtime.contains("://") {
                Target::Skip(format!(
                    "container runtime {:?} is not a container runtime URL (no \"://\"): no container runs there (e.g. kwok's fake nodes)",
                    key.runtime
                ))
            } else if first.operating_system != "linux" {
                Target::Skip(format!("{} nodes: the agent runs on Linux only", first.operating_system))
            } else if let Some(node) = members.iter().find(|n| n.ready && selected(&n.labels, agent_selector)) {
                Target::Check(node.name.clone())
            } else if !members.iter().any(|n| n.ready) {
                Target::Skip("no node of this group is Ready".to_owned())
            } else {
                Target::Skip("the agent's nodeSelector (values file) selects none of these nodes".to_owned())
            };
            Group { key, nodes: members.iter().map(|n| n.name.clone()).collect(), target }
        })
        .collect()
}

/// Labels of everything the node check creates: a name to find it by, and no `part-of` label, so it
/// is never mistaken for part of an install.
pub fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "causely-node-check".to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), "kubectl-causely".to_owned()),
    ])
}

/// The pod that runs `causely-agent check` on `node`: the agent DaemonSet's own pod template (its
/// image, security context, host mounts and environment) with what makes it a one-shot check.
pub fn check_pod(settings: &Settings, namespace: &str, name: &str, node: &str, deadline: Duration) -> Pod {
    let template = crate::render::agent::daemon_set(settings).spec.map(|s| s.template).unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    spec.node_name = Some(node.to_owned());
    spec.restart_policy = Some("Never".to_owned());
    // Every taint: the check must reach each node the agent would, and nodeName skips the scheduler.
    spec.tolerations = Some(vec![Toleration { operator: Some("Exists".to_owned()), ..Toleration::default() }]);
    spec.active_deadline_seconds = Some(i64::try_from(deadline.as_secs().max(1)).unwrap_or(i64::MAX));
    // The agent's ServiceAccount does not exist in the check's namespace, and the check never calls
    // the API server.
    spec.service_account_name = Some("default".to_owned());
    spec.automount_service_account_token = Some(false);
    // The DaemonSet is node-critical so that the kubelet makes room for it; a check must never
    // evict a workload.
    spec.priority_class_name = None;
    spec.termination_grace_period_seconds = Some(1);
    for container in &mut spec.containers {
        container.args = Some(vec!["check".to_owned()]);
        container.termination_message_policy = Some("File".to_owned());
        // It serves nothing: no probes, no port.
        container.liveness_probe = None;
        container.readiness_probe = None;
        container.ports = None;
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// How a node's check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The agent ran and reported.
    Report(NodeCheckReport),
    /// The check could not run or report: one line, and what to do.
    Failed { description: String, hint: String },
}

fn failed(description: String, hint: impl Into<String>) -> Outcome {
    Outcome::Failed { description, hint: hint.into() }
}

/// Reasons a container waits for an image that will not come without a change.
const PULL_FAILURES: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
    "SignatureValidationFailed",
];
/// Reasons a container that has its image still cannot run.
const START_FAILURES: [&str; 6] = [
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
    "PreCreateHookError",
    "PostStartHookError",
];

/// `reason: message`, or whichever of them there is.
fn reason_and_message(reason: Option<&str>, message: Option<&str>) -> String {
    let parts: Vec<&str> = [reason, message].into_iter().flatten().map(str::trim).filter(|s| !s.is_empty()).collect();
    if parts.is_empty() { "no reason given".to_owned() } else { causely_runtime::one_line(&parts.join(": ")) }
}

/// What the pod's status says so far: `None` while the check is still on its way.
pub fn judge(pod: &Pod, node: &str, image: &str) -> Option<Outcome> {
    let status = pod.status.as_ref()?;
    let container = status.container_statuses.as_ref().and_then(|c| c.first());
    let state = container.and_then(|c| c.state.as_ref());
    if let Some(done) = state.and_then(|s| s.terminated.as_ref()) {
        let message = done.message.as_deref().unwrap_or_default();
        return Some(match serde_json::from_str::<NodeCheckReport>(message) {
            Ok(report) => Outcome::Report(report),
            Err(_) => {
                let said = if message.trim().is_empty() {
                    "no termination message".to_owned()
                } else {
                    format!("its termination message is not a check report: {:?}", truncate(message, 200))
                };
                failed(
                    format!(
                        "the check on {node} ended without a report (exit code {}, {}); {said}",
                        done.exit_code,
                        done.reason.as_deref().unwrap_or("no reason")
                    ),
                    format!("{image} must be the causely-agent image of this release (it has the check subcommand)"),
                )
            }
        });
    }
    if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let why = reason_and_message(waiting.reason.as_deref(), waiting.message.as_deref());
        if PULL_FAILURES.contains(&reason) {
            return Some(failed(
                format!("{node} cannot pull the agent image {image}: {why}"),
                format!("check --registry and --set image.agent, and that {node} can reach and trusts the registry"),
            ));
        }
        if START_FAILURES.contains(&reason) {
            return Some(failed(
                format!("the check could not start on {node}: {why}"),
                "the node's container runtime refused the agent's posture or mounts; the agent would fail the same way",
            ));
        }
    }
    if status.phase.as_deref() == Some("Failed") {
        return Some(failed(
            format!(
                "the check pod on {node} failed: {}",
                reason_and_message(status.reason.as_deref(), status.message.as_deref())
            ),
            "the kubelet refused or stopped it; the agent's pod would meet the same",
        ));
    }
    let unschedulable = status.conditions.as_ref().and_then(|conditions| {
        conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    });
    if let Some(condition) = unschedulable {
        return Some(failed(
            format!(
                "the check pod cannot be placed on {node}: {}",
                reason_and_message(condition.reason.as_deref(), condition.message.as_deref())
            ),
            "the agent's DaemonSet pod would not be placed there either",
        ));
    }
    None
}

/// The outcome of a check that did not finish in time: where it was, and the last thing the cluster
/// said about it (a Warning event), if anything.
pub fn timed_out(pod: Option<&Pod>, node: &str, timeout: Duration, last_warning: Option<&str>) -> Outcome {
    let status = pod.and_then(|p| p.status.as_ref());
    let state =
        status.and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first()).and_then(|c| c.state.as_ref());
    let mut at = match (state.and_then(|s| s.waiting.as_ref()), state.and_then(|s| s.running.as_ref())) {
        (Some(waiting), _) => format!(
            "its container is waiting ({})",
            reason_and_message(waiting.reason.as_deref(), waiting.message.as_deref())
        ),
        (None, Some(_)) => "its container is still running".to_owned(),
        (None, None) => format!("the pod is {}", status.and_then(|s| s.phase.as_deref()).unwrap_or("not started")),
    };
    if let Some(warning) = last_warning {
        at.push_str(&format!("; last warning: {}", causely_runtime::one_line(warning)));
    }
    failed(
        format!("the check on {node} did not finish within {}s: {at}", timeout.as_secs()),
        format!("give it longer with --node-timeout, or look at {node}'s kubelet and container runtime"),
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() > max { text.chars().take(max).collect::<String>() + "…" } else { text.to_owned() }
}

/// The lines of one group.
pub fn results(group: &Group, outcome: Option<&Outcome>) -> Vec<CheckResult> {
    let category = group.category();
    let alike = match group.nodes.len() {
        1 => String::new(),
        n => format!(", for {n} alike nodes"),
    };
    match (&group.target, outcome) {
        (Target::Skip(reason), _) => {
            vec![CheckResult::skipped(&category, format!("skipped ({}): {reason}", group.key))]
        }
        (Target::Check(node), None) => vec![CheckResult::error(
            &category,
            format!("the check on {node} has no outcome"),
            "this is a bug in kubectl-causely; please report it",
        )],
        (Target::Check(_), Some(Outcome::Failed { description, hint })) => {
            vec![CheckResult::error(&category, description.clone(), hint.clone())]
        }
        (Target::Check(node), Some(Outcome::Report(report))) => {
            let mut out = vec![CheckResult::ok(
                &category,
                format!("causely-agent {} checked {node}{alike} ({})", report.agent_version, group.key),
            )];
            out.extend(report.checks.iter().map(|c| {
                let hint = c.hint.clone().unwrap_or_default();
                match c.status {
                    NodeCheckStatus::Ok => CheckResult::ok(&category, c.description.clone()),
                    NodeCheckStatus::Warning => CheckResult::warning(&category, c.description.clone(), hint),
                    NodeCheckStatus::Error => CheckResult::error(&category, c.description.clone(), hint),
                }
            }));
            out
        }
    }
}

#[cfg(test)]
mod tests;
