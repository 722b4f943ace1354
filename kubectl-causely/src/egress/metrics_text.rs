//! Reading counters from Prometheus text: the mediator's egress counters and what VictoriaMetrics
//! says it stores, for `egress verify`. Pure: text in, numbers out.

use super::verify::MetricCounters;

/// Sums the samples of `name` (any labels) in Prometheus text; `None` when it is not exposed.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        // The value follows the labels (which may hold spaces inside quotes) and precedes an
        // optional timestamp.
        let after_labels = match rest.rfind('}') {
            Some(end) => &rest[end + 1..],
            None => rest,
        };
        if let Some(value) = after_labels.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// The egress counters of a mediator's `/metrics`; `None` when they are not all there.
pub fn mediator_metrics(text: &str) -> Option<MetricCounters> {
    let get = |name: &str| metric_sum(text, name).map(|v| v as u64);
    Some(MetricCounters {
        batches: get("causely_mediator_egress_batches_total")?,
        bytes: get("causely_mediator_egress_bytes_total")?,
        // No sample until the first refusal: a family with no label set yet.
        rejected: get("causely_mediator_egress_rejected_total").unwrap_or(0),
        dropped: get("causely_mediator_egress_dropped_total")?,
    })
}

/// What VictoriaMetrics' own `/metrics` says it stores: bytes (`vm_data_size_bytes`, every part)
/// and rows (`vm_rows` of its data storage, the index left out).
pub fn victoria_metrics_size(text: &str) -> Option<(u64, Option<u64>)> {
    let bytes = metric_sum(text, "vm_data_size_bytes")? as u64;
    let rows = text
        .lines()
        .filter(|l| l.starts_with("vm_rows{") && l.contains("type=\"storage/"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
        .map(|v| v as u64);
    Some((bytes, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_counters_are_summed_over_label_sets() {
        let text = "# HELP x\ncausely_mediator_egress_batches_total 12\ncausely_mediator_egress_bytes_total 3400\n\
                    causely_mediator_egress_rejected_total{rule=\"series-string\"} 1\n\
                    causely_mediator_egress_rejected_total{rule=\"number array\"} 2 1700000000\n\
                    causely_mediator_egress_dropped_total 0\ncausely_mediator_egress_batches_totalx 9\n";
        assert_eq!(mediator_metrics(text), Some(MetricCounters { batches: 12, bytes: 3400, rejected: 3, dropped: 0 }));
        assert_eq!(mediator_metrics("causely_mediator_egress_batches_total 1\n"), None);
        let vm = "vm_data_size_bytes{type=\"indexdb\"} 17590\nvm_data_size_bytes{type=\"storage/small\"} 3275\n\
                  vm_rows{type=\"indexdb\"} 1227\nvm_rows{type=\"storage/small\"} 662\nvm_rows{type=\"storage/big\"} 0\n";
        assert_eq!(victoria_metrics_size(vm), Some((20_865, Some(662))));
        assert_eq!(victoria_metrics_size("go_goroutines 5\n"), None);
    }
}
