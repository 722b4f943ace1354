//! Health of an install's workloads, computed from the objects' status: pure, so that `status`,
//! `check` and `--wait` agree on what "ready" means.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Serialize;

use crate::baseline::Component;

/// One component's rollout state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentHealth {
    pub component: Component,
    pub kind: String,
    pub name: String,
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    pub version: Option<String>,
    /// Seconds since the workload was created.
    pub age_seconds: Option<i64>,
    /// Why it is not healthy; `None` when healthy.
    pub problem: Option<String>,
}

impl ComponentHealth {
    pub fn healthy(&self) -> bool {
        self.problem.is_none()
    }

    /// A component whose workload does not exist.
    pub fn missing(component: Component, kind: &str, name: &str) -> ComponentHealth {
        ComponentHealth {
            component,
            kind: kind.to_owned(),
            name: name.to_owned(),
            desired: 0,
            ready: 0,
            updated: 0,
            version: None,
            age_seconds: None,
            problem: Some(format!("{kind} {name} does not exist")),
        }
    }
}

struct Counts {
    generation: Option<i64>,
    observed: Option<i64>,
    desired: i32,
    ready: i32,
    updated: i32,
}

impl Counts {
    /// Counts of a Deployment or StatefulSet, whose statuses share their shape; an unset replica
    /// count means the API default, 1.
    fn replicated(
        generation: Option<i64>,
        observed: Option<i64>,
        replicas: Option<i32>,
        ready: Option<i32>,
        updated: Option<i32>,
    ) -> Counts {
        Counts {
            generation,
            observed,
            desired: replicas.unwrap_or(1),
            ready: ready.unwrap_or(0),
            updated: updated.unwrap_or(0),
        }
    }
}

fn assess(
    component: Component,
    kind: &str,
    meta: &ObjectMeta,
    counts: Counts,
    expected_version: &str,
    now: &Time,
) -> ComponentHealth {
    let name = meta.name.clone().unwrap_or_default();
    let version = meta.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/version")).cloned();
    let age_seconds = meta.creation_timestamp.as_ref().map(|t| now.0.duration_since(t.0).as_secs());
    let problem = if counts.observed < counts.generation {
        Some("the controller has not seen the latest spec yet".to_owned())
    } else if version.as_deref() != Some(expected_version) {
        Some(format!("version {} is not the expected {expected_version}", version.as_deref().unwrap_or("unknown")))
    } else if counts.updated < counts.desired {
        Some(format!("{} of {} pods updated", counts.updated, counts.desired))
    } else if counts.ready < counts.desired {
        Some(format!("{} of {} pods ready", counts.ready, counts.desired))
    } else if counts.desired == 0 && component == Component::Agent {
        Some("no node runs an agent".to_owned())
    } else {
        None
    };
    ComponentHealth {
        component,
        kind: kind.to_owned(),
        name,
        desired: counts.desired,
        ready: counts.ready,
        updated: counts.updated,
        version,
        age_seconds,
        problem,
    }
}

pub fn daemon_set(ds: &DaemonSet, expected_version: &str, now: &Time) -> ComponentHealth {
    let status = ds.status.clone().unwrap_or_default();
    let counts = Counts {
        generation: ds.metadata.generation,
        observed: status.observed_generation,
        desired: status.desired_number_scheduled,
        ready: status.number_ready,
        updated: status.updated_number_scheduled.unwrap_or(0),
    };
    assess(Component::Agent, "DaemonSet", &ds.metadata, counts, expected_version, now)
}

pub fn deployment(component: Component, d: &Deployment, expected_version: &str, now: &Time) -> ComponentHealth {
    let status = d.status.clone().unwrap_or_default();
    let replicas = d.spec.as_ref().and_then(|s| s.replicas);
    let counts = Counts::replicated(
        d.metadata.generation,
        status.observed_generation,
        replicas,
        status.ready_replicas,
        status.updated_replicas,
    );
    assess(component, "Deployment", &d.metadata, counts, expected_version, now)
}

pub fn stateful_set(s: &StatefulSet, expected_version: &str, now: &Time) -> ComponentHealth {
    let status = s.status.clone().unwrap_or_default();
    let replicas = s.spec.as_ref().and_then(|s| s.replicas);
    let counts = Counts::replicated(
        s.metadata.generation,
        status.observed_generation,
        replicas,
        status.ready_replicas,
        status.updated_replicas,
    );
    assess(Component::VictoriaMetrics, "StatefulSet", &s.metadata, counts, expected_version, now)
}

/// "45s", "3m", "2h", "5d", as kubectl prints ages.
pub fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// The `status` table: one line per component.
pub fn table(components: &[ComponentHealth]) -> String {
    let mut out = format!(
        "{:<18}{:<13}{:<8}{:<12}{:<10}{:<7}{}\n",
        "COMPONENT", "KIND", "READY", "UP-TO-DATE", "VERSION", "AGE", "STATUS"
    );
    for c in components {
        out.push_str(&format!(
            "{:<18}{:<13}{:<8}{:<12}{:<10}{:<7}{}\n",
            c.component.name(),
            c.kind,
            format!("{}/{}", c.ready, c.desired),
            c.updated,
            c.version.as_deref().unwrap_or("-"),
            c.age_seconds.map_or("-".to_owned(), age),
            c.problem.as_deref().unwrap_or("ok"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetStatus;
    use k8s_openapi::jiff::Timestamp;

    fn now() -> Time {
        Time("2026-01-01T00:10:00Z".parse::<Timestamp>().unwrap())
    }

    fn ds(desired: i32, ready: i32, updated: i32, version: &str, generation: i64, observed: i64) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("causely-agent".into()),
                generation: Some(generation),
                labels: Some([("app.kubernetes.io/version".to_owned(), version.to_owned())].into()),
                creation_timestamp: Some(Time("2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap())),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(DaemonSetStatus {
                desired_number_scheduled: desired,
                number_ready: ready,
                updated_number_scheduled: Some(updated),
                observed_generation: Some(observed),
                ..DaemonSetStatus::default()
            }),
        }
    }

    #[test]
    fn a_fully_rolled_out_daemon_set_at_the_expected_version_is_healthy() {
        let h = daemon_set(&ds(3, 3, 3, "0.1.0", 2, 2), "0.1.0", &now());
        assert!(h.healthy(), "{h:?}");
        assert_eq!(h.age_seconds, Some(600));
    }

    #[test]
    fn each_unhealthy_state_names_its_reason() {
        let cases = [
            (ds(3, 3, 3, "0.1.0", 3, 2), "not seen the latest spec"),
            (ds(3, 3, 3, "0.0.9", 2, 2), "version 0.0.9 is not the expected 0.1.0"),
            (ds(3, 3, 1, "0.1.0", 2, 2), "1 of 3 pods updated"),
            (ds(3, 2, 3, "0.1.0", 2, 2), "2 of 3 pods ready"),
            (ds(0, 0, 0, "0.1.0", 2, 2), "no node runs an agent"),
        ];
        for (object, reason) in cases {
            let h = daemon_set(&object, "0.1.0", &now());
            assert!(h.problem.as_deref().is_some_and(|p| p.contains(reason)), "{h:?} should say {reason}");
        }
    }

    #[test]
    fn ages_print_like_kubectl() {
        assert_eq!(age(45), "45s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(10_800), "3h");
        assert_eq!(age(400_000), "4d");
    }
}
