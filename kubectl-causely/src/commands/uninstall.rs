//! `kubectl causely uninstall`: deletes every object the install record lists, newest first, and
//! waits for the pods to go. PersistentVolumeClaims (the mediator's ledger, VictoriaMetrics' data)
//! and the namespace that holds them stay unless `--purge`; the kept namespace loses the
//! `part-of` label but keeps `managed-by`, so that a later `--purge` can still remove it.
//! Running it again when nothing is left is not an error.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};

use crate::cli::UninstallArgs;
use crate::exit::{Failure, Outcome, api_failure};
use crate::render::meta;
use crate::{cluster, kubeconfig};

/// How long uninstall waits for the components' pods to terminate.
const POD_GRACE: Duration = Duration::from_secs(120);

fn failed(what: &str, e: kube::Error) -> Failure {
    api_failure(what, e)
}

fn ours(ns: &Namespace) -> bool {
    ns.metadata.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/managed-by")).map(String::as_str)
        == Some(meta::MANAGED_BY)
}

/// Waits until nothing matching `selector` is left, for at most [`POD_GRACE`].
async fn gone<K>(api: &Api<K>, selector: &str, still: &str) -> Result<(), Failure>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + POD_GRACE;
    loop {
        let left = api.list(&ListParams::default().labels(selector)).await.map_err(|e| failed("listing", e))?;
        if left.items.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::CouldNotRun(format!(
                "{} {still} after {POD_GRACE:?}; run uninstall again later",
                left.items.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run(args: UninstallArgs) -> Result<Outcome, Failure> {
    let (client, _) = kubeconfig::client(&args.cluster).await?;
    let namespace = &args.namespace.namespace;
    let selector = format!("app.kubernetes.io/part-of={}", meta::PART_OF);
    let record = cluster::read_record(&client, namespace).await?;
    let mut did_something = false;
    if let Some(record) = &record {
        // Workloads go before the identities and policies they use; the record goes last, so that
        // an interrupted uninstall can be run again.
        for manifest in record.objects.iter().rev() {
            if manifest.kind == "Namespace" || manifest.kind == "PersistentVolumeClaim" {
                continue;
            }
            if cluster::delete(&client, manifest).await? {
                crate::outln!("{} deleted", manifest.key());
            }
        }
        cluster::delete(&client, &record.to_manifest()).await?;
        did_something = true;
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    gone(&pods, &selector, "pod(s) of the install are still terminating").await?;

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let kept = claims.list(&ListParams::default().labels(&selector)).await.map_err(|e| failed("listing claims", e))?;
    let names: Vec<String> = kept.items.iter().filter_map(|c| c.metadata.name.clone()).collect();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = namespaces.get_opt(namespace).await.map_err(|e| failed("reading the namespace", e))?;
    if args.purge {
        for name in &names {
            claims.delete(name, &DeleteParams::default()).await.map_err(|e| failed("deleting a claim", e))?;
            crate::outln!("PersistentVolumeClaim/{namespace}/{name} deleted");
            did_something = true;
        }
        gone(&claims, &selector, "claim(s) are still being deleted").await?;
        if ns.as_ref().is_some_and(ours) {
            namespaces
                .delete(namespace, &DeleteParams::default())
                .await
                .map_err(|e| failed("deleting the namespace", e))?;
            // A terminating namespace refuses new objects: wait, so that an install can follow.
            let deadline = tokio::time::Instant::now() + POD_GRACE;
            while namespaces.get_opt(namespace).await.map_err(|e| failed("reading the namespace", e))?.is_some() {
                if tokio::time::Instant::now() >= deadline {
                    return Err(Failure::CouldNotRun(format!(
                        "namespace {namespace} is still terminating after {POD_GRACE:?}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            crate::outln!("Namespace/{namespace} deleted");
            did_something = true;
        }
    } else if ns.as_ref().is_some_and(ours) {
        let unlabel = serde_json::json!({"metadata": {"labels": {
            "app.kubernetes.io/part-of": null,
            "app.kubernetes.io/version": null,
        }}});
        namespaces
            .patch(namespace, &PatchParams::default(), &Patch::Merge(&unlabel))
            .await
            .map_err(|e| failed("unlabelling the namespace", e))?;
        if did_something {
            if names.is_empty() {
                crate::outln!("kept Namespace/{namespace}; delete it with --purge");
            } else {
                crate::outln!(
                    "kept in namespace {namespace}: PersistentVolumeClaim {}; delete them with --purge",
                    names.join(", ")
                );
            }
        }
    }
    if !did_something {
        crate::outln!("Causely is not installed in namespace {namespace}; nothing to do");
    }
    Ok(Outcome::Clean)
}
