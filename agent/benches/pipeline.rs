//! User-space throughput of one collection round on one core: PODS pod containers (default 100)
//! and AGGREGATES connection aggregates (default 10,000, the kernel's per (cgroup, peer, direction)
//! sums) through `Pipeline::round` (rates, detectors, observations, raw samples) and the
//! Prometheus encoding of the samples for VictoriaMetrics. Prints aggregates per second.
//! `cargo bench -p causely-agent --bench pipeline`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use causely_agent::cgroup::{PodContainer, Qos};
use causely_agent::collect::{ContainerReading, ContainerStats, CpuLimit, Throttling};
use causely_agent::detect::{Detector, RuleSet};
use causely_agent::pipeline::{ConnectionInput, Pipeline, PodNames, RoundInput};
use causely_agent::ship::prom;
use causely_model::Direction;
use causely_model::api::{NodeContainer, NodePod, NodePods};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pod(i: usize) -> PodContainer {
    PodContainer {
        pod_uid: format!("00000000-0000-4000-8000-{i:012}"),
        container_id: Some(format!("{i:064x}")),
        qos: Qos::Burstable,
    }
}

fn round_input(pods: usize, aggregates: usize, round: u64) -> RoundInput {
    let containers = (0..pods)
        .map(|i| ContainerReading {
            cgroup: format!("/kubepods/burstable/pod{}/{}", pod(i).pod_uid, pod(i).container_id.unwrap_or_default()),
            pod: pod(i),
            stats: ContainerStats {
                cpu_usage_usec: Some(round * 1_000_000),
                throttling: Some(Throttling { nr_periods: round * 100, nr_throttled: round, throttled_usec: round }),
                cpu_limit: Some(CpuLimit { quota_us: 100_000, period_us: 100_000 }),
                memory_usage_bytes: Some(100 << 20),
                memory_limit_bytes: Some(512 << 20),
                oom_kills: Some(0),
            },
            errors: vec![],
        })
        .collect();
    let connections = (0..aggregates)
        .map(|i| ConnectionInput {
            pod: Some(pod(i % pods)),
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 244, 0, (i % pods) as u8)), 0),
            remote: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 96, (i / 256) as u8, i as u8)), 8080),
            direction: if i % 2 == 0 { Direction::Outbound } else { Direction::Inbound },
            established: 10,
            failed: u64::from(i % 7 == 0),
            retransmits: u64::from(i % 11 == 0),
            rtt_us: Some(250),
        })
        .collect();
    RoundInput { containers, connections, time_ms: round * 10_000, ..RoundInput::default() }
}

fn main() -> anyhow::Result<()> {
    let pods = env("PODS", 100);
    let aggregates = env("AGGREGATES", 10_000);
    let rounds = env("ROUNDS", 50) as u64;
    let names = PodNames::new(NodePods {
        pods: (0..pods)
            .map(|i| NodePod {
                uid: pod(i).pod_uid,
                namespace: "bench".into(),
                name: format!("pod-{i}"),
                containers: vec![NodeContainer { name: "main".into(), id: pod(i).container_id }],
            })
            .collect(),
    });
    let mut pipeline = Pipeline::new("bench-node", Detector::new(RuleSet::builtin()?)?);
    let inputs: Vec<RoundInput> = (1..=rounds).map(|r| round_input(pods, aggregates, r)).collect();
    let mut samples = 0usize;
    let mut bytes = 0usize;
    let started = Instant::now();
    for input in inputs {
        let out = pipeline.round(input, &names);
        let encoded = prom::encode(&out.samples);
        samples += out.samples.len();
        bytes += black_box(encoded).text.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_round = elapsed / rounds as f64;
    println!(
        "{pods} containers, {aggregates} connection aggregates per round, {rounds} rounds: {:.2} ms per round, \
         {:.0} aggregates/s on one core ({:.0} ns each, containers included), {} samples and {} bytes of text per round",
        per_round * 1e3,
        aggregates as f64 / per_round,
        per_round * 1e9 / aggregates as f64,
        samples as u64 / rounds,
        bytes as u64 / rounds,
    );
    Ok(())
}
