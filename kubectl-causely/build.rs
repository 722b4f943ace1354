//! Embeds the manifest digests of the images built from this tree, so `install` renders each of the
//! project's images as name:tag@sha256:... The file is the one `CAUSELY_IMAGE_DIGESTS` names (the workspace's
//! .cargo/config.toml points it at target/images/digests.json, which `scripts/images` writes; a release
//! pipeline sets it explicitly). No variable or no file: nothing is embedded and images render by tag.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[allow(dead_code)]
#[path = "src/render/digests.rs"]
mod digests;

const VAR: &str = "CAUSELY_IMAGE_DIGESTS";

fn main() -> ExitCode {
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // One line, shown by cargo as the build error.
            println!("cargo::error={message}");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<(), String> {
    println!("cargo::rerun-if-env-changed={VAR}");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/render/digests.rs");
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?).join("image_digests.rs");
    let entries = match env::var_os(VAR).filter(|v| !v.is_empty()).map(PathBuf::from) {
        Some(path) if path.is_file() => {
            println!("cargo::rerun-if-changed={}", path.display());
            read(&path)?
        }
        Some(path) => {
            watch_for(&path);
            BTreeMap::new()
        }
        None => BTreeMap::new(),
    };
    let mut code = String::from("&[\n");
    for (component, digest) in &entries {
        code.push_str(&format!("    ({component:?}, {digest:?}),\n"));
    }
    code.push(']');
    // Rewritten only when it changes, so an unchanged digests file does not recompile the crate.
    if fs::read_to_string(&out).ok().as_deref() != Some(code.as_str()) {
        fs::write(&out, code).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(())
}

/// The checked (component, digest) pairs of a digests file.
fn read(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{VAR}: cannot read {}: {e}", path.display()))?;
    let entries: BTreeMap<String, String> = serde_json::from_str(&text)
        .map_err(|e| format!("{VAR}: {} is not a JSON object of component to digest strings: {e}", path.display()))?;
    digests::check(entries.iter().map(|(c, d)| (c.as_str(), d.as_str())))
        .map_err(|e| format!("{VAR}: {}: {e}", path.display()))?;
    Ok(entries)
}

/// A file that does not exist yet cannot be watched: cargo would rerun this script, and recompile the crate, on
/// every build. Its directory is watched instead (cargo notices the file appearing there); the directory is
/// created when missing, since watching the nearest existing one (the whole target directory) would rerun
/// on every build too.
fn watch_for(path: &Path) {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else { return };
    if fs::create_dir_all(dir).is_ok() {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
}
