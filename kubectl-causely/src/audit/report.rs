//! Comparing what a cluster (or a file) grants each component with a baseline, and the findings
//! that come out: extra grants (drift), missing grants, improvements on the published posture,
//! documented additions, risky permissions and pod security findings.

use std::collections::{BTreeMap, BTreeSet};

use causely_model::Severity;
use serde::Serialize;

use super::grants::{Catalogue, expand_all};
use super::posture;
use super::risk;
use super::snapshot::{Scoped, Snapshot};
use crate::baseline::{Baseline, Component, PodPosture};
use crate::render::meta;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// Granted, and not in the baseline.
    Extra,
    /// In the baseline, and not granted.
    Missing,
    /// Narrower than the published posture: reported, never a failure.
    Improvement,
    /// Beyond the published posture, and documented as a deliberate addition.
    Addition,
    /// A risky permission, whatever the baseline says.
    Risk,
    /// A pod security setting beyond the baseline's posture.
    PodSecurity,
}

/// One line of the audit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub component: Component,
    pub kind: FindingKind,
    /// `None` for informational findings (improvements).
    pub severity: Option<Severity>,
    /// Stable id of what was checked, e.g. `rbac.secrets-read`, `drift.extra`.
    pub rule: String,
    pub message: String,
    /// The object it is about: the binding, the role, or the workload.
    pub object: String,
}

/// What a component is expected to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    Grants(BTreeSet<Scoped>),
    /// Bound to cluster-admin: anything (the published executor).
    Everything,
}

/// A baseline: each component's grants and pod posture, and whether it is the published one
/// (then narrower is an improvement, and the release's documented additions are not drift).
#[derive(Debug, Clone)]
pub struct Expected {
    pub name: String,
    pub published: bool,
    pub grants: BTreeMap<Component, Allowed>,
    pub posture: BTreeMap<Component, PodPosture>,
    pub additions: BTreeSet<Scoped>,
}

/// The account name of a component's ServiceAccount.
pub fn account(component: Component) -> String {
    meta::name(component)
}

impl Expected {
    /// The published baseline; `additions` are the release's documented additions.
    pub fn published(baseline: &Baseline, additions: BTreeSet<Scoped>) -> Expected {
        let mut grants = BTreeMap::new();
        let mut posture = BTreeMap::new();
        for component in Component::ALL {
            let c = baseline.component(component);
            let rules: Vec<_> = c.rules.iter().map(crate::baseline::Rule::to_policy_rule).collect();
            let allowed = if c.cluster_role_ref.as_deref() == Some("cluster-admin") {
                Allowed::Everything
            } else {
                Allowed::Grants(
                    expand_all(&rules, &Catalogue::default())
                        .into_iter()
                        .map(|grant| Scoped { namespace: None, grant })
                        .collect(),
                )
            };
            grants.insert(component, allowed);
            posture.insert(component, c.pod.clone());
        }
        Expected { name: "seed".into(), published: true, grants, posture, additions }
    }

    /// A baseline from objects (this release's rendering, or a file): what they grant and allow.
    pub fn from_snapshot(name: &str, snapshot: &Snapshot, namespace: &str, catalogue: &Catalogue) -> Expected {
        let mut grants = BTreeMap::new();
        let mut posture = BTreeMap::new();
        for component in Component::ALL {
            let effective = snapshot.effective(namespace, &account(component), catalogue);
            let allowed = if effective.cluster_roles.iter().any(|r| r == "cluster-admin") {
                Allowed::Everything
            } else {
                Allowed::Grants(effective.grants)
            };
            grants.insert(component, allowed);
            if let Some(spec) = snapshot.pods.get(&component) {
                posture.insert(component, posture::of(spec));
            }
        }
        Expected { name: name.into(), published: false, grants, posture, additions: BTreeSet::new() }
    }
}

/// The result of an audit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub baseline: String,
    pub namespace: String,
    /// Each component's bindings: (binding, role).
    pub bindings: BTreeMap<Component, Vec<(String, String)>>,
    pub findings: Vec<Finding>,
}

impl Report {
    /// The most severe finding, if any has a severity.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().filter_map(|f| f.severity).max()
    }
}

/// Audits `actual` against `expected` for the install in `namespace`.
pub fn audit(actual: &Snapshot, expected: &Expected, namespace: &str, catalogue: &Catalogue) -> Report {
    let mut findings = Vec::new();
    let mut bindings = BTreeMap::new();
    for component in Component::ALL {
        let effective = actual.effective(namespace, &account(component), catalogue);
        let installed = !effective.bindings.is_empty() || actual.pods.contains_key(&component);
        if !installed {
            continue;
        }
        let via = effective.bindings.iter().map(|(b, r)| format!("{b} -> {r}")).collect::<Vec<_>>().join(", ");
        let via = if via.is_empty() { "no binding".to_owned() } else { via };
        let mut push = |kind, severity, rule: &str, message: String, object: String| {
            findings.push(Finding { component, kind, severity, rule: rule.to_owned(), message, object })
        };
        let unscoped: BTreeSet<_> = effective.grants.iter().map(|s| s.grant.clone()).collect();
        let risky: BTreeMap<String, Severity> = risk::risks(&effective.rules, &unscoped, &effective.cluster_roles)
            .into_iter()
            .map(|r| {
                push(FindingKind::Risk, Some(r.severity), r.rule, format!("{}: {}", r.grant, r.why), via.clone());
                (r.grant, r.severity)
            })
            .collect();
        match expected.grants.get(&component) {
            Some(Allowed::Everything)
                if expected.published && !effective.cluster_roles.iter().any(|r| r == "cluster-admin") =>
            {
                push(
                    FindingKind::Improvement,
                    None,
                    "posture.scoped",
                    "bound to a scoped role instead of the published cluster-admin".into(),
                    via.clone(),
                );
            }
            Some(Allowed::Everything) => {}
            Some(Allowed::Grants(allowed)) => {
                for extra in effective.grants.difference(allowed) {
                    if expected.published && expected.additions.contains(extra) {
                        push(
                            FindingKind::Addition,
                            Some(Severity::Low),
                            "drift.documented-addition",
                            format!("{extra}: a documented addition (docs/install.md)"),
                            via.clone(),
                        );
                    } else {
                        let severity = risky.get(&extra.grant.to_string()).copied().unwrap_or(Severity::Medium);
                        push(
                            FindingKind::Extra,
                            Some(severity),
                            "drift.extra",
                            format!("{extra}: granted, not in the {} baseline", expected.name),
                            via.clone(),
                        );
                    }
                }
                for missing in allowed.difference(&effective.grants) {
                    if expected.published {
                        push(
                            FindingKind::Improvement,
                            None,
                            "drift.narrower",
                            format!("{missing}: published, not granted"),
                            via.clone(),
                        );
                    } else {
                        push(
                            FindingKind::Missing,
                            Some(Severity::Medium),
                            "drift.missing",
                            format!(
                                "{missing}: in the {} baseline, not granted; the component may fail",
                                expected.name
                            ),
                            via.clone(),
                        );
                    }
                }
            }
            None => {}
        }
        if let (Some(spec), Some(allowed)) = (actual.pods.get(&component), expected.posture.get(&component)) {
            let object = format!("pod template of {}", meta::name(component));
            for f in posture::findings(spec, allowed) {
                push(FindingKind::PodSecurity, Some(f.severity), f.rule, f.detail, object.clone());
            }
            if expected.published {
                let actual_posture = posture::of(spec);
                for (published, actual, what) in [
                    (allowed.privileged, actual_posture.privileged, "not privileged"),
                    (allowed.host_filesystem, actual_posture.host_filesystem, "no host filesystem"),
                    (allowed.run_as_root, actual_posture.run_as_root, "not root"),
                ] {
                    if published && !actual {
                        push(
                            FindingKind::Improvement,
                            None,
                            "posture.narrower",
                            format!("{what} (the published posture allows it)"),
                            object.clone(),
                        );
                    }
                }
                let mounts = spec.volumes.iter().flatten().filter_map(|v| v.host_path.as_ref()).collect::<Vec<_>>();
                if allowed.host_filesystem && !mounts.is_empty() && mounts.iter().all(|h| h.path != "/") {
                    push(
                        FindingKind::Improvement,
                        None,
                        "posture.narrower",
                        format!(
                            "mounts only {} of the host",
                            mounts.iter().map(|h| h.path.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                        object.clone(),
                    );
                }
            }
        }
        bindings.insert(component, effective.bindings);
    }
    findings.sort_by(|a, b| {
        (a.component, b.severity, a.kind, &a.message).cmp(&(b.component, a.severity, b.kind, &b.message))
    });
    Report { baseline: expected.name.clone(), namespace: namespace.to_owned(), bindings, findings }
}
