//! The validated settings an install is rendered from: what the flags of `install` and `upgrade`
//! turn into, and what the install records in the cluster so that `upgrade` can keep them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::baseline::Component;

/// How much the agent's pod may do on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AgentMode {
    /// Not privileged: root with only the capabilities eBPF needs, and read-only host mounts of
    /// just what the agent reads.
    LeastPrivilege,
    /// The published posture: privileged, root, the host filesystem mounted.
    Privileged,
}

/// What the executor's ServiceAccount is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorRbac {
    /// A ClusterRole granting exactly what the implemented remediation actions need.
    Scoped,
    /// The published posture: cluster-admin.
    ClusterAdmin,
}

/// Where the mediator keeps its ledger and queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MediatorStorage {
    /// A PersistentVolumeClaim: the ledger and queue survive restarts.
    Persistent,
    /// An emptyDir: lost when the pod goes.
    Ephemeral,
}

/// Which VictoriaMetrics the agents and the mediator write to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VictoriaMetrics {
    /// A single-node VictoriaMetrics installed alongside.
    InCluster,
    /// An existing one at this URL; nothing is installed for it.
    External(String),
}

/// Why the settings cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("namespace {0:?} is not a valid Kubernetes namespace name (lowercase letters, digits and '-', at most 63)")]
    Namespace(String),
    #[error("--victoria-metrics=external:{0} needs an http:// or https:// URL with a host")]
    ExternalUrl(String),
    #[error("--victoria-metrics must be 'in-cluster' or 'external:URL', not {0:?}")]
    VictoriaMetricsMode(String),
    #[error("registry {0:?} must be a host[:port][/path] with no scheme and no trailing '/'")]
    Registry(String),
    #[error("the upstream {0:?} must be an https:// URL with a host")]
    Upstream(String),
}

/// Everything an install is rendered from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    pub namespace: String,
    /// The release: the version of kubectl-causely that renders it.
    pub version: String,
    pub agent_mode: AgentMode,
    /// `None` when the executor is not installed.
    pub executor: Option<ExecutorRbac>,
    pub mediator_storage: MediatorStorage,
    pub victoria_metrics: VictoriaMetrics,
    pub registry: String,
    /// Per-component image overrides (full references).
    #[serde(default)]
    pub images: BTreeMap<Component, String>,
    /// Scheduling, resources and the upstream, from `-f values.yaml`.
    #[serde(default)]
    pub values: super::values::Values,
}

/// Registry of the project's own images unless `--registry` says otherwise.
pub const DEFAULT_REGISTRY: &str = "ghcr.io/kubectl-causely";
/// The VictoriaMetrics single-node release installed in-cluster.
pub const VICTORIA_METRICS_IMAGE: &str = "victoriametrics/victoria-metrics:v1.79.5";
pub const DEFAULT_NAMESPACE: &str = "causely";

impl Settings {
    /// The defaults of `kubectl causely install` for this release.
    pub fn defaults() -> Settings {
        Settings {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            agent_mode: AgentMode::LeastPrivilege,
            executor: None,
            mediator_storage: MediatorStorage::Persistent,
            victoria_metrics: VictoriaMetrics::InCluster,
            registry: DEFAULT_REGISTRY.to_owned(),
            images: BTreeMap::new(),
            values: super::values::Values::default(),
        }
    }

    /// Checks every field that could make the rendered objects invalid.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let ns = &self.namespace;
        let ns_ok = !ns.is_empty()
            && ns.len() <= 63
            && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        if !ns_ok {
            return Err(SettingsError::Namespace(ns.clone()));
        }
        if let VictoriaMetrics::External(url) = &self.victoria_metrics {
            let host = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
            if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
                return Err(SettingsError::ExternalUrl(url.clone()));
            }
        }
        if let Some(upstream) = &self.values.upstream {
            let host = upstream.strip_prefix("https://");
            if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
                return Err(SettingsError::Upstream(upstream.clone()));
            }
        }
        let r = &self.registry;
        if r.is_empty() || r.contains("://") || r.ends_with('/') || r.contains(char::is_whitespace) {
            return Err(SettingsError::Registry(r.clone()));
        }
        Ok(())
    }

    /// The image a component runs: an override verbatim, else the project's image pinned by the digest this
    /// build embedded for it (see `image_pinned`).
    pub fn image(&self, component: Component) -> String {
        self.image_pinned(component, release_digest(component))
    }

    /// The image a component runs, given the digest of the project's image of this release, if known. The
    /// digest holds for any registry (a mirror that keeps manifests keeps digests) but only for the version
    /// this plugin was built with. VictoriaMetrics stays the upstream's tag.
    pub fn image_pinned(&self, component: Component, digest: Option<&str>) -> String {
        if let Some(image) = self.images.get(&component) {
            return image.clone();
        }
        match component {
            Component::VictoriaMetrics if self.registry == DEFAULT_REGISTRY => {
                format!("docker.io/{VICTORIA_METRICS_IMAGE}")
            }
            Component::VictoriaMetrics => format!("{}/{VICTORIA_METRICS_IMAGE}", self.registry),
            _ => {
                let image = format!("{}/causely-{}:{}", self.registry, component.name(), self.version);
                match digest {
                    Some(digest) if self.version == env!("CARGO_PKG_VERSION") => format!("{image}@{digest}"),
                    _ => image,
                }
            }
        }
    }

    /// The URL agents and the mediator are given for VictoriaMetrics.
    pub fn victoria_metrics_url(&self) -> String {
        match &self.victoria_metrics {
            VictoriaMetrics::InCluster => {
                format!("http://causely-victoria-metrics.{}.svc:{}", self.namespace, super::ports::VICTORIA_METRICS)
            }
            VictoriaMetrics::External(url) => url.clone(),
        }
    }
}

/// The (component, digest) pairs build.rs embedded: checked there, empty when this build had no digests file.
const RELEASE_DIGESTS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/image_digests.rs"));

/// The manifest digest of this release's image of `component`, if this build knows it.
pub fn release_digest(component: Component) -> Option<&'static str> {
    RELEASE_DIGESTS.iter().find(|(c, _)| *c == component.name()).map(|(_, d)| *d)
}

/// Parses `--victoria-metrics`: `in-cluster` or `external:URL`.
pub fn parse_victoria_metrics(text: &str) -> Result<VictoriaMetrics, SettingsError> {
    match text {
        "in-cluster" => Ok(VictoriaMetrics::InCluster),
        _ => match text.strip_prefix("external:") {
            Some(url) => Ok(VictoriaMetrics::External(url.to_owned())),
            None => Err(SettingsError::VictoriaMetricsMode(text.to_owned())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_least_privileged() {
        let s = Settings::defaults();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.agent_mode, AgentMode::LeastPrivilege);
        assert_eq!(s.executor, None);
    }

    #[test]
    fn an_invalid_namespace_is_refused() {
        for ns in ["", "Causely", "-x", "x-", "a_b", &"a".repeat(64)] {
            let s = Settings { namespace: ns.to_owned(), ..Settings::defaults() };
            assert_eq!(s.validate(), Err(SettingsError::Namespace(ns.to_owned())));
        }
    }

    #[test]
    fn external_victoria_metrics_needs_an_http_url() {
        assert_eq!(parse_victoria_metrics("in-cluster"), Ok(VictoriaMetrics::InCluster));
        assert!(matches!(parse_victoria_metrics("outside"), Err(SettingsError::VictoriaMetricsMode(_))));
        let ok = parse_victoria_metrics("external:http://vm.monitoring:8428").unwrap();
        assert_eq!(Settings { victoria_metrics: ok.clone(), ..Settings::defaults() }.validate(), Ok(()));
        for bad in ["external:vm:8428", "external:http://", "external:ftp://vm"] {
            let vm = parse_victoria_metrics(bad).unwrap();
            let s = Settings { victoria_metrics: vm, ..Settings::defaults() };
            assert!(matches!(s.validate(), Err(SettingsError::ExternalUrl(_))), "{bad}");
        }
        let s = Settings { victoria_metrics: ok, ..Settings::defaults() };
        assert_eq!(s.victoria_metrics_url(), "http://vm.monitoring:8428");
    }

    #[test]
    fn one_registry_rewrites_every_image_and_an_override_wins() {
        let mut s = Settings { registry: "registry.example.com/mirror".into(), ..Settings::defaults() };
        for component in Component::ALL {
            assert!(s.image(component).starts_with("registry.example.com/mirror/"), "{component}");
        }
        s.images.insert(Component::Agent, "my/agent:dev".into());
        assert_eq!(s.image(Component::Agent), "my/agent:dev");
        for bad in ["https://r.io", "r.io/", ""] {
            let s = Settings { registry: bad.into(), ..Settings::defaults() };
            assert!(matches!(s.validate(), Err(SettingsError::Registry(_))), "{bad}");
        }
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_known_digest_pins_the_projects_images_in_any_registry() {
        let s = Settings::defaults();
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            s.image_pinned(Component::Agent, Some(DIGEST)),
            format!("ghcr.io/kubectl-causely/causely-agent:{version}@{DIGEST}")
        );
        assert_eq!(
            s.image_pinned(Component::Mediator, None),
            format!("ghcr.io/kubectl-causely/causely-mediator:{version}")
        );
        let mirror = Settings { registry: "registry.example.com/mirror".into(), ..Settings::defaults() };
        assert_eq!(
            mirror.image_pinned(Component::Executor, Some(DIGEST)),
            format!("registry.example.com/mirror/causely-executor:{version}@{DIGEST}")
        );
    }

    #[test]
    fn an_override_victoria_metrics_and_another_version_are_never_pinned() {
        let mut s = Settings::defaults();
        s.images.insert(Component::Agent, "my/agent:dev".into());
        assert_eq!(s.image_pinned(Component::Agent, Some(DIGEST)), "my/agent:dev");
        assert_eq!(
            s.image_pinned(Component::VictoriaMetrics, Some(DIGEST)),
            format!("docker.io/{VICTORIA_METRICS_IMAGE}")
        );
        let old = Settings { version: "0.0.1".into(), ..Settings::defaults() };
        assert_eq!(
            old.image_pinned(Component::Mediator, Some(DIGEST)),
            "ghcr.io/kubectl-causely/causely-mediator:0.0.1"
        );
    }

    #[test]
    fn the_rendered_image_carries_the_digest_this_build_embedded() {
        // Whichever digests this build had (none, or target/images/digests.json): image() is image_pinned() with them.
        let s = Settings::defaults();
        for component in Component::ALL {
            assert_eq!(s.image(component), s.image_pinned(component, release_digest(component)), "{component}");
            if let Some(digest) = release_digest(component) {
                assert!(crate::render::digests::is_sha256_digest(digest), "{digest}");
            }
        }
        assert_eq!(release_digest(Component::VictoriaMetrics), None);
    }

    #[test]
    fn settings_round_trip_and_reject_unknown_keys() {
        let s = Settings { executor: Some(ExecutorRbac::Scoped), ..Settings::defaults() };
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(serde_json::from_value::<Settings>(json.clone()).unwrap(), s);
        let mut bad = json;
        bad["agentMod"] = serde_json::json!("privileged");
        assert!(serde_json::from_value::<Settings>(bad).is_err());
    }
}
