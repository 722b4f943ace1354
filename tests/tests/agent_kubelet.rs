//! The agent reads the real kubelet of the local cluster's real node (`/metrics`,
//! `/metrics/cadvisor`) over HTTPS with a ServiceAccount token into the real VictoriaMetrics. The
//! kubelet authenticates the token and authorizes it against RBAC through the API server, as on a
//! real cluster: a token holding exactly the published agent rules (`permissions/seed.yaml`) reads
//! both endpoints; a token of an account without them is refused (403), a token the API server
//! never issued is refused (401), and an agent that does not trust the kubelet's certificate
//! reads nothing. Each refusal is counted by the agent, never fatal.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use causely_tests::cluster::Cluster;
use causely_tests::mediator::{ensure_namespace, metric_value, reqwest_client};
use causely_tests::poll;
use causely_tests::workspace::workspace_bin;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kubectl_causely::baseline::{Baseline, Component};
use serde_json::json;

const VICTORIA: &str = "http://127.0.0.1:38428";
const NS: &str = "e2e-kubelet";
const READER: &str = "e2e-kubelet-reader";

struct Agent {
    child: Child,
    metrics_url: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A real agent labelling its samples `node`, reading `kubelet` every second; its mediator is an
/// address nobody listens on.
fn agent(dir: &Path, node: &str, kubelet: &str, token: &str, ca: Option<&Path>) -> anyhow::Result<Agent> {
    std::fs::create_dir_all(dir)?;
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{token}\n"))?;
    let port = free_port()?;
    let mut command = Command::new(workspace_bin("causely-agent")?);
    command
        .args(["--node-name", node, "--mediator-url", "http://127.0.0.1:9", "--victoria-metrics-url", VICTORIA])
        .args(["--kubelet-url", kubelet, "--kubelet-interval", "1s", "--interval", "1s"])
        .arg("--kubelet-token-file")
        .arg(&token_file)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log"))?);
    if let Some(ca) = ca {
        command.arg("--kubelet-ca-file").arg(ca);
    }
    let child = command.spawn().context("starting causely-agent")?;
    Ok(Agent { child, metrics_url: format!("http://127.0.0.1:{port}/metrics") })
}

async fn agent_metric(http: &reqwest::Client, agent: &Agent, name: &str) -> anyhow::Result<Option<f64>> {
    let Ok(response) = http.get(&agent.metrics_url).send().await else { return Ok(None) };
    Ok(metric_value(&response.text().await?, name).ok())
}

/// A token of a new ServiceAccount in `NS`, bound to the published agent ClusterRole when `bound`.
async fn token(client: &kube::Client, name: &str, bound: bool) -> anyhow::Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    if accounts.get_opt(name).await?.is_none() {
        accounts.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": name}}))?).await?;
    }
    if bound {
        let rules: Vec<_> =
            Baseline::seed()?.component(Component::Agent).rules.iter().map(|r| r.to_policy_rule()).collect();
        let roles: Api<ClusterRole> = Api::all(client.clone());
        let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
        let _ = roles.delete(READER, &DeleteParams::default()).await;
        let _ = bindings.delete(READER, &DeleteParams::default()).await;
        roles
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": READER}, "rules": rules}))?,
            )
            .await?;
        let binding = json!({"metadata": {"name": READER},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": READER},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NS}]});
        bindings.create(&PostParams::default(), &serde_json::from_value(binding)?).await?;
    }
    let request = serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))?;
    let issued = accounts.create_token_request(name, &PostParams::default(), &request).await?;
    Ok(issued.status.context("token request has no status")?.token)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_kubelet_serves_the_published_agent_rules_and_refuses_other_tokens() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    // The kubelet's address as the API server publishes it (the DaemonSet uses status.hostIP).
    let node = Api::<Node>::all(client.clone()).get(&cluster.real_node).await?;
    let ip = node
        .status
        .and_then(|s| s.addresses)
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .context("the real node has no InternalIP")?
        .address;
    let kubelet = format!("https://{ip}:10250");
    let reader = token(&client, "reader", true).await?;
    let stranger = token(&client, "stranger", false).await?;

    let dir = tempfile::tempdir()?;
    let run = std::process::id();
    let node = format!("kubelet-test-{run}");
    let ca = cluster.ca.as_path(); // it signs the kubelet's serving certificate
    let trusting = agent(&dir.path().join("trusting"), &node, &kubelet, &reader, Some(ca))?;
    let untrusting = agent(&dir.path().join("untrusting"), &format!("untrusting-{run}"), &kubelet, &reader, None)?;
    let unbound = agent(&dir.path().join("unbound"), &format!("unbound-{run}"), &kubelet, &stranger, Some(ca))?;
    let forged = agent(&dir.path().join("forged"), &format!("forged-{run}"), &kubelet, "not-a-token", Some(ca))?;

    let http = reqwest_client()?;
    for query in [
        format!("container_cpu_usage_seconds_total{{node=\"{node}\",namespace=\"kube-system\",container=\"coredns\"}}"),
        format!("kubelet_running_pods{{node=\"{node}\"}}"),
    ] {
        let http = http.clone();
        poll::until(&format!("{query} is queryable in VictoriaMetrics"), Duration::from_secs(60), || {
            let (http, query) = (http.clone(), query.clone());
            async move {
                let _ = http.get(format!("{VICTORIA}/internal/force_flush")).send().await;
                let mut url = reqwest::Url::parse(&format!("{VICTORIA}/api/v1/export"))?;
                url.query_pairs_mut().append_pair("match[]", &query);
                let text = http.get(url).send().await?.text().await?;
                Ok((!text.trim().is_empty()).then_some(()))
            }
        })
        .await
        .with_context(|| std::fs::read_to_string(dir.path().join("trusting/agent.log")).unwrap_or_default())?;
    }

    let ok = |endpoint: &str| format!("causely_agent_kubelet_scrapes_total{{endpoint=\"{endpoint}\",result=\"ok\"}}");
    let failed =
        |endpoint: &str| format!("causely_agent_kubelet_scrapes_total{{endpoint=\"{endpoint}\",result=\"error\"}}");
    for endpoint in ["metrics", "cadvisor"] {
        assert!(agent_metric(&http, &trusting, &ok(endpoint)).await? >= Some(1.0), "{endpoint}");
    }
    for (what, refused) in [("untrusting", &untrusting), ("unbound", &unbound), ("forged", &forged)] {
        poll::until(&format!("the {what} agent's refused scrapes are counted"), Duration::from_secs(30), || async {
            Ok((agent_metric(&http, refused, &failed("cadvisor")).await? >= Some(2.0)).then_some(()))
        })
        .await?;
        for endpoint in ["metrics", "cadvisor"] {
            assert_eq!(agent_metric(&http, refused, &ok(endpoint)).await?, Some(0.0), "{what} read {endpoint}");
        }
        let health = http.get(refused.metrics_url.replace("/metrics", "/healthz")).send().await?;
        assert!(health.status().is_success(), "the {what} agent keeps running");
    }
    // Why each was refused, as the agent logged it.
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name).join("agent.log")).unwrap_or_default();
    assert!(log("unbound").contains("403"), "{}", log("unbound"));
    assert!(log("forged").contains("401"), "{}", log("forged"));

    let _ = Api::<ClusterRoleBinding>::all(client.clone()).delete(READER, &DeleteParams::default()).await;
    let _ = Api::<ClusterRole>::all(client.clone()).delete(READER, &DeleteParams::default()).await;
    Ok(())
}
