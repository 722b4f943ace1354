//! Gathering what `egress verify` checks: the ledger and kept payloads (from the mediator's read
//! API or a state directory), the mediator's counters, the NetworkPolicies of the install, and
//! VictoriaMetrics' size. Every failure of a part that is not essential becomes a value the
//! report can show ("could not check", "unknown"); only an unreadable ledger stops the command.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use causely_model::UnixMillis;
use causely_model::api::EgressStatus;
use causely_model::ledger::{self, LedgerEntry, LedgerRecord};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, ListParams};

use super::metrics_text;
use super::policies;
use super::verify::{self, Counters, Gathered, Later, PolicyCheck, RawStore};
use crate::baseline::{Baseline, Component};
use crate::cli::EgressVerifyArgs;
use crate::exit::Failure;
use crate::mediator_api::{ApiError, MediatorApi};
use crate::record::Record;
use crate::render::settings::VictoriaMetrics;
use crate::render::{meta, render};

/// Ledger entries asked for per request.
const LEDGER_PAGE: u64 = 10_000;
/// Payloads asked for per request: at most this many seqs (the mediator's own bound) ...
const PAYLOAD_PAGE_SEQS: u64 = 10_000;
/// ... and about this many bytes, from the sizes the ledger records.
const PAYLOAD_PAGE_BYTES: u64 = 8 << 20;

/// A ledger with its kept payloads and the counters to reconcile it with.
struct Read {
    ledger: Vec<u8>,
    payloads: BTreeMap<u64, Vec<u8>>,
    counters: Counters,
    notes: Vec<String>,
}

/// The ledger as a mediator served it.
struct Served {
    ledger: Vec<u8>,
    lines: u64,
}

/// Reads ledger entries `from..to` page by page; stops early when the mediator has fewer.
async fn read_ledger(api: &MediatorApi, from: u64, to: u64) -> Result<Served, ApiError> {
    let mut out = Served { ledger: Vec::new(), lines: 0 };
    let mut next = from;
    while next < to {
        let limit = LEDGER_PAGE.min(to - next);
        let page = api.get(&format!("/v1/ledger?from={next}&limit={limit}")).await?;
        let lines = page.iter().filter(|b| **b == b'\n').count() as u64;
        out.ledger.extend_from_slice(&page);
        out.lines += lines;
        next += lines;
        if lines < limit {
            break;
        }
    }
    Ok(out)
}

/// Groups the seqs to fetch into requests of bounded span and size.
fn pages(wanted: &[(u64, u64)]) -> Vec<&[(u64, u64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, (seq, size)) in wanted.iter().enumerate() {
        let first = wanted[start].0;
        if i > start && (seq - first >= PAYLOAD_PAGE_SEQS || bytes + size > PAYLOAD_PAGE_BYTES) {
            out.push(&wanted[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < wanted.len() {
        out.push(&wanted[start..]);
    }
    out
}

/// Just the `seq` of a payload line, to tell which seq the range endpoint returned.
#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// The lines of a range answer by the seq each carries, if every line names a distinct seq of the
/// page in increasing order; else `None` (a tampered payload may not say truthfully which it is).
fn by_claimed_seq(body: &[u8], first: u64, last: u64) -> Option<BTreeMap<u64, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut previous = None;
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let seq = serde_json::from_slice::<SeqOnly>(line).ok()?.seq;
        if seq < first || seq > last || previous.is_some_and(|p| seq <= p) {
            return None;
        }
        previous = Some(seq);
        out.insert(seq, line.to_vec());
    }
    Some(out)
}

/// Fetches the kept payloads of `wanted`, newest pages first: payloads expire oldest first, so a
/// payload found missing before an older one is found kept was missing while that one was kept.
async fn fetch_payloads(api: &MediatorApi, wanted: &[(u64, u64)]) -> Result<BTreeMap<u64, Vec<u8>>, ApiError> {
    let mut kept = BTreeMap::new();
    for page in pages(wanted).into_iter().rev() {
        let (first, last) = (page[0].0, page[page.len() - 1].0);
        let body = api.get(&format!("/v1/payloads?from={first}&limit={}", last - first + 1)).await?;
        let wanted_here: BTreeSet<u64> = page.iter().map(|(seq, _)| *seq).collect();
        match by_claimed_seq(&body, first, last) {
            Some(lines) => kept.extend(lines.into_iter().filter(|(seq, _)| wanted_here.contains(seq))),
            None => {
                for seq in wanted_here.iter().rev() {
                    match api.get(&format!("/v1/payloads/{seq}")).await {
                        Ok(bytes) => {
                            kept.insert(*seq, bytes);
                        }
                        Err(e) if e.status() == Some(404) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
    Ok(kept)
}

/// Seqs dropped by entries of `ledger`.
fn drops(ledger: &[u8]) -> BTreeSet<u64> {
    ledger::split_lines(ledger)
        .0
        .into_iter()
        .filter_map(|line| match LedgerEntry::parse(line).ok()?.record {
            LedgerRecord::Dropped { seq, .. } => Some(seq),
            _ => None,
        })
        .collect()
}

/// The ledger, payloads and counters of a running mediator, read so that they describe one
/// moment: metrics, then the status, then the ledger up to the status's entry count.
async fn from_mediator(api: &MediatorApi, since: Option<UnixMillis>) -> Result<Read, Failure> {
    let mut notes = Vec::new();
    let metrics = match api.get("/metrics").await {
        Ok(text) => metrics_text::mediator_metrics(&String::from_utf8_lossy(&text)),
        Err(e) => {
            notes.push(format!("/metrics: {e}"));
            None
        }
    };
    let status: EgressStatus = api.get_json("/v1/egress").await?;
    let served = read_ledger(api, 0, status.ledger_entries).await?;
    let payloads = fetch_payloads(api, &verify::payloads_to_fetch(&served.ledger, since)).await?;
    let now: EgressStatus = api.get_json("/v1/egress").await?;
    let after = if now.ledger_entries > status.ledger_entries {
        read_ledger(api, status.ledger_entries, now.ledger_entries).await?.ledger
    } else {
        Vec::new()
    };
    let later = Later { delivered_seq: now.delivered_seq, dropped: drops(&after) };
    let counters = Counters::Mediator { status: Box::new(status), metrics, later };
    Ok(Read { ledger: served.ledger, payloads, counters, notes })
}

fn payload_path(dir: &Path, seq: u64) -> std::path::PathBuf {
    dir.join("payloads").join(format!("{seq:020}.json"))
}

/// The ledger, payloads and delivery cursor of a state directory (the layout of the mediator's
/// `egress::store`), read without locking it: a copy, or a stopped mediator's volume.
fn from_state_dir(dir: &Path, since: Option<UnixMillis>) -> Result<Read, Failure> {
    let ledger_path = dir.join("ledger.jsonl");
    let ledger = std::fs::read(&ledger_path)
        .map_err(|e| Failure::CouldNotRun(format!("cannot read the ledger {}: {e}", ledger_path.display())))?;
    let mut payloads = BTreeMap::new();
    for (seq, _) in verify::payloads_to_fetch(&ledger, since) {
        let path = payload_path(dir, seq);
        match std::fs::read(&path) {
            Ok(bytes) => {
                payloads.insert(seq, bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::CouldNotRun(format!("cannot read {}: {e}", path.display()))),
        }
    }
    let delivered_path = dir.join("delivered");
    let delivered_seq = match std::fs::read_to_string(&delivered_path) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|e| Failure::CouldNotRun(format!("{} does not hold a seq: {e}", delivered_path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(Failure::CouldNotRun(format!("cannot read {}: {e}", delivered_path.display()))),
    };
    Ok(Read { ledger, payloads, counters: Counters::Offline { delivered_seq }, notes: Vec::new() })
}

/// The install in the namespace: a client and its record, or why not.
async fn install(args: &EgressVerifyArgs) -> Result<(Client, Record), String> {
    let namespace = &args.namespace.namespace;
    let (client, _) = crate::kubeconfig::client(&args.cluster).await.map_err(|e| e.to_string())?;
    match crate::cluster::read_record(&client, namespace).await {
        Ok(Some(record)) => Ok((client, record)),
        Ok(None) => Err(format!("Causely is not installed in namespace {namespace} (no install record)")),
        Err(e) => Err(e.to_string()),
    }
}

/// The live NetworkPolicies of the install's namespace against the release's for its settings.
async fn policy_check(client: &Client, record: &Record) -> PolicyCheck {
    let namespace = record.settings.namespace.clone();
    let released = match Baseline::seed().map_err(|e| e.to_string()).and_then(|baseline| {
        render(&record.settings, &baseline).map_err(|e| format!("the recorded settings do not render: {e}"))
    }) {
        Ok(manifests) => manifests,
        Err(why) => return PolicyCheck::CouldNotCheck(why),
    };
    let released: Result<Vec<NetworkPolicy>, _> = released
        .into_iter()
        .filter(|m| m.kind == "NetworkPolicy")
        .map(|m| serde_json::from_value::<NetworkPolicy>(m.object))
        .collect();
    let released = match released {
        Ok(policies) => policies,
        Err(e) => return PolicyCheck::CouldNotCheck(format!("a rendered NetworkPolicy does not parse: {e}")),
    };
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), &namespace);
    match api.list(&ListParams::default()).await {
        Ok(live) => PolicyCheck::Compared { findings: policies::compare(&released, &live.items), namespace },
        Err(e) => PolicyCheck::CouldNotCheck(
            crate::exit::api_failure(format!("listing NetworkPolicies in {namespace}"), e).to_string(),
        ),
    }
}

/// VictoriaMetrics' `/metrics` straight from `url`.
async fn victoria_metrics_direct(url: &str, timeout: Duration) -> Result<String, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().timeout(timeout).build().map_err(|e| e.to_string())?;
    let url = format!("{}/metrics", url.trim_end_matches('/'));
    let response = http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    response.text().await.map_err(|e| format!("{url}: {e}"))
}

/// VictoriaMetrics' `/metrics` through the API server's proxy to the install's Service.
async fn victoria_metrics_proxied(client: &Client, namespace: &str) -> Result<String, String> {
    let service = meta::name(Component::VictoriaMetrics);
    let path = format!("/api/v1/namespaces/{namespace}/services/{service}:http/proxy/metrics");
    let request = http::Request::get(&path).body(Vec::new()).map_err(|e| e.to_string())?;
    client.request_text(request).await.map_err(|e| format!("service {namespace}/{service} through the API server: {e}"))
}

async fn raw_store(args: &EgressVerifyArgs, install: Option<&(Client, Record)>) -> RawStore {
    let timeout = args.cluster.request_timeout;
    let (source, text) = match (&args.victoria_metrics_url, install) {
        (Some(url), _) => (url.clone(), victoria_metrics_direct(url, timeout).await),
        (None, Some((client, record))) => match &record.settings.victoria_metrics {
            VictoriaMetrics::InCluster => {
                let namespace = &record.settings.namespace;
                let source =
                    format!("service {namespace}/{} (API server proxy)", meta::name(Component::VictoriaMetrics));
                (source, victoria_metrics_proxied(client, namespace).await)
            }
            VictoriaMetrics::External(url) => (url.clone(), victoria_metrics_direct(url, timeout).await),
        },
        (None, None) => {
            return RawStore::Unknown("no --victoria-metrics-url, and no install to find it through".into());
        }
    };
    match text {
        Ok(text) => match metrics_text::victoria_metrics_size(&text) {
            Some((bytes, rows)) => RawStore::Known { source, bytes, rows },
            None => RawStore::Unknown(format!("{source}: /metrics has no vm_data_size_bytes")),
        },
        Err(why) => RawStore::Unknown(crate::exit::one_line(&why)),
    }
}

/// Gathers everything `egress verify` checks. Fails only when the ledger cannot be read.
pub async fn gather(args: &EgressVerifyArgs, now: UnixMillis) -> Result<Gathered, Failure> {
    let since = args.since.map(|d| UnixMillis(now.0.saturating_sub(d.as_millis() as u64)));
    let (source, read) = match &args.state_dir {
        Some(dir) => (format!("state directory {}", dir.display()), from_state_dir(dir, since)?),
        None => {
            let api = MediatorApi::from_flags(&args.mediator, &args.namespace.namespace, &args.cluster).await?;
            (format!("the mediator {}", api.via()), from_mediator(&api, since).await?)
        }
    };
    let needs_cluster = !args.skip_network_policies || args.victoria_metrics_url.is_none();
    let install = if needs_cluster { Some(install(args).await) } else { None };
    let policies = match (&install, args.skip_network_policies) {
        (_, true) => PolicyCheck::Skipped,
        (Some(Ok((client, record))), false) => policy_check(client, record).await,
        (Some(Err(why)), false) => PolicyCheck::CouldNotCheck(crate::exit::one_line(why)),
        (None, false) => PolicyCheck::CouldNotCheck("no cluster".into()),
    };
    let raw = raw_store(args, install.as_ref().and_then(|i| i.as_ref().ok())).await;
    let Read { ledger, payloads, counters, notes } = read;
    Ok(Gathered { source, ledger, payloads, since, counters, policies, raw, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_pages_are_bounded_by_span_and_bytes() {
        let wanted: Vec<(u64, u64)> = (1..=25_000).map(|seq| (seq, 100)).collect();
        let spans: Vec<(u64, u64)> = pages(&wanted).iter().map(|p| (p[0].0, p[p.len() - 1].0)).collect();
        assert_eq!(spans, vec![(1, 10_000), (10_001, 20_000), (20_001, 25_000)]);
        let big = [(1, 5 << 20), (2, 5 << 20), (3, 1)];
        let spans: Vec<usize> = pages(&big).iter().map(|p| p.len()).collect();
        assert_eq!(spans, vec![1, 2]);
        assert!(pages(&[]).is_empty());
    }

    #[test]
    fn range_lines_are_attributed_by_their_seq_only_when_that_is_unambiguous() {
        let body = b"{\"clusterId\":\"a\",\"seq\":3}\n{\"clusterId\":\"a\",\"seq\":5}\n";
        let lines = by_claimed_seq(body, 3, 6).unwrap();
        assert_eq!(lines.keys().copied().collect::<Vec<_>>(), vec![3, 5]);
        assert_eq!(lines[&5], b"{\"clusterId\":\"a\",\"seq\":5}");
        assert!(by_claimed_seq(b"{\"seq\":5}\n{\"seq\":5}\n", 3, 6).is_none(), "a repeated seq");
        assert!(by_claimed_seq(b"{\"seq\":9}\n", 3, 6).is_none(), "outside the page");
        assert!(by_claimed_seq(b"{\"seq\":4,\"seq\":4}\n", 3, 6).is_none(), "a repeated key");
        assert!(by_claimed_seq(b"{\"se\n", 3, 6).is_none(), "not JSON");
        assert_eq!(by_claimed_seq(b"", 3, 6).map(|m| m.len()), Some(0));
    }
}
