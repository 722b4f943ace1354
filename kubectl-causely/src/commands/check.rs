//! `kubectl causely check --pre` (can this cluster take an install, may the caller make it, and
//! does the agent work on its nodes?) and `kubectl causely check` (is the install healthy, and do
//! its permissions equal the release's?). Exit 1 when any check fails.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};

use crate::checks::{self, CheckResult, MIN_KERNEL, MIN_KUBERNETES_MINOR};
use crate::cli::{CheckArgs, OutputFormat};
use crate::commands::install;
use crate::exit::{Failure, Outcome, api_failure};
use crate::render::settings::Settings;
use crate::render::{Manifest, meta};
use crate::{cluster, kubeconfig, node_check, options, rollout};

const API: &str = "kubernetes-api";
const PERMISSIONS: &str = "permissions";
const NODES: &str = "nodes";
const POD_SECURITY: &str = "pod-security";
const INSTALL: &str = "causely-install";
const RBAC: &str = "causely-rbac";

fn could_not(what: &str, e: kube::Error) -> Failure {
    api_failure(what, e)
}

async fn api_checks(client: &Client, out: &mut Vec<CheckResult>) -> Result<(), Failure> {
    let info = client.apiserver_version().await.map_err(|e| could_not("cannot reach the API server", e))?;
    out.push(CheckResult::ok(API, format!("can reach the API server ({})", info.git_version)));
    match checks::kubernetes_minor(&info.major, &info.minor) {
        Some(minor) if minor >= MIN_KUBERNETES_MINOR => out.push(CheckResult::ok(
            API,
            format!("Kubernetes 1.{minor} is supported (1.{MIN_KUBERNETES_MINOR} or newer)"),
        )),
        _ => out.push(CheckResult::error(
            API,
            format!("Kubernetes {} is not supported", info.git_version),
            format!("upgrade the cluster to 1.{MIN_KUBERNETES_MINOR} or newer"),
        )),
    }
    Ok(())
}

/// One SelfSubjectAccessReview per (resource, namespace, verb) the install needs.
async fn permission_checks(client: &Client, manifests: &[Manifest], out: &mut Vec<CheckResult>) -> Result<(), Failure> {
    let mut needed = BTreeSet::new();
    for m in manifests {
        let (group, version) = m.api_version.split_once('/').unwrap_or(("", m.api_version.as_str()));
        let plural = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &m.kind)).plural;
        for verb in ["create", "patch"] {
            needed.insert((group.to_owned(), plural.clone(), m.namespace.clone(), verb));
        }
    }
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut missing = Vec::new();
    for (group, resource, namespace, verb) in &needed {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(group.clone()),
                    resource: Some(resource.clone()),
                    namespace: namespace.clone(),
                    verb: Some((*verb).to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer =
            reviews.create(&PostParams::default(), &review).await.map_err(|e| could_not("access review", e))?;
        if !answer.status.is_some_and(|s| s.allowed) {
            let group = if group.is_empty() { "core" } else { group };
            let scope = namespace.as_deref().map(|n| format!(" in {n}")).unwrap_or_default();
            missing.push(format!("{verb} {group}/{resource}{scope}"));
        }
    }
    if missing.is_empty() {
        out.push(CheckResult::ok(
            PERMISSIONS,
            format!("can create and update all {} kinds of object the install needs", needed.len() / 2),
        ));
    } else {
        out.push(CheckResult::error(
            PERMISSIONS,
            format!("missing {} permission(s) the install needs: {}", missing.len(), missing.join(", ")),
            "ask a cluster administrator to grant them, or to run the install",
        ));
    }
    Ok(())
}

async fn list_nodes(client: &Client) -> Result<Vec<Node>, Failure> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| could_not("listing nodes", e))?;
    Ok(nodes.items)
}

fn node_checks(nodes: &[Node], out: &mut Vec<CheckResult>) {
    let mut too_old = Vec::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let release = node.status.as_ref().and_then(|s| s.node_info.as_ref()).map(|i| i.kernel_version.clone());
        match release.as_deref().and_then(checks::kernel_version) {
            Some(v) if v >= MIN_KERNEL => {}
            _ => too_old.push(format!("{name} ({})", release.as_deref().unwrap_or("unknown"))),
        }
    }
    if too_old.is_empty() {
        out.push(CheckResult::ok(
            NODES,
            format!("all {} nodes run kernel {}.{} or newer", nodes.len(), MIN_KERNEL.0, MIN_KERNEL.1),
        ));
    } else {
        out.push(CheckResult::error(
            NODES,
            format!("nodes with a kernel older than {}.{}: {}", MIN_KERNEL.0, MIN_KERNEL.1, too_old.join(", ")),
            "the agent's eBPF programs will not load there; upgrade those nodes or keep the agent off them with a values-file nodeSelector",
        ));
    }
}

async fn pod_security_check(client: &Client, settings: &Settings, out: &mut Vec<CheckResult>) -> Result<(), Failure> {
    let ns = Api::<Namespace>::all(client.clone())
        .get_opt(&settings.namespace)
        .await
        .map_err(|e| could_not("reading the namespace", e))?;
    let enforce = ns
        .as_ref()
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get("pod-security.kubernetes.io/enforce"))
        .cloned();
    match (ns, enforce.as_deref()) {
        (None, _) => out.push(CheckResult::ok(
            POD_SECURITY,
            format!("namespace {} will be created with enforce=privileged", settings.namespace),
        )),
        (Some(_), Some("privileged")) => out.push(CheckResult::ok(
            POD_SECURITY,
            format!("namespace {} admits the agent (enforce=privileged)", settings.namespace),
        )),
        (Some(_), None) => out.push(CheckResult::ok(
            POD_SECURITY,
            format!("namespace {} has no enforce label; the install sets enforce=privileged", settings.namespace),
        )),
        (Some(_), Some(level)) => out.push(CheckResult::error(
            POD_SECURITY,
            format!(
                "namespace {} enforces Pod Security {level:?}, which rejects the agent's host access",
                settings.namespace
            ),
            "install into a new namespace with -n, or allow the install to set enforce=privileged on this one",
        )),
    }
    Ok(())
}

async fn pre(client: &Client, settings: &Settings, node_timeout: Duration) -> Result<Vec<CheckResult>, Failure> {
    let mut out = Vec::new();
    api_checks(client, &mut out).await?;
    permission_checks(client, &install::release(settings)?, &mut out).await?;
    let nodes = list_nodes(client).await?;
    node_checks(&nodes, &mut out);
    pod_security_check(client, settings, &mut out).await?;
    // What the API cannot show (BTF, whether the programs load, the cgroup layout) the agent checks on
    // the nodes themselves, last because it takes longest.
    out.extend(node_check::probe::run(client, settings, &nodes, node_timeout).await?);
    Ok(out)
}

async fn post(client: &Client, namespace: &str) -> Result<Vec<CheckResult>, Failure> {
    let mut out = Vec::new();
    api_checks(client, &mut out).await?;
    let Some(record) = cluster::read_record(client, namespace).await? else {
        out.push(CheckResult::error(
            INSTALL,
            format!("Causely is installed in namespace {namespace}"),
            "run kubectl causely install, or pass -n",
        ));
        return Ok(out);
    };
    let settings = &record.settings;
    let this_release = env!("CARGO_PKG_VERSION");
    if settings.version == this_release {
        out.push(CheckResult::ok(INSTALL, format!("install found, release {}", settings.version)));
    } else {
        out.push(CheckResult::warning(
            INSTALL,
            format!("install is release {}, this plugin is {this_release}", settings.version),
            "run kubectl causely upgrade",
        ));
    }
    for health in rollout::health(client, settings).await? {
        match &health.problem {
            None => out.push(CheckResult::ok(
                INSTALL,
                format!("{} is ready ({}/{})", health.component, health.ready, health.desired),
            )),
            Some(problem) => out.push(CheckResult::error(
                INSTALL,
                format!("{} is not ready: {problem}", health.component),
                format!(
                    "kubectl causely status -n {namespace}; kubectl -n {namespace} describe {} {}",
                    health.kind.to_lowercase(),
                    health.name
                ),
            )),
        }
    }
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for expected in record.objects.iter().filter(|m| m.kind == "ClusterRole") {
        let want: ClusterRole =
            serde_json::from_value(expected.object.clone()).map_err(|e| Failure::CouldNotRun(e.to_string()))?;
        let live = roles.get_opt(&expected.name).await.map_err(|e| could_not("reading ClusterRoles", e))?;
        let diff = live.map(|l| checks::grant_diff(&want.rules.unwrap_or_default(), &l.rules.unwrap_or_default()));
        match diff {
            None => out.push(CheckResult::error(
                RBAC,
                format!("ClusterRole {} exists", expected.name),
                "re-run kubectl causely install or upgrade",
            )),
            Some(d) if d.is_empty() => out.push(CheckResult::ok(
                RBAC,
                format!("ClusterRole {} grants exactly the release's rules", expected.name),
            )),
            Some(d) => out.push(CheckResult::error(
                RBAC,
                format!("ClusterRole {} differs from the release: {}", expected.name, d.join(", ")),
                "kubectl causely upgrade restores it; kubectl causely audit-permissions shows who granted what",
            )),
        }
    }
    for expected in record.objects.iter().filter(|m| m.kind == "ClusterRoleBinding") {
        let want: ClusterRoleBinding =
            serde_json::from_value(expected.object.clone()).map_err(|e| Failure::CouldNotRun(e.to_string()))?;
        let live = bindings.get_opt(&expected.name).await.map_err(|e| could_not("reading ClusterRoleBindings", e))?;
        match live {
            Some(l) if l.role_ref == want.role_ref && l.subjects == want.subjects => out.push(CheckResult::ok(
                RBAC,
                format!("ClusterRoleBinding {} binds {} as released", expected.name, want.role_ref.name),
            )),
            _ => out.push(CheckResult::error(
                RBAC,
                format!("ClusterRoleBinding {} is missing or differs from the release", expected.name),
                "kubectl causely upgrade restores it",
            )),
        }
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    let mut absent = Vec::new();
    for expected in record.objects.iter().filter(|m| m.kind == "NetworkPolicy") {
        if policies.get_opt(&expected.name).await.map_err(|e| could_not("reading NetworkPolicies", e))?.is_none() {
            absent.push(expected.name.clone());
        }
    }
    if absent.is_empty() {
        out.push(CheckResult::ok(RBAC, format!("the NetworkPolicies confining {} are in place", meta::PART_OF)));
    } else {
        out.push(CheckResult::error(
            RBAC,
            format!("NetworkPolicies missing: {}", absent.join(", ")),
            "kubectl causely upgrade restores them",
        ));
    }
    Ok(out)
}

pub async fn run(args: CheckArgs) -> Result<Outcome, Failure> {
    let (client, _) = kubeconfig::client(&args.cluster).await?;
    let results = if args.pre {
        let settings = options::resolve(Settings::defaults(), &args.namespace.namespace, &args.settings)?;
        pre(&client, &settings, args.node_timeout).await?
    } else {
        post(&client, &args.namespace.namespace).await?
    };
    match args.output {
        OutputFormat::Text => crate::out!("{}", checks::report(&results)),
        OutputFormat::Json => {
            let doc = serde_json::json!({"success": checks::passed(&results), "checks": results});
            crate::outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
    }
    Ok(if checks::passed(&results) { Outcome::Clean } else { Outcome::Problem })
}
