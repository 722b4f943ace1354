//! The agent reads its node's kubelet (`/metrics`, `/metrics/cadvisor`) over HTTPS with a bearer
//! token into the real VictoriaMetrics, and a kubelet it cannot trust or that refuses its token is
//! counted, not fatal. The kubelet is a stand-in (`tests/src/kubelet.rs` says why); the agent and
//! VictoriaMetrics are real.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use causely_tests::cluster::Cluster;
use causely_tests::kubelet::KubeletDouble;
use causely_tests::mediator::{metric_value, reqwest_client};
use causely_tests::poll;
use causely_tests::upstream::TestPki;
use causely_tests::workspace::{repo_root, workspace_bin};

const VICTORIA: &str = "http://127.0.0.1:38428";
const TOKEN: &str = "kubelet-reader-token";

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

/// A real agent reading `kubelet` every second; its mediator is an address nobody listens on.
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

/// The fixture text with its timestamps moved to now (VictoriaMetrics refuses samples older than
/// its retention).
fn fixture(name: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(repo_root().join("agent/src/kubelet/fixtures").join(name))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    Ok(text.replace("1732845600123", &now.to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn kubelet_and_cadvisor_series_reach_victoria_metrics_and_untrusted_or_refusing_kubelets_are_counted()
-> anyhow::Result<()> {
    // The cluster brings up the VictoriaMetrics the agent writes to.
    Cluster::get()?;
    let pki = TestPki::new()?;
    let kubelet = KubeletDouble::start(&pki, TOKEN, fixture("metrics.txt")?, fixture("cadvisor.txt")?).await?;
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("kubelet-ca.pem");
    std::fs::write(&ca, &pki.ca_pem)?;
    let run = format!("{}-{}", std::process::id(), kubelet.url().rsplit(':').next().unwrap_or_default());
    let node = format!("kubelet-test-{run}");
    let trusting = agent(&dir.path().join("trusting"), &node, &kubelet.url(), TOKEN, Some(&ca))?;
    let untrusting = agent(&dir.path().join("untrusting"), &format!("untrusting-{run}"), &kubelet.url(), TOKEN, None)?;
    let wrong_token =
        agent(&dir.path().join("wrong-token"), &format!("wrong-token-{run}"), &kubelet.url(), "stolen", Some(&ca))?;

    let http = reqwest_client()?;
    for query in [
        format!("container_cpu_usage_seconds_total{{node=\"{node}\",container=\"app\",namespace=\"shop\"}}"),
        format!("kubelet_running_pods{{node=\"{node}\"}}"),
        format!("kubelet_pod_start_duration_seconds_bucket{{node=\"{node}\",le=\"+Inf\"}}"),
    ] {
        let http = http.clone();
        poll::until(&format!("{query} is queryable in VictoriaMetrics"), Duration::from_secs(30), || {
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

    let ok = "causely_agent_kubelet_scrapes_total{endpoint=\"cadvisor\",result=\"ok\"}";
    let failed = "causely_agent_kubelet_scrapes_total{endpoint=\"cadvisor\",result=\"error\"}";
    assert!(agent_metric(&http, &trusting, ok).await? >= Some(1.0));
    assert_eq!(agent_metric(&http, &trusting, "causely_agent_kubelet_pods_named").await?, Some(1.0));
    for refused in [&untrusting, &wrong_token] {
        poll::until("the refused scrapes are counted", Duration::from_secs(20), || async {
            Ok((agent_metric(&http, refused, failed).await? >= Some(2.0)).then_some(()))
        })
        .await?;
        assert_eq!(agent_metric(&http, refused, ok).await?, Some(0.0), "nothing read from an unusable kubelet");
        let health = http.get(refused.metrics_url.replace("/metrics", "/healthz")).send().await?;
        assert!(health.status().is_success(), "the agent keeps running");
    }

    // The trusting agent presented its token on both endpoints; the wrong token was refused.
    let seen = kubelet.seen();
    for path in ["/metrics", "/metrics/cadvisor"] {
        assert!(
            seen.iter().any(|s| s.path == path && s.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))),
            "{path}: {seen:?}"
        );
    }
    assert!(seen.iter().any(|s| s.authorization.as_deref() == Some("Bearer stolen")));
    Ok(())
}
