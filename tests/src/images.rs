//! The container images `scripts/images` builds, read back from their OCI image layout (index.json →
//! manifest → config and layers, every blob checked against its digest), and the final stage of the
//! components' Dockerfiles, parsed so the two can be compared.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail, ensure};
use sha2::{Digest, Sha256};

use crate::workspace::{repo_root, target_profile_dir};

/// The images, by the key `scripts/images` gives each in digests.json.
pub const COMPONENTS: [&str; 4] = ["agent", "mediator", "executor", "demo"];

/// The cargo target directory this test was built in.
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let profile = target_profile_dir()?;
    profile.parent().map(Path::to_path_buf).context("the profile directory has no parent")
}

/// Where `scripts/images` leaves the release binaries it builds.
pub fn release_binaries() -> anyhow::Result<PathBuf> {
    Ok(target_dir()?.join("x86_64-unknown-linux-gnu/release"))
}

/// Runs `scripts/images` with `args`; its stderr is shown when it fails.
pub fn run_script(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(repo_root().join("scripts/images"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .context("running scripts/images")?;
    ensure!(
        out.status.success(),
        "scripts/images {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The images of this tree, built once per test process by `scripts/images` (release binaries, then the
/// images) into `<target>/images-test`, not `target/images`, which `make images` and the local cluster use.
/// After `make images` the binaries are fresh and only the images are assembled again.
pub fn built() -> anyhow::Result<&'static Path> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let build = || -> anyhow::Result<PathBuf> {
            let out = target_dir()?.join("images-test");
            run_script(&["--out", &out.to_string_lossy()])?;
            Ok(out)
        };
        build().map_err(|e| format!("{e:#}"))
    });
    match result {
        Ok(out) => Ok(out.as_path()),
        Err(e) => bail!("{e}"),
    }
}

/// `digests.json` of an output directory of `scripts/images`.
pub fn digests(out: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let path = out.join("digests.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The HEAD commit and its time (seconds), what the images are labelled and dated with.
pub fn head_commit() -> anyhow::Result<(String, i64)> {
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("git").args(args).current_dir(repo_root()).output().context("running git")?;
        ensure!(out.status.success(), "git {} failed", args.join(" "));
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    Ok((git(&["rev-parse", "HEAD"])?, git(&["log", "-1", "--format=%ct", "HEAD"])?.parse()?))
}

/// One entry of an image's layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path as the layer names it, directories with a trailing '/'.
    pub path: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub is_dir: bool,
}

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn open(dir: &Path) -> Layout {
        Layout { dir: dir.to_path_buf() }
    }

    /// The manifest digest the index gives `reference` (its `org.opencontainers.image.ref.name`).
    pub fn manifest_digest(&self, reference: &str) -> anyhow::Result<String> {
        let index: serde_json::Value = serde_json::from_slice(&std::fs::read(self.dir.join("index.json"))?)?;
        index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
            .and_then(|m| m["digest"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("{} has no image {reference}", self.dir.display()))
    }

    /// A blob's bytes, after checking they hash to `digest`.
    pub fn blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let hex = digest.strip_prefix("sha256:").with_context(|| format!("{digest} is not a sha256 digest"))?;
        let path = self.dir.join("blobs/sha256").join(hex);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let actual = hex::encode(Sha256::digest(&bytes));
        ensure!(actual == hex, "blob {digest} hashes to sha256:{actual}");
        Ok(bytes)
    }

    pub fn manifest(&self, reference: &str) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.blob(&self.manifest_digest(reference)?)?)?)
    }

    /// The image config (`created`, `config.User`, `config.Labels`, `history`, ...).
    pub fn config(&self, reference: &str) -> anyhow::Result<serde_json::Value> {
        let manifest = self.manifest(reference)?;
        let digest = manifest["config"]["digest"].as_str().context("the manifest names no config")?;
        Ok(serde_json::from_slice(&self.blob(digest)?)?)
    }

    /// The digests of the image's layers, in order.
    pub fn layers(&self, reference: &str) -> anyhow::Result<Vec<String>> {
        let manifest = self.manifest(reference)?;
        manifest["layers"]
            .as_array()
            .context("the manifest has no layers")?
            .iter()
            .map(|l| l["digest"].as_str().map(str::to_owned).context("a layer without a digest"))
            .collect()
    }

    /// Every entry of every layer, in order.
    pub fn entries(&self, reference: &str) -> anyhow::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for digest in self.layers(reference)? {
            let blob = self.blob(&digest)?;
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob.as_slice()));
            for entry in archive.entries()? {
                let entry = entry?;
                let header = entry.header();
                entries.push(Entry {
                    path: entry.path()?.to_string_lossy().into_owned(),
                    mode: header.mode()?,
                    uid: header.uid()?,
                    gid: header.gid()?,
                    mtime: header.mtime()?,
                    is_dir: header.entry_type().is_dir(),
                });
            }
        }
        Ok(entries)
    }

    /// The content of one file of the image.
    pub fn file(&self, reference: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        let mut found = None;
        for digest in self.layers(reference)? {
            let blob = self.blob(&digest)?;
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob.as_slice()));
            for entry in archive.entries()? {
                let mut entry = entry?;
                if entry.path()?.to_string_lossy() == path {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes)?;
                    found = Some(bytes);
                }
            }
        }
        found.with_context(|| format!("{reference} has no file {path}"))
    }

    /// Unpacks the image's layers, in order, into `root` (our layers have no whiteouts to apply), keeping
    /// modes and owners, as a container runtime would lay out the root filesystem.
    pub fn unpack(&self, reference: &str, root: &Path) -> anyhow::Result<()> {
        for digest in self.layers(reference)? {
            let blob = self.blob(&digest)?;
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob.as_slice()));
            archive.set_preserve_permissions(true);
            archive.set_preserve_ownerships(true);
            archive.unpack(root).with_context(|| format!("unpacking {digest} into {}", root.display()))?;
        }
        Ok(())
    }
}

/// The final stage of a Dockerfile: what the image it builds holds and runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalStage {
    /// The `FROM` of the stage (`scratch` for ours).
    pub from: String,
    /// Destinations of its COPY instructions.
    pub copies: Vec<String>,
    pub user: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    /// LABEL keys and values as written (`${ARG}` not expanded).
    pub labels: BTreeMap<String, String>,
    /// ARG names and their defaults.
    pub args: BTreeMap<String, String>,
}

/// Parses the last stage of a Dockerfile (the instructions this test compares; others are ignored).
pub fn final_stage(dockerfile: &str) -> anyhow::Result<FinalStage> {
    // Join continuation lines, drop comments and blank lines.
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let start = instructions
        .iter()
        .rposition(|i| i.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")))
        .context("the Dockerfile has no FROM")?;
    let mut stage = FinalStage::default();
    for instruction in &instructions[start..] {
        let (keyword, rest) = instruction.split_once(char::is_whitespace).unwrap_or((instruction, ""));
        let rest = rest.trim();
        match keyword.to_ascii_uppercase().as_str() {
            "FROM" => stage.from = rest.split_whitespace().next().unwrap_or_default().to_owned(),
            "COPY" => {
                let destination = rest.split_whitespace().last().context("COPY without a destination")?;
                stage.copies.push(destination.to_owned());
            }
            "USER" => stage.user = Some(rest.to_owned()),
            "ENTRYPOINT" => {
                let exec: Vec<String> = serde_json::from_str(rest)
                    .with_context(|| format!("ENTRYPOINT {rest} is not the exec (JSON array) form"))?;
                stage.entrypoint = Some(exec);
            }
            "LABEL" => stage.labels.extend(key_values(rest)?),
            "ARG" => {
                let (name, default) = rest.split_once('=').unwrap_or((rest, ""));
                stage.args.insert(name.to_owned(), default.to_owned());
            }
            _ => {}
        }
    }
    Ok(stage)
}

/// `k1="v 1" k2=v2` as LABEL writes it.
fn key_values(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut pairs = BTreeMap::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').with_context(|| format!("LABEL {text}: no '=' in {rest}"))?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').with_context(|| format!("LABEL {text}: unterminated quote"))?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(char::is_whitespace).unwrap_or((after, "")),
        };
        pairs.insert(key.trim().to_owned(), value.to_owned());
        rest = after.trim_start();
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_final_stage_of_a_dockerfile_is_read_with_its_continuations() {
        let text = r#"
FROM rust AS build
COPY . .
USER builder
# a comment
FROM scratch
ARG VERSION=1.2.3
ARG REVISION
COPY --from=build /a /etc/a
copy --from=build /b \
     /usr/local/bin/b
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/b", "--flag"]
LABEL one="1" \
      two="${VERSION}" three=3
"#;
        let stage = final_stage(text).unwrap();
        assert_eq!(stage.from, "scratch");
        assert_eq!(stage.copies, ["/etc/a", "/usr/local/bin/b"]);
        assert_eq!(stage.user.as_deref(), Some("65532:65532"));
        assert_eq!(stage.entrypoint, Some(vec!["/usr/local/bin/b".to_owned(), "--flag".to_owned()]));
        let labels: Vec<_> = stage.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(labels, ["one=1", "three=3", "two=${VERSION}"]);
        assert_eq!(stage.args.get("VERSION").map(String::as_str), Some("1.2.3"));
        assert_eq!(stage.args.get("REVISION").map(String::as_str), Some(""));
    }

    #[test]
    fn a_shell_form_entrypoint_is_refused() {
        assert!(final_stage("FROM scratch\nENTRYPOINT /bin/x\n").is_err());
    }
}
