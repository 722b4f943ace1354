//! `kubectl causely audit-permissions`: reads every RBAC object and Causely's workloads from the
//! cluster (or rendered YAML with `--from-file`), and reports drift from a baseline, risky
//! permissions and pod security findings. Exit 1 when a finding reaches `--fail-on`.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::Path;

use causely_model::Severity;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::Client;
use kube::api::{Api, ListParams};
use kube::discovery::Discovery;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::audit::format;
use crate::audit::grants::{Catalogue, expand_all};
use crate::audit::report::{Expected, audit};
use crate::audit::snapshot::{Scoped, Snapshot};
use crate::baseline::Baseline;
use crate::cli::{AuditArgs, AuditFormat, FailOn};
use crate::commands::install;
use crate::exit::{Failure, Outcome, api_failure};
use crate::render::rbac;
use crate::render::settings::Settings;
use crate::{cluster, kubeconfig, options};

/// Reads rendered objects from a YAML (multi-document, or a `List`) or JSON file.
pub fn read_objects(path: &Path) -> Result<Vec<serde_json::Value>, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&text).map_err(|e| {
        let e = e.to_string();
        Failure::Usage(format!("{} is not YAML: {}", path.display(), e.lines().next().unwrap_or_default()))
    })?;
    let mut out = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        match doc["items"].as_array() {
            Some(items) if doc["kind"] == "List" => out.extend(items.iter().cloned()),
            _ if doc["kind"].is_string() => out.push(doc),
            _ => {
                return Err(Failure::Usage(format!(
                    "{} holds a document that is not a Kubernetes object",
                    path.display()
                )));
            }
        }
    }
    Ok(out)
}

async fn list<K>(api: Api<K>, what: &str) -> Result<Vec<serde_json::Value>, Failure>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    K: k8s_openapi::Resource,
{
    let items = api.list(&ListParams::default()).await.map_err(|e| api_failure(format!("cannot list {what}"), e))?;
    Ok(items
        .items
        .into_iter()
        .filter_map(|item| {
            let mut value = serde_json::to_value(item).ok()?;
            value["kind"] = serde_json::json!(<K as k8s_openapi::Resource>::KIND);
            Some(value)
        })
        .collect())
}

/// Every RBAC object in the cluster and Causely's workloads in `namespace`.
async fn read_cluster(client: &Client, namespace: &str) -> Result<Snapshot, Failure> {
    let mut objects = Vec::new();
    objects.extend(list(Api::<ClusterRole>::all(client.clone()), "ClusterRoles").await?);
    objects.extend(list(Api::<ClusterRoleBinding>::all(client.clone()), "ClusterRoleBindings").await?);
    objects.extend(list(Api::<Role>::all(client.clone()), "Roles").await?);
    objects.extend(list(Api::<RoleBinding>::all(client.clone()), "RoleBindings").await?);
    objects.extend(list(Api::<DaemonSet>::namespaced(client.clone(), namespace), "DaemonSets").await?);
    objects.extend(list(Api::<Deployment>::namespaced(client.clone(), namespace), "Deployments").await?);
    objects.extend(list(Api::<StatefulSet>::namespaced(client.clone(), namespace), "StatefulSets").await?);
    Snapshot::from_objects(&objects).map_err(Failure::CouldNotRun)
}

/// What the API server serves, for expanding wildcards.
async fn catalogue(client: &Client) -> Result<Catalogue, Failure> {
    let discovery = Discovery::new(client.clone()).run().await.map_err(|e| api_failure("API discovery", e))?;
    let mut resources = Vec::new();
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            for (sub, sub_caps) in &caps.subresources {
                resources.push((
                    resource.group.clone(),
                    format!("{}/{}", resource.plural, sub.plural),
                    sub_caps.operations.clone(),
                ));
            }
            resources.push((resource.group, resource.plural, caps.operations));
        }
    }
    Ok(Catalogue { resources })
}

/// The release's documented additions to the published permissions, as grants.
fn documented_additions(namespace: &str) -> BTreeSet<Scoped> {
    let settings = Settings { namespace: namespace.to_owned(), ..Settings::defaults() };
    let (role, _) = rbac::mediator_lease_role(&settings);
    expand_all(role.rules.iter().flatten(), &Catalogue::default())
        .into_iter()
        .map(|grant| Scoped { namespace: Some(namespace.to_owned()), grant })
        .collect()
}

/// A baseline by name: `seed`, `release` (for the recorded settings when a cluster is at hand,
/// else the defaults), `installed` (what the cluster grants now; needs a cluster), or a path.
pub async fn expected(
    spec: &str,
    namespace: &str,
    client: Option<&Client>,
    catalogue: &Catalogue,
) -> Result<Expected, Failure> {
    match spec {
        "seed" => {
            let seed = Baseline::seed().map_err(|e| Failure::CouldNotRun(e.to_string()))?;
            Ok(Expected::published(&seed, documented_additions(namespace)))
        }
        "release" => {
            let recorded = match client {
                Some(client) => cluster::read_record(client, namespace).await?.map(|r| r.settings),
                None => None,
            };
            let settings =
                options::resolve(recorded.unwrap_or_else(Settings::defaults), namespace, &Default::default())?;
            let objects: Vec<serde_json::Value> = install::release(&settings)?.into_iter().map(|m| m.object).collect();
            let snapshot = Snapshot::from_objects(&objects).map_err(Failure::CouldNotRun)?;
            Ok(Expected::from_snapshot("release", &snapshot, namespace, catalogue))
        }
        "installed" => {
            let client = client.ok_or_else(|| Failure::Usage("`installed` needs a cluster".into()))?;
            Ok(Expected::from_snapshot("installed", &read_cluster(client, namespace).await?, namespace, catalogue))
        }
        path => {
            let snapshot = Snapshot::from_objects(&read_objects(Path::new(path))?).map_err(Failure::Usage)?;
            Ok(Expected::from_snapshot(path, &snapshot, namespace, catalogue))
        }
    }
}

/// A client and the API server's discovery, for audits and diffs that read the cluster.
pub async fn connect(flags: &crate::cli::ClusterFlags) -> Result<(Client, Catalogue), Failure> {
    let (client, _) = kubeconfig::client(flags).await?;
    let catalogue = catalogue(&client).await?;
    Ok((client, catalogue))
}

pub async fn run(args: AuditArgs) -> Result<Outcome, Failure> {
    let namespace = &args.namespace.namespace;
    let offline = !args.from_file.is_empty();
    let (actual, catalogue, client) = if offline {
        let mut objects = Vec::new();
        for path in &args.from_file {
            objects.extend(read_objects(path)?);
        }
        (Snapshot::from_objects(&objects).map_err(Failure::Usage)?, Catalogue::default(), None)
    } else {
        let (client, catalogue) = connect(&args.cluster).await?;
        (read_cluster(&client, namespace).await?, catalogue, Some(client))
    };
    let expected = expected(&args.baseline, namespace, client.as_ref(), &catalogue).await?;
    let report = audit(&actual, &expected, namespace, &catalogue);
    let fail_on = match args.fail_on {
        FailOn::None => None,
        FailOn::Low => Some(Severity::Low),
        FailOn::Medium => Some(Severity::Medium),
        FailOn::High => Some(Severity::High),
        FailOn::Critical => Some(Severity::Critical),
    };
    let text = match args.output {
        AuditFormat::Table => format::table(&report, fail_on, std::io::stdout().is_terminal()),
        AuditFormat::Json => format::json(&report, fail_on),
        AuditFormat::Markdown => format::markdown(&report, fail_on),
        AuditFormat::Sarif => format::sarif(&report),
    };
    crate::out::print(&text);
    let failed = fail_on.is_some_and(|t| report.worst().is_some_and(|w| w >= t));
    Ok(if failed { Outcome::Problem } else { Outcome::Clean })
}
