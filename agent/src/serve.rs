//! The agent's own endpoints: `/metrics` (Prometheus text: its health, rounds, eBPF events and
//! losses, shipping queues and drops), `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::kubelet::Endpoint;
use crate::kubelet::scrape::KubeletStats;
use crate::ship::mediator::MediatorProbe;
use crate::ship::victoria::VictoriaProbe;

/// Counters the round loop keeps.
#[derive(Debug, Default)]
pub struct RoundStats {
    pub rounds: AtomicU64,
    pub samples: AtomicU64,
    pub samples_refused: AtomicU64,
    pub connections: AtomicU64,
    pub symptom_changes: AtomicU64,
    pub unnamed_containers: AtomicU64,
    pub collect_errors: AtomicU64,
    pub ebpf_loaded: AtomicBool,
    pub ebpf_lost: AtomicU64,
    pub ebpf_read_errors: AtomicU64,
    pub open_symptoms: AtomicU64,
    pub pods_known: AtomicU64,
    pub pod_list_errors: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct Endpoints {
    pub stats: Arc<RoundStats>,
    pub victoria: VictoriaProbe,
    pub mediator: MediatorProbe,
    pub kubelet: Arc<KubeletStats>,
}

fn line(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    out.push_str(&format!(
        "# HELP causely_agent_{name} {help}\n# TYPE causely_agent_{name} {kind}\ncausely_agent_{name} {value}\n"
    ));
}

/// The metrics page; every value is read when scraped.
pub fn render(e: &Endpoints) -> String {
    let s = &e.stats;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let v = e.victoria.counters();
    let m = e.mediator.counters();
    let mut out = String::new();
    line(&mut out, "rounds_total", "counter", "Collection rounds completed", get(&s.rounds));
    line(&mut out, "samples_total", "counter", "Raw samples handed to the VictoriaMetrics shipper", get(&s.samples));
    line(
        &mut out,
        "samples_refused_total",
        "counter",
        "Raw samples the shipper's full channel refused",
        get(&s.samples_refused),
    );
    line(&mut out, "connections_total", "counter", "Connection observations reported", get(&s.connections));
    line(&mut out, "symptom_changes_total", "counter", "Symptom changes reported", get(&s.symptom_changes));
    line(&mut out, "open_symptoms", "gauge", "Symptoms open on this node", get(&s.open_symptoms));
    line(
        &mut out,
        "unnamed_containers",
        "gauge",
        "Containers the mediator has not named yet",
        get(&s.unnamed_containers),
    );
    line(
        &mut out,
        "collect_errors_total",
        "counter",
        "cgroup and proc files that could not be read",
        get(&s.collect_errors),
    );
    line(
        &mut out,
        "ebpf_loaded",
        "gauge",
        "1 when the eBPF programs are attached",
        u64::from(s.ebpf_loaded.load(Ordering::Relaxed)),
    );
    line(&mut out, "ebpf_lost_events", "gauge", "Kernel-side updates lost (maps full)", get(&s.ebpf_lost));
    line(&mut out, "ebpf_read_errors_total", "counter", "Failed reads of the eBPF maps", get(&s.ebpf_read_errors));
    line(&mut out, "pods_known", "gauge", "Pods on this node the mediator listed", get(&s.pods_known));
    line(
        &mut out,
        "pod_list_errors_total",
        "counter",
        "Failed pod list requests to the mediator",
        get(&s.pod_list_errors),
    );
    line(&mut out, "victoria_sent_samples_total", "counter", "Samples VictoriaMetrics acknowledged", v.sent_samples);
    line(&mut out, "victoria_spooled_samples", "gauge", "Samples waiting in the on-disk spool", v.buffered_samples);
    line(&mut out, "victoria_spooled_bytes", "gauge", "Bytes in the on-disk spool", v.buffered_bytes);
    line(
        &mut out,
        "victoria_dropped_samples_total",
        "counter",
        "Samples dropped at the spool's bound, oldest first",
        v.dropped_samples,
    );
    line(
        &mut out,
        "victoria_failed_attempts_total",
        "counter",
        "Failed attempts to VictoriaMetrics",
        v.failed_attempts,
    );
    line(&mut out, "mediator_queued_reports", "gauge", "Reports waiting for the mediator", m.queued_reports);
    line(&mut out, "mediator_sent_reports_total", "counter", "Reports the mediator accepted", m.sent_reports);
    line(&mut out, "mediator_failed_attempts_total", "counter", "Failed attempts to the mediator", m.failed_attempts);
    line(
        &mut out,
        "mediator_refused_reports_total",
        "counter",
        "Reports the mediator refused for good",
        m.refused_reports,
    );
    line(
        &mut out,
        "mediator_dropped_reports_total",
        "counter",
        "Reports dropped from the full queue",
        m.dropped_reports,
    );
    kubelet_lines(&mut out, &e.kubelet);
    out
}

fn kubelet_lines(out: &mut String, k: &KubeletStats) {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    out.push_str("# HELP causely_agent_kubelet_scrapes_total Reads of the kubelet's metrics endpoints\n");
    out.push_str("# TYPE causely_agent_kubelet_scrapes_total counter\n");
    for endpoint in Endpoint::ALL {
        let i = KubeletStats::index(endpoint);
        for (result, value) in [("ok", get(&k.ok[i])), ("error", get(&k.failed[i]))] {
            out.push_str(&format!(
                "causely_agent_kubelet_scrapes_total{{endpoint=\"{}\",result=\"{result}\"}} {value}\n",
                endpoint.name()
            ));
        }
    }
    out.push_str("# HELP causely_agent_kubelet_samples_total Raw samples read from the kubelet\n");
    out.push_str("# TYPE causely_agent_kubelet_samples_total counter\n");
    for endpoint in Endpoint::ALL {
        let value = get(&k.samples[KubeletStats::index(endpoint)]);
        out.push_str(&format!("causely_agent_kubelet_samples_total{{endpoint=\"{}\"}} {value}\n", endpoint.name()));
    }
    line(out, "kubelet_pods_named", "gauge", "Pods the kubelet's cAdvisor labels named", get(&k.pods_named));
}

async fn metrics(State(e): State<Endpoints>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&e)).into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready after the first completed round.
async fn readyz(State(e): State<Endpoints>) -> Response {
    if e.stats.rounds.load(Ordering::Relaxed) > 0 {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no collection round yet").into_response()
    }
}

pub fn router(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(endpoints)
}
