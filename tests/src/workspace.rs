//! Where the repository, its pinned versions and the binaries the workspace built live.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A value from `tests/cluster/versions.env`, the one place the control plane's releases are pinned.
pub fn pinned(key: &str) -> anyhow::Result<String> {
    let path = repo_root().join("tests/cluster/versions.env");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('=').map(str::trim).map(str::to_owned))
        .with_context(|| format!("{key} is not set in {}", path.display()))
}

/// The directory cargo put this test's binaries in (`target/debug`, or the profile in use).
pub fn target_profile_dir() -> anyhow::Result<PathBuf> {
    // A test executable lives in <profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().context("locating the test executable")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("the test executable is not inside a cargo target directory")
}

/// Path to a binary of another workspace crate. Cargo builds those only for `cargo build`, so the
/// test command builds the workspace before it runs the tests.
pub fn workspace_bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = target_profile_dir()?.join(name);
    if !path.is_file() {
        bail!("{} is missing: run `cargo build --workspace` before the tests (make test does)", path.display());
    }
    Ok(path)
}
