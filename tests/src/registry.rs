//! Our images as the local cluster's registry serves them: `make images` builds them into
//! `target/images` (with `digests.json`) and `tests/cluster/up` pushes them to the registry.

use anyhow::Context;

use crate::cluster::Cluster;
use crate::workspace::repo_root;

/// `registry/causely-NAME:VERSION@sha256:...` for one of our images (`agent`, `mediator`,
/// `executor`, `demo`), pinned by the digest of the build in `target/images`.
pub fn reference(cluster: &Cluster, name: &str) -> anyhow::Result<String> {
    let path = repo_root().join("target/images/digests.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (run `make images` before the cluster tests)", path.display()))?;
    let digests: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let digest = digests[name].as_str().with_context(|| format!("no digest for {name} in {}", path.display()))?;
    Ok(format!("{}/causely-{name}:{}@{digest}", cluster.registry, env!("CARGO_PKG_VERSION")))
}
