//! The agent with its real eBPF programs in the running kernel, on pods made real by
//! `tests/cluster/pod-body`, reporting to a real mediator and shipping raw samples to the local
//! cluster's real VictoriaMetrics: a client pod calling a server pod becomes a `calls` edge, the
//! raw counters are queryable in VictoriaMetrics, and a CPU burner over its limit opens a symptom
//! that resolves once it stops. Needs root (CI runs as root).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use causely_tests::cluster::Cluster;
use causely_tests::mediator::{Mediator, MediatorOptions, agent_token, ensure_namespace, reqwest_client};
use causely_tests::pod_body::{PodBody, fresh_pod};
use causely_tests::poll;
use causely_tests::workspace::{repo_root, workspace_bin};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::Value;

const NS: &str = "agent-e2e";
const NODE: &str = "kwok-node-2";
const VICTORIA: &str = "http://127.0.0.1:38428";

/// The built-in agent rules with a 3 s window for container CPU use and throttling, so the test
/// need not wait a minute.
fn quick_rules(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(repo_root().join("agent/src/detect/default-rules.json"))?;
    let mut rules: Value = serde_json::from_str(&text)?;
    for rule in rules["rules"].as_array_mut().context("rules")? {
        if rule["id"] == "agent.container.cpu-utilization" || rule["id"] == "agent.container.cpu-throttling" {
            rule["windowSeconds"] = 3.into();
        }
    }
    let path = dir.join("agent-rules.json");
    std::fs::write(&path, rules.to_string())?;
    Ok(path)
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The CPU burner's symptoms: over its limit, and throttled by its CFS quota.
const BURNER_KINDS: [&str; 2] = ["high-cpu-utilization", "cpu-throttling"];

fn symptom_of(symptoms: &Value, list: &str, entity: &str, kind: &str) -> usize {
    symptoms[list]
        .as_array()
        .map_or(0, |items| items.iter().filter(|s| s["entity"] == entity && s["kind"] == kind).count())
}

fn each_burner_symptom(symptoms: &Value, list: &str, entity: &str, count: usize) -> bool {
    BURNER_KINDS.iter().all(|kind| symptom_of(symptoms, list, entity, kind) == count)
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_made_real_become_topology_raw_samples_and_symptoms() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    fresh_pod(&pods, "server", NODE).await?;
    let client_pod = fresh_pod(&pods, "client", NODE).await?;
    fresh_pod(&pods, "burner", NODE).await?;

    let dir = tempfile::tempdir()?;
    let mediator = Mediator::start(&cluster, &dir.path().join("mediator"), MediatorOptions::new(NS)).await?;
    let token = dir.path().join("token");
    std::fs::write(&token, agent_token(&client, NS, "causely-agent", "causely-mediator", None).await?)?;

    let server = PodBody::run(&cluster, NS, "server", None, &["python3", "-m", "http.server", "18080"])?;
    let loop_ = format!("while :; do curl -s -o /dev/null -m 1 http://{}:18080/; sleep 0.2; done", server.ip);
    let _caller = PodBody::run(&cluster, NS, "client", None, &["bash", "-c", &loop_])?;
    // A tenth of a core, used in full.
    let burner = PodBody::run(&cluster, NS, "burner", Some(10_000), &["bash", "-c", "while :; do :; done"])?;

    let agent = Command::new(workspace_bin("causely-agent")?)
        .args(["--node-name", NODE, "--mediator-url", &mediator.url, "--victoria-metrics-url", VICTORIA])
        .arg("--token-file")
        .arg(&token)
        .arg("--state-dir")
        .arg(dir.path().join("agent"))
        .arg("--rules")
        .arg(quick_rules(dir.path())?)
        .args(["--listen", "127.0.0.1:0", "--interval", "1s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("agent.log"))?)
        .spawn()
        .context("starting causely-agent")?;
    let _agent = Agent(agent);

    // Topology: the client pod calls the server pod (pods without a controller stand for themselves).
    let calls =
        poll::until("the client → server call reaches the mediator's topology", Duration::from_secs(60), || {
            let mediator = &mediator;
            async move {
                let topology = mediator.get_json("/v1/topology").await?;
                let found = topology["edges"].as_array().into_iter().flatten().find(|e| {
                    e["relation"]["type"] == "calls"
                        && e["from"] == format!("pod/{NS}/client")
                        && e["to"] == format!("pod/{NS}/server")
                        && e["relation"]["port"] == 18080
                });
                Ok(found.cloned())
            }
        })
        .await
        .with_context(|| {
            format!("agent log: {}", std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default())
        })?;
    assert_eq!(calls["relation"]["protocol"], "tcp");

    // Raw counters are in VictoriaMetrics, labelled by pod UID; they never went to the mediator.
    let uid = client_pod.metadata.uid.clone().context("uid")?;
    let http = reqwest_client()?;
    let series = poll::until("raw TCP counters are queryable in VictoriaMetrics", Duration::from_secs(30), || {
        let (http, uid) = (http.clone(), uid.clone());
        async move {
            let _ = http.get(format!("{VICTORIA}/internal/force_flush")).send().await;
            let query = format!("causely_tcp_established{{pod_uid=\"{uid}\"}}");
            let mut url = reqwest::Url::parse(&format!("{VICTORIA}/api/v1/export"))?;
            url.query_pairs_mut().append_pair("match[]", &query);
            let text = http.get(url).send().await?.text().await?;
            Ok((!text.trim().is_empty()).then_some(text))
        }
    })
    .await?;
    assert!(series.contains("\"values\""), "{series}");
    let egress = mediator.get_json("/v1/egress").await?;
    let ledger = http.get(format!("{}/v1/payloads?from=1&limit=1000", mediator.url)).send().await?.text().await?;
    assert!(!ledger.contains("causely_tcp_established") && !ledger.contains(&uid), "raw series or UIDs in egress");
    assert!(egress["batchesAccepted"].as_u64().unwrap_or(0) > 0, "{egress}");

    // The burner uses all of its tenth of a core and is throttled in every CFS period: one
    // high-CPU and one throttling symptom open, and each resolves once it stops.
    let entity = format!("container/{NS}/burner/main");
    poll::until("the CPU burner's symptoms open", Duration::from_secs(60), || {
        let (mediator, entity) = (&mediator, entity.clone());
        async move {
            let s = mediator.get_json("/v1/symptoms").await?;
            Ok(each_burner_symptom(&s, "open", &entity, 1).then_some(()))
        }
    })
    .await?;
    drop(burner);
    poll::until("the CPU burner's symptoms resolve", Duration::from_secs(60), || {
        let (mediator, entity) = (&mediator, entity.clone());
        async move {
            let s = mediator.get_json("/v1/symptoms").await?;
            Ok((each_burner_symptom(&s, "open", &entity, 0) && each_burner_symptom(&s, "recent", &entity, 1))
                .then_some(()))
        }
    })
    .await?;
    drop(server);
    Ok(())
}
