//! Feeds the cluster index from kube-runtime watches of exactly the resources the mediator's
//! published ClusterRole grants (pods, nodes, services, events, and the workload kinds).

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node, Pod, ReplicationController, Service};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::index::{ClusterObject, ObjectKind};
use crate::state::Shared;

/// Starts one watch per kind; each runs until the process ends, re-listing with backoff after
/// errors (which are counted and logged, never fatal).
pub fn spawn_all(client: &Client, shared: &Arc<Shared>) {
    spawn::<Pod>(client, shared, ObjectKind::Pod);
    spawn::<Node>(client, shared, ObjectKind::Node);
    spawn::<Service>(client, shared, ObjectKind::Service);
    spawn::<CoreEvent>(client, shared, ObjectKind::Event);
    spawn::<Deployment>(client, shared, ObjectKind::Deployment);
    spawn::<ReplicaSet>(client, shared, ObjectKind::ReplicaSet);
    spawn::<ReplicationController>(client, shared, ObjectKind::ReplicationController);
    spawn::<Job>(client, shared, ObjectKind::Job);
    spawn::<CronJob>(client, shared, ObjectKind::CronJob);
    spawn::<StatefulSet>(client, shared, ObjectKind::StatefulSet);
    spawn::<DaemonSet>(client, shared, ObjectKind::DaemonSet);
}

fn spawn<K>(client: &Client, shared: &Arc<Shared>, kind: ObjectKind)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static + Into<ClusterObject>,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let shared = shared.clone();
    tokio::spawn(async move {
        // Served from the API server's watch cache: the index needs a consistent set, not the
        // newest possible one, and this keeps a re-list cheap for a large cluster.
        let config = watcher::Config::default().any_semantic().page_size(500);
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut relist: Vec<ClusterObject> = Vec::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(object)) => shared.apply_object(&object.into()),
                Ok(Event::Delete(object)) => shared.delete_object(&object.into()),
                Ok(Event::Init) => relist.clear(),
                Ok(Event::InitApply(object)) => relist.push(object.into()),
                Ok(Event::InitDone) => shared.replace_kind(kind, std::mem::take(&mut relist)),
                Err(err) => shared.watch_error(kind, &err.to_string()),
            }
        }
    });
}
