//! `kubectl causely install`: render the release for the given settings, then print it
//! (`--dry-run`), validate it on the server (`--dry-run=server`), or apply it with server-side apply.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;

use crate::baseline::Baseline;
use crate::cli::{DryRun, InstallArgs, ManifestFormat};
use crate::exit::{Failure, Outcome};
use crate::kubeconfig;
use crate::render::settings::{Settings, parse_victoria_metrics};
use crate::render::{self, Format, Manifest, meta};

/// The field manager of every object this plugin applies.
pub const FIELD_MANAGER: &str = "kubectl-causely";
/// The ConfigMap that records an install's settings and inventory.
pub const RECORD_NAME: &str = "causely-install";

/// Turns the flags into validated settings.
pub fn settings(args: &InstallArgs) -> Result<Settings, Failure> {
    let usage = |e: render::settings::SettingsError| Failure::Usage(e.to_string());
    let settings = Settings {
        namespace: args.namespace.clone(),
        agent_mode: args.agent_mode,
        executor: args.executor.then_some(args.executor_rbac),
        mediator_storage: args.mediator_storage,
        victoria_metrics: parse_victoria_metrics(&args.victoria_metrics).map_err(usage)?,
        registry: args.registry.clone(),
        ..Settings::defaults()
    };
    settings.validate().map_err(usage)?;
    Ok(settings)
}

/// The rendered release plus the record of what was installed and how.
pub fn release(settings: &Settings) -> Result<Vec<Manifest>, Failure> {
    let baseline = Baseline::seed().map_err(|e| Failure::CouldNotRun(e.to_string()))?;
    let mut manifests = render::render(settings, &baseline).map_err(|e| Failure::Usage(e.to_string()))?;
    manifests.push(record(settings, &manifests)?);
    Ok(manifests)
}

/// The `causely-install` ConfigMap: the settings `upgrade` keeps and the objects it may prune.
fn record(settings: &Settings, manifests: &[Manifest]) -> Result<Manifest, Failure> {
    let inventory: Vec<String> = manifests.iter().map(Manifest::key).collect();
    let map = ConfigMap {
        metadata: meta::namespaced(settings, crate::baseline::Component::Mediator, RECORD_NAME),
        data: Some(BTreeMap::from([
            ("settings.json".to_owned(), json(settings)?),
            ("inventory.json".to_owned(), json(&inventory)?),
        ])),
        ..ConfigMap::default()
    };
    let mut manifest = Manifest::of(&map);
    if let Some(labels) = manifest.object.pointer_mut("/metadata/labels").and_then(|l| l.as_object_mut()) {
        labels.remove("app.kubernetes.io/name");
    }
    Ok(manifest)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(value).map_err(|e| Failure::CouldNotRun(format!("recording the install: {e}")))
}

fn api_for(client: &Client, manifest: &Manifest) -> Api<DynamicObject> {
    let (group, version) = match manifest.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", manifest.api_version.as_str()),
    };
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &manifest.kind));
    match &manifest.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Server-side applies one object; returns whether the stored object changed.
async fn apply(client: &Client, manifest: &Manifest, dry_run: bool) -> Result<bool, Failure> {
    let api = api_for(client, manifest);
    let object: DynamicObject = serde_json::from_value(manifest.object.clone())
        .map_err(|e| Failure::CouldNotRun(format!("{}: {e}", manifest.key())))?;
    let before = api.get_opt(&manifest.name).await.ok().flatten().and_then(|o| o.metadata.resource_version);
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    let after = api
        .patch(&manifest.name, &params, &Patch::Apply(&object))
        .await
        .map_err(|e| Failure::CouldNotRun(format!("applying {}: {e}", manifest.key())))?;
    Ok(before != after.metadata.resource_version)
}

pub async fn run(args: InstallArgs) -> Result<Outcome, Failure> {
    let settings = settings(&args)?;
    let manifests = release(&settings)?;
    if args.dry_run == Some(DryRun::Client) {
        let format = match args.output {
            ManifestFormat::Yaml => Format::Yaml,
            ManifestFormat::Json => Format::Json,
        };
        print!("{}", render::print(&manifests, format).map_err(Failure::CouldNotRun)?);
        return Ok(Outcome::Clean);
    }
    let (client, _) = kubeconfig::client(&args.cluster).await?;
    let namespace_exists = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .get_opt(&settings.namespace)
        .await
        .map_err(|e| Failure::CouldNotRun(format!("cannot reach the API server: {e}")))?
        .is_some();
    // Validate everything the API server can validate before changing anything, so that a
    // rejected object (admission, schema, permission) leaves the cluster as it was.
    for manifest in &manifests {
        if manifest.namespace.is_some() && !namespace_exists {
            continue;
        }
        apply(&client, manifest, true).await?;
    }
    if args.dry_run == Some(DryRun::Server) {
        for manifest in &manifests {
            println!("{} validated (server dry run)", manifest.key());
        }
        return Ok(Outcome::Clean);
    }
    for manifest in &manifests {
        let changed = apply(&client, manifest, false).await?;
        println!("{} {}", manifest.key(), if changed { "applied" } else { "unchanged" });
    }
    Ok(Outcome::Clean)
}
