//! Cluster I/O for the lifecycle commands: server-side apply, delete and read of rendered
//! manifests, and reading the install record.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::core::{ApiResource, GroupVersionKind};

use crate::exit::{Failure, api_failure};
use crate::record::{self, Record};
use crate::render::Manifest;

/// The field manager of every object this plugin applies.
pub const FIELD_MANAGER: &str = "kubectl-causely";

fn api_for(client: &Client, manifest: &Manifest) -> Api<DynamicObject> {
    let (group, version) = manifest.api_version.split_once('/').unwrap_or(("", manifest.api_version.as_str()));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &manifest.kind));
    match &manifest.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

fn failed(action: &str, manifest: &Manifest, err: kube::Error) -> Failure {
    api_failure(format!("{action} {}", manifest.key()), err)
}

/// The live object, if it exists.
pub async fn get(client: &Client, manifest: &Manifest) -> Result<Option<DynamicObject>, Failure> {
    api_for(client, manifest).get_opt(&manifest.name).await.map_err(|e| failed("reading", manifest, e))
}

/// Server-side applies one object (as a dry run when asked); returns whether the stored object
/// changed (its resourceVersion moved). The answer means nothing for a dry run.
pub async fn apply(client: &Client, manifest: &Manifest, dry_run: bool) -> Result<bool, Failure> {
    let api = api_for(client, manifest);
    let object: DynamicObject = serde_json::from_value(manifest.object.clone())
        .map_err(|e| Failure::CouldNotRun(format!("{}: {e}", manifest.key())))?;
    // A dry run changes nothing, so only a real apply needs the version it started from.
    let before = if dry_run { None } else { get(client, manifest).await?.and_then(|o| o.metadata.resource_version) };
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    let after = api
        .patch(&manifest.name, &params, &Patch::Apply(&object))
        .await
        .map_err(|e| failed(if dry_run { "validating" } else { "applying" }, manifest, e))?;
    Ok(before != after.metadata.resource_version)
}

/// Deletes one object (its dependents are collected in the background); returns false when it
/// was already gone.
pub async fn delete(client: &Client, manifest: &Manifest) -> Result<bool, Failure> {
    let params = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
    match api_for(client, manifest).delete(&manifest.name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(failed("deleting", manifest, e)),
    }
}

/// The install record in `namespace`, if Causely is installed there.
pub async fn read_record(client: &Client, namespace: &str) -> Result<Option<Record>, Failure> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let map = maps
        .get_opt(record::NAME)
        .await
        .map_err(|e| api_failure(format!("reading the install record in namespace {namespace}"), e))?;
    map.map(|m| Record::from_config_map(&m).map_err(|e| Failure::CouldNotRun(e.to_string()))).transpose()
}

/// Namespaces the release creates that do not exist yet: the API server cannot validate objects
/// in them ahead of their creation.
async fn missing_namespaces(client: &Client, manifests: &[Manifest]) -> Result<Vec<String>, Failure> {
    let mut missing = Vec::new();
    for manifest in manifests {
        if manifest.kind == "Namespace" && get(client, manifest).await?.is_none() {
            missing.push(manifest.name.clone());
        }
    }
    Ok(missing)
}

/// Validates every object with a server-side dry run (admission, schema, permissions); reports
/// each as validated, or as skipped when its namespace does not exist yet.
pub async fn validate_all(
    client: &Client,
    manifests: &[Manifest],
    mut report: impl FnMut(&Manifest, bool),
) -> Result<(), Failure> {
    let missing = missing_namespaces(client, manifests).await?;
    for manifest in manifests {
        let skip = manifest.namespace.as_ref().is_some_and(|ns| missing.contains(ns));
        if !skip {
            apply(client, manifest, true).await?;
        }
        report(manifest, !skip);
    }
    Ok(())
}

/// Applies a release in order, after validating it all on the server first, so that an object the
/// API server would refuse (admission, schema, permission) is found before anything changes.
pub async fn apply_all(
    client: &Client,
    manifests: &[Manifest],
    mut report: impl FnMut(&Manifest, bool),
) -> Result<(), Failure> {
    validate_all(client, manifests, |_, _| {}).await?;
    for manifest in manifests {
        let changed = apply(client, manifest, false).await?;
        report(manifest, changed);
    }
    Ok(())
}
