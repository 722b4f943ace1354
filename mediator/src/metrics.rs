//! The mediator's Prometheus metrics: index sizes, intake counts and rejects, egress batches,
//! bytes, rejected and dropped batches, queue depth, and delivery.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule: String,
}

/// Every metric the mediator exposes, registered once.
#[derive(Debug, Default)]
pub struct Metrics {
    pub intake_reports: Family<ResultLabel, Counter>,
    pub intake_bytes: Counter,
    pub intake_connections: Family<ResultLabel, Counter>,
    pub index_objects: Family<KindLabel, Gauge>,
    pub watch_errors: Family<KindLabel, Counter>,
    pub topology_entities: Gauge,
    pub topology_edges: Gauge,
    pub symptoms_open: Gauge,
    pub egress_batches: Counter,
    pub egress_bytes: Counter,
    pub egress_rejected: Family<RuleLabel, Counter>,
    pub egress_dropped: Counter,
    pub egress_delivered_seq: Gauge,
    pub egress_queue_batches: Gauge,
    pub egress_queue_bytes: Gauge,
    pub upstream_attempts: Family<ResultLabel, Counter>,
    pub leader: Gauge,
    pub stream_clients: Gauge,
    pub actions: Family<ResultLabel, Counter>,
    pub actions_pending: Gauge,
}

impl Metrics {
    pub fn register(&self) -> Registry {
        let mut r = Registry::with_prefix("causely_mediator");
        r.register("intake_reports", "Agent reports received, by result", self.intake_reports.clone());
        r.register("intake_bytes", "Bytes of agent reports accepted", self.intake_bytes.clone());
        r.register(
            "intake_connections",
            "Connection observations, by whether both ends resolved",
            self.intake_connections.clone(),
        );
        r.register(
            "actions",
            "Remediation action requests (submissions, pulls, results), by result",
            self.actions.clone(),
        );
        r.register("actions_pending", "Remediation actions waiting for the executor", self.actions_pending.clone());
        r.register("index_objects", "Objects in the cluster index, by kind", self.index_objects.clone());
        r.register("watch_errors", "Errors from cluster watches, by kind", self.watch_errors.clone());
        r.register("topology_entities", "Entities in the current topology", self.topology_entities.clone());
        r.register("topology_edges", "Edges in the current topology", self.topology_edges.clone());
        r.register("symptoms_open", "Open symptoms", self.symptoms_open.clone());
        r.register("egress_batches", "Batches accepted for egress (guarded and ledgered)", self.egress_batches.clone());
        r.register("egress_bytes", "Bytes of batches accepted for egress", self.egress_bytes.clone());
        r.register("egress_rejected", "Batches the egress guard refused, by rule", self.egress_rejected.clone());
        r.register(
            "egress_dropped",
            "Accepted batches dropped undelivered at the disk bound",
            self.egress_dropped.clone(),
        );
        r.register("egress_delivered_seq", "Highest seq the upstream acknowledged", self.egress_delivered_seq.clone());
        r.register(
            "egress_queue_batches",
            "Batches accepted and not yet acknowledged",
            self.egress_queue_batches.clone(),
        );
        r.register("egress_queue_bytes", "Bytes accepted and not yet acknowledged", self.egress_queue_bytes.clone());
        r.register("upstream_attempts", "Delivery attempts, by result", self.upstream_attempts.clone());
        r.register("leader", "1 while this replica holds the Lease and sends", self.leader.clone());
        r.register("stream_clients", "Clients following the change stream", self.stream_clients.clone());
        r
    }

    pub fn intake(&self, result: &'static str) {
        self.intake_reports.get_or_create(&ResultLabel { result }).inc();
    }
}
