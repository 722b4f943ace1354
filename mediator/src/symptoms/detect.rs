//! Cluster symptom detectors: a pure function from the index and the time to the conditions that hold now.
//!
//! A finding is a statement about this moment; the symptom book turns the stream of findings into symptoms
//! that open once and resolve once.

use causely_model::{Comparator, EntityId, Severity, SymptomKind, Threshold, UnixMillis, WorkloadKind};
use croner::parser::{CronParser, Seconds};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::rules::{ClusterRules, rule};
use crate::index::ClusterIndex;
use crate::index::records::{Active, CronRecord, PodPhase, PodRecord, Waiting, WorkloadRecord, WorkloadState};

/// A condition a detector found on one entity at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: &'static str,
    pub kind: SymptomKind,
    pub entity: EntityId,
    pub severity: Severity,
    pub threshold: Option<Threshold>,
    /// When the condition began according to the object itself (a condition's lastTransitionTime, an OOM
    /// kill's finish time), if it says. The book starts the symptom there, so a restarted mediator derives the
    /// same symptom id.
    pub since: Option<UnixMillis>,
    /// How long the finding must persist before its symptom opens.
    pub open_after_ms: u64,
    /// How long the finding must stay absent before its symptom resolves.
    pub resolve_after_ms: u64,
}

fn seconds(ms: u64) -> u32 {
    u32::try_from(ms / 1_000).unwrap_or(u32::MAX)
}

struct Detector<'a> {
    rules: &'a ClusterRules,
    now: UnixMillis,
    found: Vec<Finding>,
}

impl Detector<'_> {
    fn found(&mut self, rule: &'static str, kind: SymptomKind, entity: EntityId, severity: Severity) -> &mut Finding {
        self.found.push(Finding {
            rule,
            kind,
            entity,
            severity,
            threshold: None,
            since: None,
            open_after_ms: 0,
            resolve_after_ms: self.rules.resolve_after_ms(rule),
        });
        let at = self.found.len() - 1;
        &mut self.found[at]
    }

    fn pod(&mut self, ns: &str, name: &str, pod: &PodRecord) {
        for container in &pod.containers {
            let id = || EntityId::container(ns, name, container.name.as_ref());
            match container.waiting {
                Waiting::CrashLoop => {
                    self.found(rule::CRASH_LOOP, SymptomKind::CrashLoop, id(), Severity::High);
                }
                Waiting::ImagePull => {
                    self.found(rule::IMAGE_PULL, SymptomKind::ImagePullFailure, id(), Severity::Medium);
                }
                Waiting::None => {}
            }
            let window = self.rules.oom_killed_window_ms();
            if let Some(killed) = container.oom_killed_at.filter(|at| self.now.saturating_since(*at) <= window) {
                self.found(rule::OOM_KILLED, SymptomKind::OomKilled, id(), Severity::High).since = Some(killed);
            }
        }
        if let Some(Active { since }) = pod.unschedulable {
            self.found(rule::UNSCHEDULABLE, SymptomKind::Unschedulable, EntityId::pod(ns, name), Severity::High)
                .since = since;
        } else if pod.phase == PodPhase::Pending
            && pod.node.is_none()
            && pod.created.0 > 0
            && self.now.saturating_since(pod.created) > self.rules.pending_after_ms()
        {
            // The model has no "pending" kind: a pod that no scheduler has placed is reported as unschedulable,
            // under its own rule. A bound pod stuck in Pending shows as its containers' waiting symptoms.
            let threshold = Threshold {
                signal: "pod_unscheduled_seconds".into(),
                comparator: Comparator::Above,
                bound: self.rules.pending_after_seconds as f64,
                window_seconds: seconds(self.rules.pending_after_ms()),
            };
            let finding =
                self.found(rule::PENDING, SymptomKind::Unschedulable, EntityId::pod(ns, name), Severity::Medium);
            finding.since = Some(pod.created);
            finding.threshold = Some(threshold);
        }
    }

    fn node(&mut self, name: &str, conditions: [(Option<Active>, &'static str, SymptomKind, Severity); 4]) {
        for (active, rule, kind, severity) in conditions {
            if let Some(Active { since }) = active {
                self.found(rule, kind, EntityId::node(name), severity).since = since;
            }
        }
    }

    fn workload(&mut self, kind: WorkloadKind, ns: &str, name: &str, workload: &WorkloadRecord) {
        let id = || EntityId::workload(kind, ns, name);
        match &workload.state {
            WorkloadState::Replicas { desired, available, unavailable } if *desired > 0 && *unavailable > 0 => {
                let severity = if *available == 0 { Severity::High } else { Severity::Medium };
                let hold = self.rules.unavailable_after_ms();
                let finding = self.found(rule::UNAVAILABLE_REPLICAS, SymptomKind::UnavailableReplicas, id(), severity);
                finding.open_after_ms = hold;
                finding.threshold = Some(Threshold {
                    signal: "workload_unavailable_replicas".into(),
                    comparator: Comparator::Above,
                    bound: 0.0,
                    window_seconds: seconds(hold),
                });
            }
            WorkloadState::Job { failed: Some(Active { since }) } => {
                self.found(rule::JOB_FAILED, SymptomKind::JobFailed, id(), Severity::Medium).since = *since;
            }
            WorkloadState::CronJob(cron) => {
                let grace = self.rules.cron_job_grace_ms();
                if let Some(missed) = first_missed_run(cron, workload.created, self.now, grace) {
                    let finding = self.found(rule::CRON_JOB_MISSED, SymptomKind::CronJobMissed, id(), Severity::Medium);
                    finding.since = Some(missed);
                    finding.threshold = Some(Threshold {
                        signal: "cronjob_schedule_delay_seconds".into(),
                        comparator: Comparator::Above,
                        bound: (grace / 1_000) as f64,
                        window_seconds: 0,
                    });
                }
            }
            _ => {}
        }
    }
}

fn timestamp(at: UnixMillis) -> Option<Timestamp> {
    Timestamp::from_millisecond(i64::try_from(at.0).ok()?).ok()
}

fn unix_millis(at: Timestamp) -> UnixMillis {
    UnixMillis(u64::try_from(at.as_millisecond()).unwrap_or(0))
}

/// The first scheduled run of a CronJob that should have started more than `grace_ms` ago and did not, if any.
///
/// Schedules are evaluated in the CronJob's `timeZone` (or a `TZ=`/`CRON_TZ=` prefix), else UTC, which is
/// what kube-controller-manager uses in its usual container image. A suspended CronJob, one that skips runs
/// on purpose (an active run under `concurrencyPolicy: Forbid`), a schedule or zone that does not parse, or an
/// unknown creation time gives nothing.
pub(crate) fn first_missed_run(
    cron: &CronRecord,
    created: UnixMillis,
    now: UnixMillis,
    grace_ms: u64,
) -> Option<UnixMillis> {
    if cron.suspended || cron.skipping_while_active || created.0 == 0 {
        return None;
    }
    let schedule = cron.schedule.trim();
    let (prefix_zone, pattern) = match schedule.strip_prefix("CRON_TZ=").or_else(|| schedule.strip_prefix("TZ=")) {
        Some(rest) => {
            let (zone, pattern) = rest.split_once(char::is_whitespace)?;
            (Some(zone), pattern.trim())
        }
        None => (None, schedule),
    };
    let zone = match cron.time_zone.as_deref().or(prefix_zone) {
        Some(name) => TimeZone::get(name).ok()?,
        None => TimeZone::UTC,
    };
    let parsed = CronParser::builder().seconds(Seconds::Disallowed).build().parse(pattern).ok()?;
    let last = cron.last_schedule.map_or(created, |at| at.max(created));
    let deadline = timestamp(UnixMillis(now.0.checked_sub(grace_ms)?))?.to_zoned(zone.clone());
    let latest_due = parsed.find_previous_occurrence(&deadline, true).ok()?;
    if unix_millis(latest_due.timestamp()) <= last {
        return None;
    }
    let first = parsed.find_next_occurrence(&timestamp(last)?.to_zoned(zone), false).ok()?;
    Some(unix_millis(first.timestamp()))
}

/// Every cluster condition that holds at `now`, ordered by rule and entity.
pub fn detect(index: &ClusterIndex, now: UnixMillis, rules: &ClusterRules) -> Vec<Finding> {
    let mut detector = Detector { rules, now, found: Vec::new() };
    for (name, node) in index.node_records() {
        detector.node(
            name,
            [
                (node.not_ready, rule::NODE_NOT_READY, SymptomKind::NodeNotReady, Severity::Critical),
                (node.memory_pressure, rule::NODE_MEMORY_PRESSURE, SymptomKind::NodePressure, Severity::High),
                (node.disk_pressure, rule::NODE_DISK_PRESSURE, SymptomKind::NodePressure, Severity::High),
                (node.pid_pressure, rule::NODE_PID_PRESSURE, SymptomKind::NodePressure, Severity::High),
            ],
        );
    }
    for (ns, bucket) in index.namespaces() {
        for (name, pod) in &bucket.pods {
            detector.pod(ns, name, pod);
        }
        for (kind, objects) in &bucket.workloads {
            for (name, workload) in objects {
                detector.workload(*kind, ns, name, workload);
            }
        }
    }
    let mut found = detector.found;
    found.sort_by(|a, b| (a.rule, &a.entity).cmp(&(b.rule, &b.entity)));
    found
}
