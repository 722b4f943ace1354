//! What the executor may do, from its policy file (YAML or JSON, unknown keys rejected): which
//! actions are enabled, which namespaces it may touch, and the bounds of a scale.

use std::collections::BTreeSet;
use std::path::Path;

use causely_model::{Action, ActionKind};
use serde::{Deserialize, Serialize};

/// The actions by name, as the policy file lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionName {
    Restart,
    DeletePod,
    Scale,
    Cordon,
    Uncordon,
    Rollback,
}

impl ActionName {
    pub const ALL: [ActionName; 6] = [
        ActionName::Restart,
        ActionName::DeletePod,
        ActionName::Scale,
        ActionName::Cordon,
        ActionName::Uncordon,
        ActionName::Rollback,
    ];

    pub fn of(kind: ActionKind) -> ActionName {
        match kind {
            ActionKind::Restart {} => ActionName::Restart,
            ActionKind::DeletePod {} => ActionName::DeletePod,
            ActionKind::Scale { .. } => ActionName::Scale,
            ActionKind::Cordon {} => ActionName::Cordon,
            ActionKind::Uncordon {} => ActionName::Uncordon,
            ActionKind::Rollback {} => ActionName::Rollback,
        }
    }
}

fn default_enabled() -> BTreeSet<ActionName> {
    ActionName::ALL.into_iter().collect()
}

/// The control plane's own namespaces are off limits unless a policy says otherwise.
fn default_denied() -> BTreeSet<String> {
    ["kube-system", "kube-public", "kube-node-lease"].into_iter().map(str::to_owned).collect()
}

fn default_min_replicas() -> u32 {
    1
}

fn default_max_replicas() -> u32 {
    10
}

/// The executor's policy. Every field has a default, so an empty file is the default policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Actions the executor carries out; others are refused.
    #[serde(default = "default_enabled")]
    pub enabled_actions: BTreeSet<ActionName>,
    /// When not empty, only targets in these namespaces; nodes are cluster-scoped and not affected.
    #[serde(default)]
    pub allowed_namespaces: BTreeSet<String>,
    /// Targets in these namespaces are refused, whatever `allowedNamespaces` says.
    #[serde(default = "default_denied")]
    pub denied_namespaces: BTreeSet<String>,
    /// The fewest replicas a scale may set.
    #[serde(default = "default_min_replicas")]
    pub min_replicas: u32,
    /// The most replicas a scale may set.
    #[serde(default = "default_max_replicas")]
    pub max_replicas: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled_actions: default_enabled(),
            allowed_namespaces: BTreeSet::new(),
            denied_namespaces: default_denied(),
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
        }
    }
}

/// Why a policy file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading policy {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("policy {path}: {detail}")]
    Parse { path: String, detail: String },
    #[error("policy: minReplicas {min} is greater than maxReplicas {max}")]
    Bounds { min: u32, max: u32 },
    #[error("policy: {0:?} is not a namespace name")]
    BadNamespace(String),
    #[error("policy: namespace {0} is both allowed and denied")]
    Overlap(String),
}

fn valid_namespace(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

impl Policy {
    /// Parses a policy (YAML, of which JSON is a subset) and checks it.
    pub fn parse(text: &str, path: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = if text.trim().is_empty() {
            Policy::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| PolicyError::Parse {
                path: path.to_owned(),
                detail: causely_runtime::one_line(&e.to_string()),
            })?
        };
        policy.validate()?;
        Ok(policy)
    }

    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: shown.clone(), source })?;
        Policy::parse(&text, &shown)
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.min_replicas > self.max_replicas {
            return Err(PolicyError::Bounds { min: self.min_replicas, max: self.max_replicas });
        }
        for ns in self.allowed_namespaces.iter().chain(&self.denied_namespaces) {
            if !valid_namespace(ns) {
                return Err(PolicyError::BadNamespace(ns.clone()));
            }
        }
        if let Some(ns) = self.allowed_namespaces.intersection(&self.denied_namespaces).next() {
            return Err(PolicyError::Overlap(ns.clone()));
        }
        Ok(())
    }

    /// Whether the policy lets `action` run; the reason when it does not.
    pub fn check(&self, action: &Action) -> Result<(), String> {
        let name = ActionName::of(action.kind);
        if !self.enabled_actions.contains(&name) {
            return Err(format!("action {} is not enabled by the executor's policy", action.kind.name()));
        }
        if let Some(ns) = action.target.namespace() {
            if self.denied_namespaces.contains(ns) {
                return Err(format!("namespace {ns} is denied by the executor's policy"));
            }
            if !self.allowed_namespaces.is_empty() && !self.allowed_namespaces.contains(ns) {
                return Err(format!("namespace {ns} is not among the namespaces the executor's policy allows"));
            }
        }
        if let ActionKind::Scale { replicas } = action.kind
            && !(self.min_replicas..=self.max_replicas).contains(&replicas)
        {
            return Err(format!(
                "scale to {replicas} replicas is outside the policy's bounds ({} to {})",
                self.min_replicas, self.max_replicas
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causely_model::{ActionId, UnixMillis};

    fn action(kind: ActionKind, target: &str) -> Action {
        Action {
            id: ActionId("a".into()),
            kind,
            target: target.parse().unwrap(),
            reason: "crash loop".into(),
            requester: "cli:alice".into(),
            expires: UnixMillis(1),
            dry_run: false,
        }
    }

    #[test]
    fn an_empty_file_is_the_default_policy_which_keeps_out_of_the_control_planes_namespaces() {
        let policy = Policy::parse("", "p.yaml").unwrap();
        assert_eq!(policy, Policy::default());
        assert!(policy.check(&action(ActionKind::Restart {}, "workload/deployment/shop/web")).is_ok());
        let err = policy.check(&action(ActionKind::DeletePod {}, "pod/kube-system/etcd-0")).unwrap_err();
        assert_eq!(err, "namespace kube-system is denied by the executor's policy");
    }

    #[test]
    fn yaml_and_json_policies_parse_and_unknown_keys_are_rejected() {
        let yaml = "enabledActions: [restart, scale]\nallowedNamespaces: [shop]\nminReplicas: 2\nmaxReplicas: 4\n";
        let policy = Policy::parse(yaml, "p.yaml").unwrap();
        assert_eq!(policy.enabled_actions, [ActionName::Restart, ActionName::Scale].into_iter().collect());
        assert_eq!(policy.min_replicas, 2);
        let json = r#"{"deniedNamespaces": ["prod"], "maxReplicas": 3}"#;
        let policy = Policy::parse(json, "p.json").unwrap();
        assert_eq!(policy.denied_namespaces, ["prod".to_owned()].into_iter().collect());
        let err = Policy::parse("maxReplica: 3\n", "p.yaml").unwrap_err().to_string();
        assert!(err.contains("maxReplica") && err.contains("p.yaml"), "{err}");
        let err = Policy::parse("enabledActions: [reboot]\n", "p.yaml").unwrap_err().to_string();
        assert!(err.contains("reboot"), "{err}");
    }

    #[test]
    fn inconsistent_policies_are_rejected() {
        assert!(matches!(
            Policy::parse("minReplicas: 5\nmaxReplicas: 2\n", "p"),
            Err(PolicyError::Bounds { min: 5, max: 2 })
        ));
        assert!(matches!(Policy::parse("deniedNamespaces: [Prod]\n", "p"), Err(PolicyError::BadNamespace(_))));
        assert!(matches!(
            Policy::parse("allowedNamespaces: [a]\ndeniedNamespaces: [a]\n", "p"),
            Err(PolicyError::Overlap(_))
        ));
    }

    #[test]
    fn disabled_actions_are_refused() {
        let policy = Policy::parse("enabledActions: [cordon]\n", "p").unwrap();
        assert!(policy.check(&action(ActionKind::Cordon {}, "node/n1")).is_ok());
        let err = policy.check(&action(ActionKind::Uncordon {}, "node/n1")).unwrap_err();
        assert_eq!(err, "action uncordon is not enabled by the executor's policy");
    }

    #[test]
    fn an_allow_list_admits_only_its_namespaces_and_the_deny_list_wins_over_it() {
        let policy = Policy::parse("allowedNamespaces: [shop]\ndeniedNamespaces: [prod]\n", "p").unwrap();
        assert!(policy.check(&action(ActionKind::DeletePod {}, "pod/shop/web-1")).is_ok());
        let err = policy.check(&action(ActionKind::DeletePod {}, "pod/other/web-1")).unwrap_err();
        assert!(err.contains("not among"), "{err}");
        let err = policy.check(&action(ActionKind::DeletePod {}, "pod/prod/web-1")).unwrap_err();
        assert!(err.contains("denied"), "{err}");
        // Nodes have no namespace: the namespace lists do not apply.
        assert!(policy.check(&action(ActionKind::Cordon {}, "node/n1")).is_ok());
    }

    #[test]
    fn scales_are_held_within_the_bounds_inclusive() {
        let policy = Policy::parse("minReplicas: 1\nmaxReplicas: 5\n", "p").unwrap();
        let scale = |n| action(ActionKind::Scale { replicas: n }, "workload/deployment/shop/web");
        assert!(policy.check(&scale(1)).is_ok());
        assert!(policy.check(&scale(5)).is_ok());
        assert_eq!(policy.check(&scale(0)).unwrap_err(), "scale to 0 replicas is outside the policy's bounds (1 to 5)");
        assert!(policy.check(&scale(6)).is_err());
    }
}
