//! One collection round as plain values: container, node and connection readings in; raw samples
//! (for VictoriaMetrics only), connection observations and symptom changes (for the mediator) out.
//! No I/O and no clock: the caller passes the time.

mod names;

use std::collections::HashMap;
use std::net::SocketAddr;

use causely_model::{ConnectionObservation, Direction, EntityId, PeerAddr, Protocol, SymptomChange};

pub use names::PodNames;

use crate::cgroup::PodContainer;
use crate::collect::{
    ContainerReading, ContainerStats, NodeReading, NodeStats, Sample, container_rates, container_samples, node_rates,
    node_samples,
};
use crate::detect::{Detector, Observation, Signal, container_observations, node_observations};

/// One (container, peer, direction) aggregate of TCP activity over the round, as the kernel
/// counted it; `pod` is `None` when its cgroup is not a pod's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInput {
    pub pod: Option<PodContainer>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub direction: Direction,
    pub established: u64,
    pub failed: u64,
    pub retransmits: u64,
    /// Mean smoothed RTT (microseconds) of the connections that closed in the round, if any did.
    pub rtt_us: Option<u64>,
}

/// The 95th percentile of one cgroup's run-queue latency over the round (the upper bound of the
/// kernel histogram's bucket that holds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunQueueInput {
    pub pod: PodContainer,
    pub p95_us: u64,
}

/// What one round read.
#[derive(Debug, Default)]
pub struct RoundInput {
    pub containers: Vec<ContainerReading>,
    pub node: NodeReading,
    pub connections: Vec<ConnectionInput>,
    pub run_queue: Vec<RunQueueInput>,
    pub time_ms: u64,
}

/// What one round produced.
#[derive(Debug, Default)]
pub struct RoundOutput {
    /// Raw samples: to VictoriaMetrics, never to the mediator.
    pub samples: Vec<Sample>,
    pub connections: Vec<ConnectionObservation>,
    pub symptoms: Vec<SymptomChange>,
    /// Containers whose name is not known yet (the mediator has not listed their pod).
    pub unnamed_containers: u64,
}

/// The agent's state between rounds: the previous readings (rates need two) and the detectors.
#[derive(Debug)]
pub struct Pipeline {
    node: String,
    detector: Detector,
    /// Each container's last stats, time, and name (once known).
    previous: HashMap<String, (ContainerStats, u64, Option<EntityId>)>,
    previous_node: Option<(NodeStats, u64)>,
}

fn saturating_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Pipeline {
    pub fn new(node: &str, detector: Detector) -> Self {
        Pipeline { node: node.to_owned(), detector, previous: HashMap::new(), previous_node: None }
    }

    pub fn open_symptoms(&self) -> usize {
        self.detector.open_count()
    }

    pub fn round(&mut self, input: RoundInput, names: &PodNames) -> RoundOutput {
        let now = input.time_ms;
        let elapsed_s = self.previous_node.as_ref().map_or(0.0, |(_, at)| now.saturating_sub(*at) as f64 / 1e3);
        let mut out = RoundOutput::default();
        let mut observations: Vec<Observation> = Vec::new();
        let mut seen = HashMap::new();
        for reading in &input.containers {
            out.samples.extend(container_samples(&self.node, reading, now));
            let entity = names.container(&reading.pod);
            if entity.is_none() && !names.is_sandbox(&reading.pod) {
                out.unnamed_containers += 1;
            }
            if let (Some(entity), Some((earlier, at, _))) = (&entity, self.previous.get(&reading.cgroup)) {
                observations.extend(container_observations(
                    entity,
                    &container_rates(earlier, *at, &reading.stats, now),
                    now,
                ));
            }
            seen.insert(reading.cgroup.clone(), (reading.stats, now, entity));
        }
        // A container whose cgroup is gone has stopped: its symptoms resolve now.
        let before = std::mem::replace(&mut self.previous, seen);
        for (cgroup, (_, _, entity)) in before {
            if let (false, Some(entity)) = (self.previous.contains_key(&cgroup), entity) {
                out.symptoms.extend(self.detector.vanished(&entity, now));
            }
        }

        out.samples.extend(node_samples(&self.node, &input.node.stats, now));
        if let Some((earlier, _)) = &self.previous_node {
            let rates = node_rates(earlier, &input.node.stats);
            observations.extend(node_observations(&EntityId::node(self.node.clone()), &rates, now));
        }
        self.previous_node = Some((input.node.stats, now));

        self.connections(&input, names, elapsed_s, &mut out, &mut observations);
        for rq in &input.run_queue {
            let seconds = rq.p95_us as f64 / 1e6;
            let mut labels =
                vec![("node".to_owned(), self.node.clone()), ("pod_uid".to_owned(), rq.pod.pod_uid.clone())];
            if let Some(id) = &rq.pod.container_id {
                labels.push(("container_id".to_owned(), id.clone()));
            }
            out.samples.push(Sample {
                metric: "causely_runqueue_latency_p95_seconds".to_owned(),
                labels,
                value: seconds,
                time_ms: now,
            });
            if let Some(entity) = names.container(&rq.pod) {
                observations.push(Observation {
                    signal: Signal::ContainerRunQueueLatencyP95Seconds,
                    entity,
                    value: seconds,
                    time_ms: now,
                });
            }
        }
        for observation in &observations {
            out.symptoms.extend(self.detector.observe(observation));
        }
        out.symptoms.extend(self.detector.tick(now));
        out
    }

    fn connections(
        &self,
        input: &RoundInput,
        names: &PodNames,
        elapsed_s: f64,
        out: &mut RoundOutput,
        observations: &mut Vec<Observation>,
    ) {
        let mut per_container: HashMap<EntityId, (u64, u64)> = HashMap::new();
        for c in &input.connections {
            let Some(pod) = &c.pod else { continue };
            out.connections.push(ConnectionObservation {
                local: PeerAddr { ip: c.local.ip(), port: c.local.port() },
                remote: PeerAddr { ip: c.remote.ip(), port: c.remote.port() },
                direction: c.direction,
                protocol: Protocol::Tcp,
                pod_uid: Some(pod.pod_uid.clone()),
                container_id: pod.container_id.clone(),
                established: saturating_u32(c.established),
                failed: saturating_u32(c.failed),
            });
            let mut labels = vec![
                ("node".to_owned(), self.node.clone()),
                ("pod_uid".to_owned(), pod.pod_uid.clone()),
                ("direction".to_owned(), format!("{:?}", c.direction).to_lowercase()),
                ("peer".to_owned(), c.remote.ip().to_string()),
            ];
            if let Some(id) = &pod.container_id {
                labels.push(("container_id".to_owned(), id.clone()));
            }
            for (metric, value) in [
                ("causely_tcp_established", c.established),
                ("causely_tcp_failed", c.failed),
                ("causely_tcp_retransmits", c.retransmits),
            ] {
                out.samples.push(Sample {
                    metric: metric.to_owned(),
                    labels: labels.clone(),
                    value: value as f64,
                    time_ms: input.time_ms,
                });
            }
            if let Some(rtt_us) = c.rtt_us {
                out.samples.push(Sample {
                    metric: "causely_tcp_rtt_seconds".to_owned(),
                    labels: labels.clone(),
                    value: rtt_us as f64 / 1e6,
                    time_ms: input.time_ms,
                });
            }
            if let Some(entity) = names.container(pod) {
                let entry = per_container.entry(entity).or_default();
                entry.0 += c.retransmits;
                entry.1 += c.failed;
            }
        }
        if elapsed_s > 0.0 {
            for (entity, (retransmits, failed)) in per_container {
                for (signal, n) in [
                    (Signal::ContainerTcpRetransmitsPerSecond, retransmits),
                    (Signal::ContainerConnectFailuresPerSecond, failed),
                ] {
                    observations.push(Observation {
                        signal,
                        entity: entity.clone(),
                        value: n as f64 / elapsed_s,
                        time_ms: input.time_ms,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use causely_model::api::{NodeContainer, NodePod, NodePods};
    use causely_model::{SymptomKind, UnixMillis};

    use super::*;
    use crate::cgroup::Qos;
    use crate::collect::CpuLimit;
    use crate::detect::RuleSet;

    const UID: &str = "0d6f6c1e-4a1b-4b36-9d1c-2f0a7c1e9b11";
    const ID: &str = "4f1e9a0000000000000000000000000000000000000000000000000000000000";

    fn names() -> PodNames {
        PodNames::new(NodePods {
            pods: vec![NodePod {
                uid: UID.into(),
                namespace: "shop".into(),
                name: "burner".into(),
                containers: vec![NodeContainer { name: "main".into(), id: Some(ID.into()) }],
            }],
        })
    }

    fn pod() -> PodContainer {
        PodContainer { pod_uid: UID.into(), container_id: Some(ID.into()), qos: Qos::Burstable }
    }

    /// A container limited to half a core that used `cores` of CPU since the start.
    fn burner(used_usec: u64) -> ContainerReading {
        ContainerReading {
            cgroup: format!("/kubepods/burstable/pod{UID}/{ID}"),
            pod: pod(),
            stats: ContainerStats {
                cpu_usage_usec: Some(used_usec),
                cpu_limit: Some(CpuLimit { quota_us: 50_000, period_us: 100_000 }),
                ..ContainerStats::default()
            },
            errors: vec![],
        }
    }

    fn pipeline() -> Pipeline {
        Pipeline::new("n1", Detector::new(RuleSet::builtin().unwrap()).unwrap())
    }

    #[test]
    fn a_container_using_its_whole_cpu_limit_for_a_minute_opens_one_symptom_without_its_values() {
        let mut p = pipeline();
        let mut opened = Vec::new();
        // 0.5 cores used every second: 100 % of a half-core limit, for 90 s in 10 s rounds.
        for round in 0..10u64 {
            let input = RoundInput {
                containers: vec![burner(round * 5_000_000)],
                time_ms: round * 10_000,
                ..RoundInput::default()
            };
            let out = p.round(input, &names());
            assert!(out.samples.iter().any(|s| s.metric.contains("cpu")), "raw samples go to VictoriaMetrics");
            opened.extend(out.symptoms);
        }
        assert_eq!(opened.len(), 1, "{opened:?}");
        let SymptomChange::Opened { symptom } = &opened[0] else { panic!("{opened:?}") };
        assert_eq!(symptom.kind, SymptomKind::HighCpuUtilization);
        assert_eq!(symptom.entity, EntityId::container("shop", "burner", "main"));
        assert!(symptom.started >= UnixMillis(10_000));
        let json = serde_json::to_string(&opened[0]).unwrap();
        assert!(!json.contains("5000000") && !json.contains("\"value\""), "{json}");
    }

    #[test]
    fn a_container_that_stops_resolves_its_symptoms_at_once() {
        let mut p = pipeline();
        for round in 0..10u64 {
            let input = RoundInput {
                containers: vec![burner(round * 5_000_000)],
                time_ms: round * 10_000,
                ..RoundInput::default()
            };
            p.round(input, &names());
        }
        assert_eq!(p.open_symptoms(), 1);
        let out = p.round(RoundInput { time_ms: 100_000, ..RoundInput::default() }, &names());
        assert!(matches!(out.symptoms.as_slice(), [SymptomChange::Resolved { .. }]), "{:?}", out.symptoms);
        assert_eq!(p.open_symptoms(), 0);
    }

    #[test]
    fn a_long_run_queue_wait_opens_a_run_queue_latency_symptom() {
        let mut p = pipeline();
        let mut changes = Vec::new();
        for round in 0..10u64 {
            let input = RoundInput {
                run_queue: vec![RunQueueInput { pod: pod(), p95_us: 80_000 }],
                time_ms: round * 10_000,
                ..RoundInput::default()
            };
            let out = p.round(input, &names());
            assert!(out.samples.iter().any(|s| s.metric == "causely_runqueue_latency_p95_seconds"));
            changes.extend(out.symptoms);
        }
        let kinds: Vec<SymptomKind> = changes
            .iter()
            .filter_map(|c| match c {
                SymptomChange::Opened { symptom } => Some(symptom.kind),
                SymptomChange::Resolved { .. } => None,
            })
            .collect();
        assert_eq!(kinds, [SymptomKind::RunQueueLatency]);
    }

    /// One outbound connection of the pod to a database Service, with the RTT of those that closed.
    fn outbound(rtt_us: Option<u64>) -> ConnectionInput {
        ConnectionInput {
            pod: Some(pod()),
            local: "10.244.1.5:0".parse().unwrap(),
            remote: "10.96.0.20:5432".parse().unwrap(),
            direction: Direction::Outbound,
            established: 1,
            failed: 0,
            retransmits: 0,
            rtt_us,
        }
    }

    #[test]
    fn connections_become_observations_by_pod_uid_and_raw_counts_become_samples() {
        let mut p = pipeline();
        let connection = ConnectionInput { established: 7, failed: 2, retransmits: 1, ..outbound(Some(1_500)) };
        let host = ConnectionInput { pod: None, ..connection.clone() };
        let out = p.round(
            RoundInput { connections: vec![connection, host], time_ms: 1_000, ..RoundInput::default() },
            &names(),
        );
        assert_eq!(out.connections.len(), 1, "a host process's connections are not reported");
        let c = &out.connections[0];
        assert_eq!((c.established, c.failed, c.pod_uid.as_deref()), (7, 2, Some(UID)));
        assert_eq!(c.remote.port, 5432);
        let retransmits: Vec<&Sample> = out.samples.iter().filter(|s| s.metric == "causely_tcp_retransmits").collect();
        assert_eq!(retransmits.len(), 1);
        assert_eq!(retransmits[0].value, 1.0);
        let rtt: Vec<&Sample> = out.samples.iter().filter(|s| s.metric == "causely_tcp_rtt_seconds").collect();
        assert_eq!(rtt.len(), 1);
        assert_eq!(rtt[0].value, 0.0015);
        assert!(!serde_json::to_string(&out.connections).unwrap().contains("1500"), "RTT stays raw");
    }

    #[test]
    fn a_round_in_which_no_connection_closed_has_no_rtt_sample() {
        let mut p = pipeline();
        let connection = outbound(None);
        let out =
            p.round(RoundInput { connections: vec![connection], time_ms: 1_000, ..RoundInput::default() }, &names());
        assert!(out.samples.iter().all(|s| s.metric != "causely_tcp_rtt_seconds"));
    }

    #[test]
    fn containers_the_mediator_has_not_named_are_counted_and_not_judged() {
        let mut p = pipeline();
        let out = p.round(
            RoundInput { containers: vec![burner(0)], time_ms: 0, ..RoundInput::default() },
            &PodNames::default(),
        );
        assert_eq!(out.unnamed_containers, 1);
        assert!(!out.samples.is_empty(), "its raw samples are still kept");
    }

    #[test]
    fn a_pods_sandbox_cgroup_is_not_waiting_for_a_name() {
        let mut p = pipeline();
        let mut sandbox = burner(0);
        sandbox.pod.container_id = Some("5a6c1e62e3e5ef06237e057af0eb3a01520283096872ab90f564ea4505d05d75".into());
        sandbox.cgroup = format!("/kubepods/burstable/pod{UID}/5a6c1e62");
        let out =
            p.round(RoundInput { containers: vec![burner(0), sandbox], time_ms: 0, ..RoundInput::default() }, &names());
        assert_eq!(out.unnamed_containers, 0, "the burner is named and its pod's pause container needs no name");
    }
}
