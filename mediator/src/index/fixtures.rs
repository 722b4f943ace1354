//! Test fixtures: Kubernetes objects built from JSON literals, as the API server would send them.

use serde_json::{Value, json};

use super::{ClusterObject, ObjectKind};

/// Milliseconds since the epoch as the RFC 3339 text the API server writes.
pub(crate) fn rfc3339(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap();
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

/// An object under construction; `build` turns it into the typed k8s-openapi object.
#[derive(Debug, Clone)]
pub(crate) struct Fixture {
    kind: ObjectKind,
    value: Value,
}

fn api_version(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        _ => "v1",
    }
}

fn object(kind: ObjectKind, api_kind: &str, ns: Option<&str>, name: &str) -> Fixture {
    let mut value = json!({
        "apiVersion": api_version(api_kind),
        "kind": api_kind,
        "metadata": {"name": name, "uid": format!("uid-{}-{name}", ns.unwrap_or("cluster"))},
    });
    if let Some(ns) = ns {
        value["metadata"]["namespace"] = json!(ns);
    }
    Fixture { kind, value }
}

/// A Running pod on `node-1` with one container `app` and no IP.
pub(crate) fn pod(ns: &str, name: &str) -> Fixture {
    let mut f = object(ObjectKind::Pod, "Pod", Some(ns), name);
    f.value["spec"] = json!({"nodeName": "node-1", "containers": [{"name": "app"}]});
    f.value["status"] = json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}]});
    f
}

pub(crate) fn node(name: &str) -> Fixture {
    let mut f = object(ObjectKind::Node, "Node", None, name);
    f.value["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
    f
}

/// A ClusterIP service with no ports and no selector yet.
pub(crate) fn service(ns: &str, name: &str) -> Fixture {
    let mut f = object(ObjectKind::Service, "Service", Some(ns), name);
    f.value["spec"] = json!({"ports": []});
    f
}

pub(crate) fn deployment(ns: &str, name: &str) -> Fixture {
    object(ObjectKind::Deployment, "Deployment", Some(ns), name)
}

pub(crate) fn replica_set(ns: &str, name: &str) -> Fixture {
    object(ObjectKind::ReplicaSet, "ReplicaSet", Some(ns), name)
}

pub(crate) fn replication_controller(ns: &str, name: &str) -> Fixture {
    object(ObjectKind::ReplicationController, "ReplicationController", Some(ns), name)
}

pub(crate) fn stateful_set(ns: &str, name: &str) -> Fixture {
    let mut f = object(ObjectKind::StatefulSet, "StatefulSet", Some(ns), name);
    f.value["status"] = json!({"replicas": 0});
    f
}

pub(crate) fn daemon_set(ns: &str, name: &str) -> Fixture {
    let mut f = object(ObjectKind::DaemonSet, "DaemonSet", Some(ns), name);
    f.value["status"] = json!({
        "currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0
    });
    f
}

pub(crate) fn job(ns: &str, name: &str) -> Fixture {
    object(ObjectKind::Job, "Job", Some(ns), name)
}

pub(crate) fn cron_job(ns: &str, name: &str, schedule: &str) -> Fixture {
    let mut f = object(ObjectKind::CronJob, "CronJob", Some(ns), name);
    f.value["spec"] = json!({"schedule": schedule, "jobTemplate": {}});
    f
}

pub(crate) fn event(ns: &str, name: &str, type_: &str) -> Fixture {
    let mut f = object(ObjectKind::Event, "Event", Some(ns), name);
    f.value["type"] = json!(type_);
    f.value["reason"] = json!("BackOff");
    f.value["involvedObject"] = json!({"kind": "Pod", "namespace": ns, "name": "web-1"});
    f
}

impl Fixture {
    pub(crate) fn build(self) -> ClusterObject {
        let v = self.value;
        match self.kind {
            ObjectKind::Pod => serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(v).unwrap().into(),
            ObjectKind::Node => serde_json::from_value::<k8s_openapi::api::core::v1::Node>(v).unwrap().into(),
            ObjectKind::Service => serde_json::from_value::<k8s_openapi::api::core::v1::Service>(v).unwrap().into(),
            ObjectKind::Event => serde_json::from_value::<k8s_openapi::api::core::v1::Event>(v).unwrap().into(),
            ObjectKind::Deployment => {
                serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(v).unwrap().into()
            }
            ObjectKind::ReplicaSet => {
                serde_json::from_value::<k8s_openapi::api::apps::v1::ReplicaSet>(v).unwrap().into()
            }
            ObjectKind::ReplicationController => {
                serde_json::from_value::<k8s_openapi::api::core::v1::ReplicationController>(v).unwrap().into()
            }
            ObjectKind::Job => serde_json::from_value::<k8s_openapi::api::batch::v1::Job>(v).unwrap().into(),
            ObjectKind::CronJob => serde_json::from_value::<k8s_openapi::api::batch::v1::CronJob>(v).unwrap().into(),
            ObjectKind::StatefulSet => {
                serde_json::from_value::<k8s_openapi::api::apps::v1::StatefulSet>(v).unwrap().into()
            }
            ObjectKind::DaemonSet => serde_json::from_value::<k8s_openapi::api::apps::v1::DaemonSet>(v).unwrap().into(),
        }
    }

    fn status(&mut self) -> &mut Value {
        if self.value.get("status").is_none() {
            self.value["status"] = json!({});
        }
        &mut self.value["status"]
    }

    fn spec(&mut self) -> &mut Value {
        if self.value.get("spec").is_none() {
            self.value["spec"] = json!({});
        }
        &mut self.value["spec"]
    }

    fn push(slot: &mut Value, item: Value) {
        if !slot.is_array() {
            *slot = json!([]);
        }
        slot.as_array_mut().unwrap().push(item);
    }

    // Metadata, any kind.

    pub(crate) fn uid(mut self, uid: &str) -> Self {
        self.value["metadata"]["uid"] = json!(uid);
        self
    }

    pub(crate) fn labels(mut self, labels: &[(&str, &str)]) -> Self {
        let map: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        self.value["metadata"]["labels"] = Value::Object(map);
        self
    }

    /// Adds a controlling owner reference of API kind `kind`.
    pub(crate) fn owned_by(self, kind: &str, name: &str) -> Self {
        self.owner_ref(api_version(kind), kind, name, true)
    }

    pub(crate) fn owner_ref(mut self, api_version: &str, kind: &str, name: &str, controller: bool) -> Self {
        let reference = json!({
            "apiVersion": api_version, "kind": kind, "name": name, "uid": format!("uid-{name}"), "controller": controller
        });
        Self::push(&mut self.value["metadata"]["ownerReferences"], reference);
        self
    }

    pub(crate) fn created(mut self, ms: u64) -> Self {
        self.value["metadata"]["creationTimestamp"] = json!(rfc3339(ms));
        self
    }

    // Pods.

    pub(crate) fn ip(mut self, ip: &str) -> Self {
        let status = self.status();
        status["podIP"] = json!(ip);
        Self::push(&mut status["podIPs"], json!({"ip": ip}));
        self
    }

    pub(crate) fn on_node(mut self, node: &str) -> Self {
        self.spec()["nodeName"] = json!(node);
        self
    }

    pub(crate) fn unbound(mut self) -> Self {
        self.spec().as_object_mut().unwrap().remove("nodeName");
        self.status()["conditions"] = json!([]);
        self
    }

    pub(crate) fn host_network(mut self) -> Self {
        self.spec()["hostNetwork"] = json!(true);
        self
    }

    pub(crate) fn phase(mut self, phase: &str) -> Self {
        self.status()["phase"] = json!(phase);
        self
    }

    /// Adds a container `name` (to the pod's spec), or an init container.
    pub(crate) fn container(mut self, name: &str) -> Self {
        Self::push(&mut self.spec()["containers"], json!({"name": name}));
        self
    }

    pub(crate) fn init_container(mut self, name: &str) -> Self {
        Self::push(&mut self.spec()["initContainers"], json!({"name": name}));
        self
    }

    /// Gives the first container a named port.
    pub(crate) fn named_port(mut self, name: &str, port: u16) -> Self {
        Self::push(&mut self.spec()["containers"][0]["ports"], json!({"name": name, "containerPort": port}));
        self
    }

    fn container_status(&mut self, container: &str) -> &mut Value {
        let statuses = &mut self.status()["containerStatuses"];
        if !statuses.is_array() {
            *statuses = json!([]);
        }
        let list = statuses.as_array_mut().unwrap();
        let at = match list.iter().position(|s| s["name"] == container) {
            Some(at) => at,
            None => {
                list.push(json!({"name": container, "image": "img", "imageID": "", "ready": false, "restartCount": 3}));
                list.len() - 1
            }
        };
        &mut list[at]
    }

    pub(crate) fn waiting(mut self, container: &str, reason: &str) -> Self {
        self.container_status(container)["state"] = json!({"waiting": {"reason": reason}});
        self
    }

    pub(crate) fn container_id(mut self, container: &str, id: &str) -> Self {
        self.container_status(container)["containerID"] = json!(id);
        self
    }

    pub(crate) fn running(mut self, container: &str) -> Self {
        self.container_status(container)["state"] = json!({"running": {}});
        self
    }

    pub(crate) fn terminated(mut self, container: &str, reason: &str, finished_ms: u64) -> Self {
        self.container_status(container)["state"] =
            json!({"terminated": {"exitCode": 137, "reason": reason, "finishedAt": rfc3339(finished_ms)}});
        self
    }

    pub(crate) fn last_terminated(mut self, container: &str, reason: &str, finished_ms: u64) -> Self {
        self.container_status(container)["lastState"] =
            json!({"terminated": {"exitCode": 137, "reason": reason, "finishedAt": rfc3339(finished_ms)}});
        self
    }

    pub(crate) fn unschedulable(self, since_ms: u64) -> Self {
        let mut f = self.unbound().phase("Pending");
        f.status()["conditions"] = json!([{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "lastTransitionTime": rfc3339(since_ms)
        }]);
        f
    }

    // Nodes, Jobs: conditions.

    pub(crate) fn condition(mut self, type_: &str, status: &str, since_ms: u64) -> Self {
        let conditions = &mut self.status()["conditions"];
        if let Some(list) = conditions.as_array_mut() {
            list.retain(|c| c["type"] != type_);
        }
        Self::push(conditions, json!({"type": type_, "status": status, "lastTransitionTime": rfc3339(since_ms)}));
        self
    }

    // Services.

    pub(crate) fn cluster_ip(mut self, ip: &str) -> Self {
        self.spec()["clusterIP"] = json!(ip);
        Self::push(&mut self.spec()["clusterIPs"], json!(ip));
        self
    }

    pub(crate) fn selector(mut self, selector: &[(&str, &str)]) -> Self {
        let map: serde_json::Map<String, Value> = selector.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        self.spec()["selector"] = Value::Object(map);
        self
    }

    pub(crate) fn port(mut self, port: u16, target: Value) -> Self {
        Self::push(&mut self.spec()["ports"], json!({"port": port, "targetPort": target}));
        self
    }

    // Workloads.

    /// Deployment / StatefulSet replica counts; for a DaemonSet, desired and available scheduled pods.
    pub(crate) fn replicas(mut self, desired: u32, available: u32) -> Self {
        match self.kind {
            ObjectKind::DaemonSet => {
                let status = self.status();
                status["desiredNumberScheduled"] = json!(desired);
                status["numberAvailable"] = json!(available);
                status["numberUnavailable"] = json!(desired - available);
            }
            ObjectKind::StatefulSet => {
                self.spec()["replicas"] = json!(desired);
                self.status()["availableReplicas"] = json!(available);
            }
            _ => {
                self.spec()["replicas"] = json!(desired);
                let status = self.status();
                status["availableReplicas"] = json!(available);
                status["unavailableReplicas"] = json!(desired - available);
            }
        }
        self
    }

    pub(crate) fn last_schedule(mut self, ms: u64) -> Self {
        self.status()["lastScheduleTime"] = json!(rfc3339(ms));
        self
    }

    pub(crate) fn suspended(mut self) -> Self {
        self.spec()["suspend"] = json!(true);
        self
    }

    pub(crate) fn time_zone(mut self, zone: &str) -> Self {
        self.spec()["timeZone"] = json!(zone);
        self
    }

    pub(crate) fn active_forbidding_concurrency(mut self) -> Self {
        self.spec()["concurrencyPolicy"] = json!("Forbid");
        self.status()["active"] = json!([{"kind": "Job", "name": "running"}]);
        self
    }
}
