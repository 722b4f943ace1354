//! The published permission baseline (`permissions/seed.yaml`): what the security model grants
//! each component. The installer renders RBAC from it and the audit compares against it.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde::{Deserialize, Serialize};

/// The published baseline, compiled into the binary so that the plugin and the data file cannot
/// disagree.
pub const SEED_YAML: &str = include_str!("../../permissions/seed.yaml");

/// The four mediation components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Agent,
    Mediator,
    Executor,
    VictoriaMetrics,
}

impl Component {
    pub const ALL: [Component; 4] =
        [Component::Agent, Component::Mediator, Component::Executor, Component::VictoriaMetrics];

    /// The component's name in object names and `app.kubernetes.io/name`.
    pub fn name(self) -> &'static str {
        match self {
            Component::Agent => "agent",
            Component::Mediator => "mediator",
            Component::Executor => "executor",
            Component::VictoriaMetrics => "victoria-metrics",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One RBAC rule as the baseline writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    pub verbs: Vec<String>,
}

impl Rule {
    pub fn to_policy_rule(&self) -> PolicyRule {
        let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        PolicyRule {
            api_groups: some(&self.api_groups),
            resources: some(&self.resources),
            non_resource_urls: some(&self.non_resource_urls),
            verbs: self.verbs.clone(),
            resource_names: None,
        }
    }
}

/// The pod-security posture the baseline allows a component.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodPosture {
    pub privileged: bool,
    pub run_as_root: bool,
    pub host_filesystem: bool,
    /// Capabilities a container may add (a privileged container has them all).
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// What the baseline grants one component.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentBaseline {
    /// Rules of the component's own ClusterRole.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// A pre-existing ClusterRole bound instead of (or besides) own rules, e.g. `cluster-admin`.
    #[serde(default)]
    pub cluster_role_ref: Option<String>,
    #[serde(default)]
    pub optional: bool,
    pub pod: PodPosture,
}

/// The whole baseline.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub components: BTreeMap<Component, ComponentBaseline>,
}

/// Why a baseline file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("baseline is not valid: {0}")]
    Parse(String),
    #[error("baseline does not describe component {0}")]
    MissingComponent(Component),
}

impl Baseline {
    pub fn parse(text: &str) -> Result<Baseline, BaselineError> {
        let baseline: Baseline = serde_saphyr::from_str(text).map_err(|e| BaselineError::Parse(e.to_string()))?;
        for component in Component::ALL {
            if !baseline.components.contains_key(&component) {
                return Err(BaselineError::MissingComponent(component));
            }
        }
        Ok(baseline)
    }

    /// The published baseline compiled into this binary.
    pub fn seed() -> Result<Baseline, BaselineError> {
        Baseline::parse(SEED_YAML)
    }

    pub fn component(&self, component: Component) -> &ComponentBaseline {
        // `parse` guarantees every component is present.
        &self.components[&component]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_seed_baseline_parses_and_names_every_component() {
        let seed = Baseline::seed().unwrap();
        assert_eq!(seed.components.len(), 4);
        assert!(seed.component(Component::Agent).pod.privileged);
        assert_eq!(seed.component(Component::Executor).cluster_role_ref.as_deref(), Some("cluster-admin"));
        assert!(seed.component(Component::VictoriaMetrics).rules.is_empty());
    }

    #[test]
    fn a_baseline_missing_a_component_is_refused() {
        let text = SEED_YAML.replace("  victoria-metrics:", "  victoria-metricz:");
        assert!(Baseline::parse(&text).is_err());
        let text = "components: {}";
        assert!(matches!(Baseline::parse(text), Err(BaselineError::MissingComponent(Component::Agent))));
    }

    #[test]
    fn a_baseline_with_an_unknown_key_is_refused() {
        let text = SEED_YAML.replacen("    pod:\n", "    podz: {}\n    pod:\n", 1);
        let err = Baseline::parse(&text).unwrap_err().to_string();
        assert!(err.contains("podz"), "{err}");
    }

    #[test]
    fn rules_become_policy_rules_without_empty_lists() {
        let seed = Baseline::seed().unwrap();
        let rules: Vec<PolicyRule> = seed.component(Component::Agent).rules.iter().map(Rule::to_policy_rule).collect();
        assert_eq!(rules[0].api_groups, Some(vec![String::new()]));
        assert_eq!(rules[0].non_resource_urls, None);
        assert_eq!(rules[1].non_resource_urls, Some(vec!["/metrics".into(), "/metrics/cadvisor".into()]));
        assert_eq!(rules[1].resources, None);
    }
}
