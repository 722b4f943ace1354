//! `manifests/` holds exactly what this build's `install --dry-run -o yaml` prints, so reviewers
//! can read a release's objects without running anything. Regenerate with `make manifests`.
//!
//! Image digests are stripped on both sides: they depend on the binaries this tree built (embedded from
//! target/images/digests.json), and a reviewed file must not change with every build.

use std::path::Path;
use std::process::Command;

fn rendered(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-causely"))
        .args(["install", "--dry-run", "-o", "yaml"])
        .args(args)
        .output()
        .expect("the plugin runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    kubectl_causely::render::digests::strip(&String::from_utf8(out.stdout).expect("YAML is UTF-8"))
}

fn assert_current(file: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests").join(file);
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == rendered(args),
        "manifests/{file} is stale (or missing): run `make manifests` and commit the result"
    );
}

#[test]
fn the_default_release_in_manifests_is_current() {
    assert_current("default.yaml", &[]);
}

#[test]
fn the_release_with_the_executor_in_manifests_is_current() {
    assert_current("executor.yaml", &["--executor"]);
}
