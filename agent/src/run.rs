//! Wires the agent together: the shippers, the collectors, the eBPF probe, the mediator's pod list,
//! the round loop and the endpoints. A missing or unreachable mediator or VictoriaMetrics never
//! stops it from starting: the shippers queue and retry; eBPF that cannot load leaves the cgroup
//! and node collectors running (and `causely_agent_ebpf_loaded` at 0).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use causely_model::api::NodePods;
use causely_model::{AgentReport, UnixMillis};
use reqwest::Url;

use crate::cgroup::{CgroupIdResolver, parse_cgroup_path};
use crate::collect::{Collector, CollectorConfig};
use crate::config::RunArgs;
use crate::detect::{Detector, RuleSet};
use crate::ebpf::{SchedProbe, TcpProbe};
use crate::kubelet::scrape::{Kubelet, KubeletConfig, KubeletStats};
use crate::pipeline::{ConnectionInput, Pipeline, PodNames, RoundInput, RunQueueInput};
use crate::serve::{Endpoints, RoundStats};
use crate::ship::mediator::{MediatorConfig, ReportSender, bearer, mediator};
use crate::ship::victoria::{SampleSender, VictoriaConfig, victoria};

/// Validates the configuration, then runs until SIGTERM or Ctrl-C.
pub fn run(cli: RunArgs) -> anyhow::Result<()> {
    let mediator_url =
        Url::parse(&cli.mediator_url).with_context(|| format!("--mediator-url {:?}", cli.mediator_url))?;
    let vm_url = Url::parse(&cli.victoria_metrics_url)
        .with_context(|| format!("--victoria-metrics-url {:?}", cli.victoria_metrics_url))?;
    let rules = match &cli.rules {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading rules {}", path.display()))?;
            RuleSet::from_json(&text).with_context(|| format!("rules {}", path.display()))?
        }
        None => RuleSet::builtin().context("the built-in rules")?,
    };
    let detector = Detector::new(rules).context("rules")?;
    let kubelet = kubelet_config(&cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(agent(cli, mediator_url, vm_url, detector, kubelet))
}

/// The kubelet scrape settings, when `--kubelet-url` is given (and not `none`).
fn kubelet_config(cli: &RunArgs) -> anyhow::Result<Option<KubeletConfig>> {
    let Some(url) = cli.kubelet_url.as_deref().filter(|u| *u != "none") else { return Ok(None) };
    let url = Url::parse(url).with_context(|| format!("--kubelet-url {url:?}"))?;
    anyhow::ensure!(url.scheme() == "https" || url.scheme() == "http", "--kubelet-url {url}: not http(s)");
    if let Some(ca) = &cli.kubelet_ca_file {
        anyhow::ensure!(ca.is_file(), "--kubelet-ca-file {}: no such file", ca.display());
    }
    Ok(Some(KubeletConfig {
        url,
        token_file: Some(cli.kubelet_token_file.clone()),
        ca_file: cli.kubelet_ca_file.clone(),
        insecure_skip_tls_verify: cli.kubelet_insecure_skip_tls_verify,
        interval: cli.kubelet_interval,
        timeout: Duration::from_secs(10),
        max_bytes: 64 << 20,
    }))
}

async fn agent(
    cli: RunArgs,
    mediator_url: Url,
    vm_url: Url,
    detector: Detector,
    kubelet: Option<KubeletConfig>,
) -> anyhow::Result<()> {
    causely_runtime::init_logs();

    let mut vm_config = VictoriaConfig::new(vm_url, cli.state_dir.join("spool"));
    vm_config.max_spool_bytes = cli.spool_bytes;
    let (samples, vm) = victoria(vm_config).context("the VictoriaMetrics shipper")?;
    let mut reporting = MediatorConfig::new(mediator_url.clone(), cli.token_file.clone());
    // Seqs go on increasing across restarts (one report per interval never outruns the clock), so
    // the mediator never sees a restarted agent's reports as old ones.
    reporting.first_seq = UnixMillis::now().0;
    let (reports, reporter) = mediator(reporting).context("the mediator reporter")?;
    let endpoints = Endpoints {
        stats: Arc::new(RoundStats::default()),
        victoria: samples.probe(),
        mediator: reports.probe(),
        kubelet: Arc::new(KubeletStats::default()),
    };
    let (kubelet_names_tx, kubelet_names) = tokio::sync::watch::channel(NodePods::default());
    if let Some(config) = kubelet {
        let kubelet = Kubelet::new(config).context("the kubelet client")?;
        let (node, sink, stats) = (cli.node_name.clone(), samples.clone(), endpoints.kubelet.clone());
        tokio::spawn(crate::kubelet::scrape::run(kubelet, node, sink, kubelet_names_tx, stats));
    }
    let listener =
        tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("listening on {}", cli.listen))?;
    tokio::spawn(async move {
        if let Err(err) = vm.run().await {
            tracing::error!(error = %err, "the VictoriaMetrics shipper stopped");
        }
    });
    let reporting = tokio::spawn(async move {
        if let Err(err) = reporter.run().await {
            tracing::error!(error = %err, "the mediator reporter stopped");
        }
    });
    let server = axum::serve(listener, crate::serve::router(endpoints.clone()));
    let rounds = rounds(cli, mediator_url, detector, samples, reports, endpoints.stats, kubelet_names);
    tokio::select! {
        served = server => served.context("serving")?,
        () = rounds => {}
        () = causely_runtime::shutdown() => {}
    }
    reporting.abort();
    Ok(())
}

/// How often the pod list is refreshed when every container already has a name.
const NAMES_EVERY: Duration = Duration::from_secs(60);

/// The pods on this node from the mediator; `None` when it cannot be asked now.
async fn pod_list(http: &reqwest::Client, url: &Url, node: &str, token_file: &std::path::Path) -> Option<NodePods> {
    let mut url = url.join("/v1/pods").ok()?;
    url.query_pairs_mut().append_pair("node", node);
    let token = bearer(token_file).await.ok()?;
    let response = http.get(url).header(reqwest::header::AUTHORIZATION, token).send().await.ok()?;
    if !response.status().is_success() {
        tracing::debug!(status = %response.status(), "the mediator did not list this node's pods");
        return None;
    }
    response.json().await.ok()
}

async fn rounds(
    cli: RunArgs,
    mediator_url: Url,
    detector: Detector,
    samples: SampleSender,
    reports: ReportSender,
    stats: Arc<RoundStats>,
    kubelet_names: tokio::sync::watch::Receiver<NodePods>,
) {
    let mut collector =
        match Collector::new(CollectorConfig { host_root: cli.host_root.clone(), node: cli.node_name.clone() }) {
            Ok(collector) => Some(collector),
            Err(err) => {
                tracing::error!(error = %err, "no cgroups to read; container metrics are off");
                None
            }
        };
    let cgroup2 = collector.as_ref().and_then(|c| c.layout().cgroup2_mount().map(std::path::Path::to_path_buf));
    let mut resolver = cgroup2.map(CgroupIdResolver::new);
    let mut probe = match TcpProbe::load() {
        Ok(probe) => {
            stats.ebpf_loaded.store(true, Ordering::Relaxed);
            Some(probe)
        }
        Err(err) => {
            tracing::error!(error = %err, "eBPF programs not loaded; TCP topology is off");
            None
        }
    };
    let mut sched = match SchedProbe::load() {
        Ok(sched) => Some(sched),
        Err(err) => {
            tracing::error!(error = %err, "run-queue latency programs not loaded");
            None
        }
    };
    let http = match crate::ship::http_client(Duration::from_secs(5)) {
        Ok(http) => http,
        Err(err) => {
            tracing::error!(error = %err, "cannot build an HTTP client");
            return;
        }
    };
    let mut pipeline = Pipeline::new(&cli.node_name, detector);
    let mut mediator_names = PodNames::default();
    // The pod list is asked for when a container has no name yet, and otherwise once a minute
    // (for renamed or replaced pods), not every round: each answer is a scan on the mediator.
    let mut names_due = true;
    let mut names_at = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(cli.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if names_due || names_at.elapsed() >= NAMES_EVERY {
            names_at = tokio::time::Instant::now();
            match pod_list(&http, &mediator_url, &cli.node_name, &cli.token_file).await {
                Some(pods) => mediator_names = PodNames::new(pods),
                None => {
                    stats.pod_list_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let names = mediator_names.clone().with_fallback(&kubelet_names.borrow());
        stats.pods_known.store(names.len() as u64, Ordering::Relaxed);
        let time_ms = UnixMillis::now().0;
        let mut input = RoundInput { time_ms, ..RoundInput::default() };
        if let Some(collector) = collector.as_mut() {
            input.containers = collector.scrape_containers();
            input.node = collector.read_node();
            let errors = input.containers.iter().map(|c| c.errors.len()).sum::<usize>() + input.node.errors.len();
            stats.collect_errors.fetch_add(errors as u64, Ordering::Relaxed);
        }
        if let Some(probe) = probe.as_mut() {
            match probe.read() {
                Ok(counters) => {
                    input.connections = counters
                        .into_iter()
                        .map(|c| ConnectionInput {
                            pod: resolver
                                .as_mut()
                                .and_then(|r| r.resolve(c.cgroup_id, time_ms).map(str::to_owned))
                                .and_then(|path| parse_cgroup_path(&path)),
                            local: c.local,
                            remote: c.remote,
                            direction: c.direction,
                            established: c.established,
                            failed: c.failed,
                            retransmits: c.retransmits,
                            rtt_us: c.mean_rtt_us(),
                        })
                        .collect();
                }
                Err(err) => {
                    stats.ebpf_read_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %err, "reading the eBPF maps failed");
                }
            }
            if let Ok(lost) = probe.lost() {
                stats.ebpf_lost.store(lost, Ordering::Relaxed);
            }
        }
        if let Some(sched) = sched.as_mut() {
            match sched.read() {
                Ok(histograms) => {
                    input.run_queue = histograms
                        .into_iter()
                        .filter_map(|h| {
                            let p95_us = h.quantile_upper_us(0.95)?;
                            let path = resolver.as_mut()?.resolve(h.cgroup_id, time_ms)?.to_owned();
                            Some(RunQueueInput { pod: parse_cgroup_path(&path)?, p95_us })
                        })
                        .collect();
                }
                Err(err) => {
                    stats.ebpf_read_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %err, "reading the run-queue histograms failed");
                }
            }
        }
        let out = pipeline.round(input, &names);
        names_due = out.unnamed_containers > 0;
        for sample in out.samples {
            stats.samples.fetch_add(1, Ordering::Relaxed);
            if !samples.push(sample) {
                stats.samples_refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        stats.connections.fetch_add(out.connections.len() as u64, Ordering::Relaxed);
        stats.symptom_changes.fetch_add(out.symptoms.len() as u64, Ordering::Relaxed);
        stats.unnamed_containers.store(out.unnamed_containers, Ordering::Relaxed);
        stats.open_symptoms.store(pipeline.open_symptoms() as u64, Ordering::Relaxed);
        let report = AgentReport {
            node: cli.node_name.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            seq: 0,
            time: UnixMillis(time_ms),
            connections: out.connections,
            symptoms: out.symptoms,
        };
        if let Err(err) = reports.push(report) {
            tracing::warn!(error = %err, "a report could not be queued");
        }
        stats.rounds.fetch_add(1, Ordering::Relaxed);
    }
}
