//! The values file (`-f values.yaml`): per-component scheduling and resources, and the upstream
//! URL. Unknown keys are refused so that a typo does not silently do nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use serde::{Deserialize, Serialize};

use crate::baseline::Component;

/// Scheduling and resources of one component's pods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// The whole values file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Values {
    /// The backend the mediator sends topology and symptoms to (HTTPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub agent: ComponentValues,
    #[serde(default, skip_serializing_if = "is_default")]
    pub mediator: ComponentValues,
    #[serde(default, skip_serializing_if = "is_default")]
    pub executor: ComponentValues,
    #[serde(default, skip_serializing_if = "is_default")]
    pub victoria_metrics: ComponentValues,
}

fn is_default(values: &ComponentValues) -> bool {
    values == &ComponentValues::default()
}

impl Values {
    /// Parses a values file; the error names the offending key and where it is.
    pub fn parse(text: &str) -> Result<Values, String> {
        // The parser's first line says what and where; the rest is a source snippet.
        serde_saphyr::from_str(text).map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_owned()
        })
    }

    pub fn component(&self, component: Component) -> &ComponentValues {
        match component {
            Component::Agent => &self.agent,
            Component::Mediator => &self.mediator,
            Component::Executor => &self.executor,
            Component::VictoriaMetrics => &self.victoria_metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_values_file_sets_scheduling_resources_and_the_upstream() {
        let values = Values::parse(
            "upstream: https://backend.example.com\nagent:\n  tolerations:\n  - key: dedicated\n    operator: Exists\nmediator:\n  nodeSelector: {pool: system}\n  resources:\n    requests: {cpu: 200m}\n",
        )
        .unwrap();
        assert_eq!(values.upstream.as_deref(), Some("https://backend.example.com"));
        assert_eq!(values.agent.tolerations.as_ref().unwrap()[0].key.as_deref(), Some("dedicated"));
        assert_eq!(values.mediator.node_selector.as_ref().unwrap()["pool"], "system");
        assert!(values.mediator.resources.is_some());
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let err = Values::parse("mediator:\n  nodeSelektor: {pool: system}\n").unwrap_err();
        assert!(err.contains("nodeSelektor"), "{err}");
        let err = Values::parse("upstrem: https://x\n").unwrap_err();
        assert!(err.contains("upstrem"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn an_empty_file_means_no_overrides() {
        assert_eq!(Values::parse("{}").unwrap(), Values::default());
    }
}
