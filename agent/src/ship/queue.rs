//! The policy of the agent's bounded queue of reports for the mediator: seqs and what is dropped.
//!
//! Each report gets the next seq when it is queued, so seqs increase by one in the order reports
//! were made and a report dropped here shows up at the mediator as a gap. When the queue is full
//! the oldest report goes: the newest one carries the freshest connections. Its symptom changes do
//! not go with it: they move, in order, to the front of the next report, because losing one means
//! the mediator may keep a resolved symptom open or never see one open. Only beyond the
//! mediator's bound on one report's changes are the oldest lost, and those are counted.

use std::collections::VecDeque;

use causely_model::report::{AgentReport, MAX_SYMPTOM_CHANGES};

/// A report that was dropped to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    pub seq: u64,
    /// Symptom changes lost with it (beyond what the next report could carry).
    pub symptom_changes: usize,
}

/// Reports waiting to be sent, oldest first.
#[derive(Debug, Clone)]
pub struct ReportQueue {
    reports: VecDeque<AgentReport>,
    capacity: usize,
    next_seq: u64,
}

impl ReportQueue {
    /// A queue of at most `capacity` (at least 1) reports whose first report gets `first_seq`.
    pub fn new(capacity: usize, first_seq: u64) -> Self {
        ReportQueue { reports: VecDeque::new(), capacity: capacity.max(1), next_seq: first_seq }
    }

    /// Queues `report` under the next seq (overwriting whatever seq it had) and returns that seq
    /// and the report dropped to make room, if any. The dropped report's symptom changes go to the
    /// front of the next one (never the one being sent: that is the one dropped).
    pub fn push(&mut self, mut report: AgentReport) -> (u64, Option<Evicted>) {
        report.seq = self.next_seq;
        self.next_seq += 1;
        let old = if self.reports.len() >= self.capacity { self.reports.pop_front() } else { None };
        self.reports.push_back(report);
        let evicted = old.map(|old| {
            let lost = match self.reports.front_mut() {
                Some(next) => {
                    let mut carried = old.symptoms;
                    carried.append(&mut next.symptoms);
                    let lost = carried.len().saturating_sub(MAX_SYMPTOM_CHANGES);
                    carried.drain(..lost);
                    next.symptoms = carried;
                    lost
                }
                None => old.symptoms.len(),
            };
            Evicted { seq: old.seq, symptom_changes: lost }
        });
        (self.next_seq - 1, evicted)
    }

    /// The report to send next.
    pub fn front(&self) -> Option<&AgentReport> {
        self.reports.front()
    }

    /// Removes the report with `seq` (sent or refused), if it is still queued.
    pub fn remove(&mut self, seq: u64) -> Option<AgentReport> {
        let at = self.reports.iter().position(|r| r.seq == seq)?;
        self.reports.remove(at)
    }

    pub fn len(&self) -> usize {
        self.reports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causely_model::id::EntityId;
    use causely_model::symptom::{Severity, Symptom, SymptomChange, SymptomId, SymptomKind};
    use causely_model::time::UnixMillis;

    fn report(symptoms: usize) -> AgentReport {
        let entity: EntityId = "node/worker-1".parse().unwrap();
        let change = |i: u64| SymptomChange::Opened {
            symptom: Symptom {
                id: SymptomId::of("agent.cpu.utilization", &entity, UnixMillis(i)),
                kind: SymptomKind::HighCpuUtilization,
                entity: entity.clone(),
                severity: Severity::High,
                rule: "agent.cpu.utilization".into(),
                threshold: None,
                started: UnixMillis(i),
                resolved: None,
            },
        };
        AgentReport {
            node: "worker-1".into(),
            agent_version: "0.1.0".into(),
            seq: 999,
            time: UnixMillis(1),
            connections: vec![],
            symptoms: (0..symptoms as u64).map(change).collect(),
        }
    }

    #[test]
    fn queued_reports_get_consecutive_seqs_from_the_first_one() {
        let mut queue = ReportQueue::new(10, 41);
        assert_eq!(queue.push(report(0)), (41, None));
        assert_eq!(queue.push(report(0)), (42, None));
        assert_eq!(queue.front().map(|r| r.seq), Some(41));
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_report_but_carries_its_symptom_changes_to_the_next_in_order() {
        let mut queue = ReportQueue::new(2, 1);
        let first = report(3);
        let carried = first.symptoms.clone();
        queue.push(first);
        queue.push(report(1));
        assert_eq!(queue.push(report(1)), (3, Some(Evicted { seq: 1, symptom_changes: 0 })));
        let front = queue.front().unwrap();
        assert_eq!(front.seq, 2);
        assert_eq!(front.symptoms.len(), 4);
        assert_eq!(front.symptoms[..3], carried[..], "the dropped report's changes come first, in order");
        assert_eq!(queue.push(report(0)), (4, Some(Evicted { seq: 2, symptom_changes: 0 })));
        assert_eq!(queue.front().map(|r| (r.seq, r.symptoms.len())), Some((3, 5)));
        assert_eq!(queue.len(), 2);
    }

    #[test]
    fn carried_symptom_changes_beyond_the_mediators_bound_are_lost_oldest_first_and_counted() {
        let mut queue = ReportQueue::new(1, 1);
        queue.push(report(MAX_SYMPTOM_CHANGES - 1));
        let newest = report(2);
        let kept_last = newest.symptoms.clone();
        let (_, evicted) = queue.push(newest);
        assert_eq!(evicted, Some(Evicted { seq: 1, symptom_changes: 1 }));
        let front = queue.front().unwrap();
        assert_eq!(front.symptoms.len(), MAX_SYMPTOM_CHANGES);
        assert_eq!(front.symptoms[MAX_SYMPTOM_CHANGES - 2..], kept_last[..], "the newest changes are kept");
    }

    #[test]
    fn removing_takes_out_only_the_report_with_that_seq() {
        let mut queue = ReportQueue::new(5, 1);
        for _ in 0..3 {
            queue.push(report(0));
        }
        assert_eq!(queue.remove(2).map(|r| r.seq), Some(2));
        assert_eq!(queue.remove(2), None);
        assert_eq!(queue.front().map(|r| r.seq), Some(1));
        queue.remove(1);
        queue.remove(3);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_zero_capacity_still_holds_the_newest_report() {
        let mut queue = ReportQueue::new(0, 1);
        queue.push(report(0));
        assert_eq!(queue.push(report(0)).1.map(|e| e.seq), Some(1));
        assert_eq!(queue.len(), 1);
    }
}
