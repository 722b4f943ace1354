//! The mediator against the real API server: Deployments, Services and pods created through the
//! API (kwok runs them) appear in the topology with their edges, agent observations join into
//! `calls` edges, and deleting a pod updates the topology.

use std::time::Duration;

use anyhow::Context;
use causely_tests::cluster::Cluster;
use causely_tests::kwok::on_fake_nodes;
use causely_tests::mediator::{Mediator, MediatorOptions, agent_token, ensure_namespace, reqwest_client};
use causely_tests::poll;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "med-topology";

async fn create<K>(api: &Api<K>, value: Value) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value)?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(err) => Err(err.into()),
    }
}

fn deployment(name: &str, replicas: i32) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": on_fake_nodes(json!({"containers": [{"name": name, "image": "registry.example/app:1"}]}))
            }
        }
    })
}

fn service(name: &str, port: u16) -> Value {
    json!({"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [{"port": port}]}})
}

fn has_edge(topology: &Value, from: &str, relation: &str, to: &str) -> bool {
    topology["edges"].as_array().is_some_and(|edges| {
        edges.iter().any(|e| {
            e["relation"]["type"] == relation
                && e["from"].as_str().is_some_and(|f| f.starts_with(from))
                && e["to"].as_str().is_some_and(|t| t.starts_with(to))
        })
    })
}

fn has_entity(topology: &Value, id: &str) -> bool {
    topology["entities"].as_array().is_some_and(|entities| entities.iter().any(|e| e["id"] == id))
}

#[tokio::test(flavor = "multi_thread")]
async fn workloads_services_and_pods_form_the_topology_and_agent_observations_add_calls() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    create(&deployments, deployment("web", 2)).await?;
    create(&deployments, deployment("db", 1)).await?;
    create(&services, service("web", 80)).await?;
    create(&services, service("db", 5432)).await?;

    let state = tempfile::tempdir()?;
    let mediator = Mediator::start(&cluster, &state.path().join("state"), MediatorOptions::new(NS)).await?;

    let structure = poll::until("the topology shows the web deployment's structure", Duration::from_secs(60), || {
        let mediator = &mediator;
        async move {
            let t = mediator.get_json("/v1/topology").await?;
            let ok = has_edge(&t, &format!("svc/{NS}/web"), "selects", &format!("pod/{NS}/web-"))
                && has_edge(&t, &format!("pod/{NS}/web-"), "owned-by", &format!("workload/replicaset/{NS}/web-"))
                && has_edge(
                    &t,
                    &format!("workload/replicaset/{NS}/web-"),
                    "owned-by",
                    &format!("workload/deployment/{NS}/web"),
                )
                && has_edge(&t, &format!("pod/{NS}/web-"), "runs-on", "node/kwok-node-")
                && has_edge(&t, &format!("container/{NS}/web-"), "runs-on", &format!("pod/{NS}/web-"))
                && has_edge(&t, &format!("svc/{NS}/db"), "selects", &format!("pod/{NS}/db-"));
            Ok(ok.then_some(t))
        }
    })
    .await?;
    assert!(has_entity(&structure, &format!("workload/deployment/{NS}/db")));
    assert!(
        !has_edge(&structure, &format!("workload/deployment/{NS}/web"), "calls", ""),
        "no calls before agents report"
    );

    // An agent on the web pod's node reports connections from a web pod to the db Service.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let web = poll::until("a web pod has an IP", Duration::from_secs(30), || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels("app=web")).await?;
            Ok(list.items.into_iter().find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()))
        }
    })
    .await?;
    let web_ip = web.status.as_ref().and_then(|s| s.pod_ip.clone()).context("pod ip")?;
    let web_uid = web.metadata.uid.clone().context("uid")?;
    let node = web.spec.as_ref().and_then(|s| s.node_name.clone()).context("node")?;
    let db_ip = services.get("db").await?.spec.and_then(|s| s.cluster_ip).context("cluster ip")?;
    let token = agent_token(&client, NS, "causely-agent", "causely-mediator", None).await?;
    let report = json!({
        "node": node, "agentVersion": "0.1.0", "seq": 1, "time": 1,
        "connections": [{
            "local": {"ip": web_ip, "port": 40000}, "remote": {"ip": db_ip, "port": 5432},
            "direction": "outbound", "protocol": "tcp", "podUid": web_uid, "established": 3, "failed": 0
        }]
    });
    let http = reqwest_client()?;
    let response = http.post(format!("{}/v1/reports", mediator.url)).bearer_auth(&token).json(&report).send().await?;
    assert_eq!(response.status().as_u16(), 202, "{}", response.text().await?);

    poll::until("the calls edges appear", Duration::from_secs(20), || {
        let mediator = &mediator;
        async move {
            let t = mediator.get_json("/v1/topology").await?;
            let calls = t["edges"].as_array().into_iter().flatten().filter(|e| e["relation"]["type"] == "calls");
            let pairs: Vec<(String, String, Value)> = calls
                .map(|e| {
                    (
                        e["from"].as_str().unwrap_or("").into(),
                        e["to"].as_str().unwrap_or("").into(),
                        e["relation"].clone(),
                    )
                })
                .collect();
            let workload = (format!("workload/deployment/{NS}/web"), format!("workload/deployment/{NS}/db"));
            let service = (format!("svc/{NS}/web"), format!("svc/{NS}/db"));
            let found = |(from, to): &(String, String)| {
                pairs.iter().any(|(f, t, r)| f == from && t == to && r["port"] == 5432 && r["protocol"] == "tcp")
            };
            Ok((found(&workload) && found(&service)).then_some(()))
        }
    })
    .await?;

    // Deleting a pod takes it out of the topology.
    let name = web.metadata.name.clone().context("name")?;
    pods.delete(&name, &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }).await?;
    poll::until("the deleted pod leaves the topology", Duration::from_secs(30), || {
        let (mediator, id) = (&mediator, format!("pod/{NS}/{name}"));
        async move { Ok((!has_entity(&mediator.get_json("/v1/topology").await?, &id)).then_some(())) }
    })
    .await?;

    // With `--upstream-url none` batches are built, guarded and ledgered, then settled locally:
    // nothing queues up for an upstream that does not exist.
    let egress = poll::until("batches are settled locally", Duration::from_secs(20), || {
        let mediator = &mediator;
        async move {
            let e = mediator.get_json("/v1/egress").await?;
            let settled = e["batchesAccepted"].as_u64().unwrap_or(0) >= 2
                && e["pendingBatches"] == 0
                && e["deliveredSeq"].as_u64().map(|d| d + 1) == e["nextSeq"].as_u64();
            Ok(settled.then_some(e))
        }
    })
    .await?;
    assert_eq!(egress["upstream"], "none", "{egress}");
    Ok(())
}
