//! The kubelet's metrics: its own (`/metrics`) and cAdvisor's per-container ones
//! (`/metrics/cadvisor`), both readable with the agent's published `nodes/metrics` permission.
//! They become raw samples for VictoriaMetrics (never for the mediator), and cAdvisor's labels
//! name the containers behind cgroups, a second source besides the mediator's pod list.
//!
//! Pure: exposition text in, samples and names out. The HTTP side is in [`scrape`].

pub mod scrape;

use std::collections::BTreeMap;

use causely_model::api::{NodeContainer, NodePod, NodePods};
use prometheus_parse::{Scrape, Value};

use crate::cgroup::parse_cgroup_path;
use crate::ship::Sample;

/// The kubelet endpoints the agent reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// The kubelet's own metrics.
    Metrics,
    /// cAdvisor's container metrics.
    Cadvisor,
}

impl Endpoint {
    pub const ALL: [Endpoint; 2] = [Endpoint::Metrics, Endpoint::Cadvisor];

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Metrics => "/metrics",
            Endpoint::Cadvisor => "/metrics/cadvisor",
        }
    }

    /// The label value in the agent's own metrics.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Metrics => "metrics",
            Endpoint::Cadvisor => "cadvisor",
        }
    }
}

/// Prometheus' float spelling for `le` and `quantile` labels.
fn bound(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        value.to_string()
    }
}

/// Every series of an exposition `text` as samples, each labelled with `node` (a label of that
/// name already there is kept as `exported_node`, as Prometheus does) and timestamped with the
/// exposition's own time or else `now_ms`. Histograms and summaries come back as their
/// `_bucket`/quantile series; lines that are not samples are skipped.
pub fn samples(text: &str, node: &str, now_ms: u64) -> Vec<Sample> {
    let now = chrono::DateTime::from_timestamp_millis(i64::try_from(now_ms).unwrap_or(i64::MAX)).unwrap_or_default();
    // The parser takes owned lines; reading from a string cannot fail.
    let Ok(scrape) = Scrape::parse_at(text.lines().map(|l| Ok(l.to_owned())), now) else { return Vec::new() };
    let mut out = Vec::with_capacity(scrape.samples.len());
    for parsed in scrape.samples {
        let time_ms = u64::try_from(parsed.timestamp.timestamp_millis()).unwrap_or(now_ms);
        let mut labels: BTreeMap<String, String> = parsed.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(theirs) = labels.remove("node") {
            labels.insert("exported_node".to_owned(), theirs);
        }
        labels.insert("node".to_owned(), node.to_owned());
        let mut push = |metric: String, extra: Option<(&str, String)>, value: f64| {
            let mut labels = labels.clone();
            if let Some((name, v)) = extra {
                labels.insert(name.to_owned(), v);
            }
            out.push(Sample { metric, labels: labels.into_iter().collect(), value, time_ms });
        };
        match parsed.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => push(parsed.metric, None, v),
            Value::Histogram(buckets) => {
                for b in buckets {
                    push(format!("{}_bucket", parsed.metric), Some(("le", bound(b.less_than))), b.count);
                }
            }
            Value::Summary(quantiles) => {
                for q in quantiles {
                    push(parsed.metric.clone(), Some(("quantile", bound(q.quantile))), q.count);
                }
            }
        }
    }
    out
}

/// The pods and containers cAdvisor's series name: each series whose `id` label is a pod
/// container's cgroup and which carries `namespace`, `pod` and `container` (the pause container,
/// `POD`, and pod-level series without a container are skipped).
pub fn pods(samples: &[Sample]) -> NodePods {
    let mut by_uid: BTreeMap<String, NodePod> = BTreeMap::new();
    for sample in samples {
        let label = |name: &str| sample.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let (Some(id), Some(namespace), Some(pod), Some(container)) =
            (label("id"), label("namespace"), label("pod"), label("container"))
        else {
            continue;
        };
        if container.is_empty() || container == "POD" {
            continue;
        }
        let Some(cgroup) = parse_cgroup_path(id) else { continue };
        let Some(container_id) = cgroup.container_id else { continue };
        let entry = by_uid.entry(cgroup.pod_uid.clone()).or_insert_with(|| NodePod {
            uid: cgroup.pod_uid.clone(),
            namespace: namespace.to_owned(),
            name: pod.to_owned(),
            containers: Vec::new(),
        });
        if !entry.containers.iter().any(|c| c.id.as_deref() == Some(container_id.as_str())) {
            entry.containers.push(NodeContainer { name: container.to_owned(), id: Some(container_id) });
        }
    }
    NodePods { pods: by_uid.into_values().collect() }
}

#[cfg(test)]
mod tests;
