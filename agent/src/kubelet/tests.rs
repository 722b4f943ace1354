//! The kubelet's exposition text as the agent reads it, on fixtures in the shape a kubelet with
//! containerd and the systemd cgroup driver writes.

use super::*;

const CADVISOR: &str = include_str!("fixtures/cadvisor.txt");
const METRICS: &str = include_str!("fixtures/metrics.txt");
const UID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const APP: &str = "4c2ac3e1b0a1f7d84e6b1f4e2e9b3f7a0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a";
const PROXY: &str = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b";

fn label<'a>(sample: &'a Sample, name: &str) -> Option<&'a str> {
    sample.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn every_cadvisor_series_becomes_a_sample_labelled_with_the_node_at_its_own_time() {
    let out = samples(CADVISOR, "worker-1", 1);
    assert_eq!(out.len(), 9, "{out:#?}");
    assert!(out.iter().all(|s| label(s, "node") == Some("worker-1")));
    let app = out
        .iter()
        .find(|s| s.metric == "container_cpu_usage_seconds_total" && label(s, "container") == Some("app"))
        .expect("the app container's CPU");
    assert_eq!(app.value, 10.25);
    assert_eq!(app.time_ms, 1_732_845_600_123, "the exposition's timestamp, not the scrape time");
    let memory = out.iter().find(|s| s.metric == "container_memory_working_set_bytes").expect("memory");
    assert_eq!(memory.value, 52_359_168.0);
    assert!(out.iter().all(|s| s.labels.windows(2).all(|w| w[0].0 < w[1].0)), "labels sorted, no duplicates");
}

#[test]
fn series_without_a_timestamp_get_the_scrape_time() {
    let out = samples(METRICS, "worker-1", 1_700_000_000_000);
    let pods = out.iter().find(|s| s.metric == "kubelet_running_pods").expect("running pods");
    assert_eq!((pods.value, pods.time_ms), (12.0, 1_700_000_000_000));
}

#[test]
fn histograms_come_back_as_their_bucket_sum_and_count_series() {
    let out = samples(METRICS, "worker-1", 5);
    let mut buckets: Vec<(String, f64)> = out
        .iter()
        .filter(|s| s.metric == "kubelet_pod_start_duration_seconds_bucket")
        .map(|s| (label(s, "le").unwrap_or_default().to_owned(), s.value))
        .collect();
    buckets.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(buckets, [("0.5".to_owned(), 3.0), ("5".to_owned(), 9.0), ("+Inf".to_owned(), 10.0)]);
    for (metric, value) in
        [("kubelet_pod_start_duration_seconds_sum", 42.125), ("kubelet_pod_start_duration_seconds_count", 10.0)]
    {
        assert_eq!(out.iter().find(|s| s.metric == metric).map(|s| s.value), Some(value), "{metric}");
    }
}

#[test]
fn a_node_label_of_the_kubelets_own_moves_aside_for_ours() {
    let out = samples(METRICS, "worker-1", 5);
    let named = out.iter().find(|s| s.metric == "kubelet_node_name").expect("node name");
    assert_eq!(label(named, "node"), Some("worker-1"));
    assert_eq!(label(named, "exported_node"), Some("worker-1"));
    let others = samples(METRICS, "worker-2", 5);
    let named = others.iter().find(|s| s.metric == "kubelet_node_name").expect("node name");
    assert_eq!((label(named, "node"), label(named, "exported_node")), (Some("worker-2"), Some("worker-1")));
}

#[test]
fn cadvisor_labels_name_each_pod_container_by_runtime_id_without_the_pause_container() {
    let pods = pods(&samples(CADVISOR, "worker-1", 1));
    assert_eq!(pods.pods.len(), 1, "{pods:#?}");
    let pod = &pods.pods[0];
    assert_eq!((pod.uid.as_str(), pod.namespace.as_str(), pod.name.as_str()), (UID, "shop", "web-7d9f8b6c5d-x2k4q"));
    let mut containers: Vec<(&str, Option<&str>)> =
        pod.containers.iter().map(|c| (c.name.as_str(), c.id.as_deref())).collect();
    containers.sort();
    assert_eq!(containers, [("app", Some(APP)), ("proxy", Some(PROXY))]);
}

#[test]
fn text_that_is_not_an_exposition_gives_no_samples_and_no_panic() {
    for junk in ["", "<html>403 Forbidden</html>", "metric{unclosed=\"x 1", "\u{0}\u{1}binary", "a b c d e"] {
        let out = samples(junk, "n", 1);
        assert!(out.iter().all(|s| label(s, "node") == Some("n")), "{junk:?}: {out:?}");
        assert!(pods(&out).pods.is_empty());
    }
}
