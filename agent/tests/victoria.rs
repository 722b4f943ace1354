//! Component tests of the sample path against the real VictoriaMetrics (Debian's
//! `/usr/bin/victoria-metrics`) run as a child process on loopback.

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use causely_agent::ship::victoria::{SampleSender, VictoriaConfig, VictoriaCounters, VictoriaShipper, victoria};
use causely_agent::ship::{Backoff, Sample};
use tokio::task::JoinHandle;

const VM: &str = "/usr/bin/victoria-metrics";

/// A VictoriaMetrics process; killed on drop.
struct Vm {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl Vm {
    async fn start(data: &Path, port: u16) -> anyhow::Result<Vm> {
        let child = Command::new(VM)
            .arg(format!("-storageDataPath={}", data.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {VM}"))?;
        let vm = Vm { child, port, data: data.to_path_buf() };
        let health = format!("{}/health", vm.url());
        for _ in 0..100 {
            if client().get(&health).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(vm);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("VictoriaMetrics did not become healthy on port {port}")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it gracefully (SIGTERM), as a restart would: VictoriaMetrics acknowledges samples
    /// before they reach disk and writes them out on shutdown, so a SIGKILL would lose them.
    fn stop(mut self) -> (PathBuf, u16) {
        let terminated = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        assert!(terminated.is_ok_and(|s| s.success()), "sending SIGTERM to VictoriaMetrics");
        let _ = self.child.wait();
        (self.data.clone(), self.port)
    }

    /// Every point of the series matching `selector`, as (labels without `__name__`, value, time),
    /// sorted; waits until there are `want` points, as new series take a moment to be searchable.
    async fn export(&self, selector: &str, want: usize) -> anyhow::Result<Vec<Point>> {
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/export", self.url()))?;
        url.query_pairs_mut().append_pair("match[]", selector);
        let mut points = Vec::new();
        for _ in 0..100 {
            client().get(format!("{}/internal/force_flush", self.url())).send().await?;
            let text = client().get(url.clone()).send().await?.error_for_status()?.text().await?;
            points = parse_export(&text)?;
            if points.len() >= want {
                return Ok(points);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("expected {want} points for {selector}, found {points:?}")
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A point read back: labels without `__name__` (sorted), value, time.
type Point = (Vec<(String, String)>, f64, u64);

fn parse_export(text: &str) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let series: serde_json::Value = serde_json::from_str(line)?;
        let mut labels: Vec<(String, String)> = series["metric"]
            .as_object()
            .context("metric")?
            .iter()
            .filter(|(k, _)| k.as_str() != "__name__")
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        labels.sort();
        let values = series["values"].as_array().context("values")?;
        let times = series["timestamps"].as_array().context("timestamps")?;
        for (v, t) in values.iter().zip(times) {
            points.push((labels.clone(), v.as_f64().context("value")?, t.as_u64().context("time")?));
        }
    }
    points.sort_by(|a, b| a.2.cmp(&b.2).then(a.1.total_cmp(&b.1)));
    Ok(points)
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().tls_backend_rustls().timeout(Duration::from_secs(5)).build().expect("client")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn config(url: &str, spool: &Path) -> VictoriaConfig {
    let mut config = VictoriaConfig::new(url.parse().unwrap(), spool.to_path_buf());
    config.flush_interval = Duration::from_millis(50);
    config.timeout = Duration::from_millis(1500);
    config.backoff = Backoff { min: Duration::from_millis(50), max: Duration::from_millis(400) };
    config
}

fn start(config: VictoriaConfig) -> (SampleSender, JoinHandle<anyhow::Result<()>>, impl Fn() -> VictoriaCounters) {
    let (sender, shipper): (SampleSender, VictoriaShipper) = victoria(config).unwrap();
    let probe = sender.probe();
    let task = tokio::spawn(async move { Ok(shipper.run().await?) });
    (sender, task, move || probe.counters())
}

/// A recent time, so VictoriaMetrics' retention does not discard the samples.
fn now_ms() -> u64 {
    causely_model::UnixMillis::now().0
}

fn sample(metric: &str, labels: &[(&str, &str)], value: f64, time_ms: u64) -> Sample {
    Sample {
        metric: metric.into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        value,
        time_ms,
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    v.sort();
    v
}

async fn wait_for(what: &str, counters: &impl Fn() -> VictoriaCounters, done: impl Fn(&VictoriaCounters) -> bool) {
    for _ in 0..300 {
        if done(&counters()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}: {:?}", counters());
}

fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn samples_shipped_to_victoria_metrics_can_be_read_back_with_their_values_labels_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let vm = Vm::start(&dir.path().join("vm"), free_port()).await.unwrap();
    let (sender, task, counters) = start(config(&vm.url(), &dir.path().join("spool")));
    let t = now_ms();
    assert!(sender.push(sample("agent_test_cpu", &[("pod_uid", "u-1"), ("container", "nginx")], 0.25, t)));
    assert!(sender.push(sample("agent_test_cpu", &[("pod_uid", "u-1"), ("container", "nginx")], 0.5, t + 1)));
    assert!(sender.push(sample(
        "agent_test_cpu",
        &[("pod_uid", "u-2"), ("container", "we\"ird\\ \nname")],
        -3.0,
        t + 7
    )));

    let points = vm.export(r#"{__name__="agent_test_cpu"}"#, 3).await.unwrap();
    assert_eq!(
        points,
        vec![
            (labels(&[("container", "nginx"), ("pod_uid", "u-1")]), 0.25, t),
            (labels(&[("container", "nginx"), ("pod_uid", "u-1")]), 0.5, t + 1),
            (labels(&[("container", "we\"ird\\ \nname"), ("pod_uid", "u-2")]), -3.0, t + 7),
        ]
    );
    drop(sender);
    task.await.unwrap().unwrap();
    let c = counters();
    assert_eq!((c.sent_samples, c.buffered_samples, c.dropped_samples, c.failed_attempts), (3, 0, 0, 0));
}

#[tokio::test]
async fn samples_shipped_while_victoria_metrics_is_down_are_spooled_and_arrive_after_it_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let vm = Vm::start(&dir.path().join("vm"), free_port()).await.unwrap();
    let (sender, task, counters) = start(config(&vm.url(), &spool));
    let t = now_ms();
    sender.push(sample("agent_test_outage", &[("phase", "before")], 1.0, t));
    wait_for("the first sample to be sent", &counters, |c| c.sent_samples == 1).await;

    let (data, port) = vm.stop();
    for i in 0..5 {
        assert!(sender.push(sample("agent_test_outage", &[("phase", "during")], 10.0 + i as f64, t + 1 + i)));
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    wait_for("the outage samples to be spooled", &counters, |c| c.buffered_samples == 5).await;
    let c = counters();
    assert!(c.failed_attempts >= 1 && c.sent_samples == 1 && c.buffered_bytes > 0, "{c:?}");
    assert!(!segments(&spool).is_empty());

    let vm = Vm::start(&data, port).await.unwrap();
    wait_for("the spool to drain", &counters, |c| c.sent_samples == 6 && c.buffered_samples == 0).await;
    assert_eq!(segments(&spool), Vec::<String>::new());
    let points = vm.export(r#"{__name__="agent_test_outage"}"#, 6).await.unwrap();
    let values: Vec<f64> = points.iter().map(|p| p.1).collect();
    assert_eq!(values, [1.0, 10.0, 11.0, 12.0, 13.0, 14.0]);
    assert_eq!(points[3], (labels(&[("phase", "during")]), 12.0, t + 3));
    drop(sender);
    task.await.unwrap().unwrap();
    assert_eq!(counters().dropped_samples, 0);
}

#[tokio::test]
async fn a_restarted_agent_replays_what_an_earlier_run_left_in_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let t = now_ms();

    // First run: nothing listens on the port.
    let (sender, task, counters) = start(config(&url, &spool));
    for i in 0..3 {
        sender.push(sample("agent_test_restart", &[("run", "first")], i as f64, t + i));
    }
    drop(sender);
    task.await.unwrap().unwrap();
    assert_eq!(counters().buffered_samples, 3);
    assert_eq!(counters().sent_samples, 0);

    let vm = Vm::start(&dir.path().join("vm"), port).await.unwrap();
    let (sender, task, counters) = start(config(&url, &spool));
    assert_eq!(counters().buffered_samples, 3, "the new run accounts for the spool before sending");
    wait_for("the spool to be replayed", &counters, |c| c.sent_samples == 3 && c.buffered_samples == 0).await;
    let points = vm.export(r#"{__name__="agent_test_restart"}"#, 3).await.unwrap();
    assert_eq!(points.iter().map(|p| (p.1, p.2)).collect::<Vec<_>>(), [(0.0, t), (1.0, t + 1), (2.0, t + 2)]);
    drop(sender);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_tiny_spool_bound_drops_the_oldest_batches_first_and_counts_their_samples() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let t = now_ms();
    let line = |i: u64| format!("agent_test_bound{{i=\"{i}\"}} {:?} {}\n", i as f64, t + i);
    let mut config = config(&url, &spool);
    // One sample per batch, and room for exactly two batches.
    config.batch_max_samples = 1;
    config.max_spool_bytes = (line(1).len() * 2) as u64;

    let (sender, task, counters) = start(config.clone());
    for i in 1..=5 {
        sender.push(sample("agent_test_bound", &[("i", &i.to_string())], i as f64, t + i));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    drop(sender);
    task.await.unwrap().unwrap();
    let c = counters();
    assert_eq!((c.dropped_samples, c.buffered_samples, c.buffered_bytes), (3, 2, config.max_spool_bytes), "{c:?}");
    assert_eq!(segments(&spool), ["00000000000000000004-1.prom", "00000000000000000005-1.prom"]);
    assert_eq!(std::fs::read_to_string(spool.join("00000000000000000004-1.prom")).unwrap(), line(4));

    let vm = Vm::start(&dir.path().join("vm"), port).await.unwrap();
    let (sender, task, counters) = start(config);
    wait_for("the survivors to be replayed", &counters, |c| c.sent_samples == 2).await;
    let points = vm.export(r#"{__name__="agent_test_bound"}"#, 2).await.unwrap();
    assert_eq!(points.iter().map(|p| p.1).collect::<Vec<_>>(), [4.0, 5.0]);
    drop(sender);
    task.await.unwrap().unwrap();
    assert_eq!(counters().dropped_samples, 0, "a new run counts only its own drops");
}

#[tokio::test]
async fn a_victoria_metrics_that_hangs_or_answers_500_gets_the_batches_spooled_not_lost() {
    // Accepts connections and never answers.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_url = format!("http://{}", hanging.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = hanging.accept().await {
            conns.push(conn);
        }
    });
    // Answers 500 to everything.
    let failing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fail_url = format!("http://{}", failing.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR });
    let server = tokio::spawn(async move { axum::serve(failing, app).await });

    for url in [hang_url, fail_url] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(&url, dir.path());
        config.timeout = Duration::from_millis(300);
        config.channel_capacity = 1000;
        let (sender, task, counters) = start(config);
        let pushed = (0..200u64).filter(|i| sender.push(sample("agent_test_stuck", &[], *i as f64, *i))).count();
        assert_eq!(pushed, 200, "{url}: the channel took every sample while the shipper waited");
        wait_for("every sample to reach the spool", &counters, |c| c.buffered_samples == 200).await;
        let c = counters();
        assert!(c.failed_attempts >= 1 && c.sent_samples == 0 && c.dropped_samples == 0, "{url}: {c:?}");
        assert_eq!((c.rejected_samples, c.channel_full_samples), (0, 0), "{url}");
        drop(sender);
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
    }
    held.abort();
    server.abort();
}

#[tokio::test]
async fn a_batch_victoria_metrics_refuses_with_a_client_error_is_dropped_and_counted_not_spooled() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async { axum::http::StatusCode::BAD_REQUEST });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let (sender, task, counters) = start(config(&url, dir.path()));
    for i in 0..3u64 {
        sender.push(sample("agent_test_refused", &[], i as f64, i));
    }
    // Skipped before sending: an invalid name never reaches VictoriaMetrics.
    sender.push(sample("invalid-name", &[], 1.0, 1));
    drop(sender);
    task.await.unwrap().unwrap();
    let c = counters();
    assert_eq!((c.rejected_samples, c.invalid_samples, c.buffered_samples, c.failed_attempts), (3, 1, 0, 0), "{c:?}");
    assert!(segments(dir.path()).is_empty());
    server.abort();
}
