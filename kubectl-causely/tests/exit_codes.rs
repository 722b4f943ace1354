//! The plugin's contract with scripts and CI: exit 0 on success, 2 with one line on stderr when it
//! cannot run (bad flag, unreadable kubeconfig, unreachable API server), and valid JSON on stdout.

use std::path::Path;
use std::process::{Command, Output};

fn plugin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-causely"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .output()
        .expect("the plugin binary runs")
}

fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr).lines().map(str::to_owned).collect()
}

/// A kubeconfig whose API server is a closed port on loopback.
fn unreachable_kubeconfig(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .expect("writing the kubeconfig");
    path
}

#[test]
fn client_version_needs_no_cluster() {
    let out = plugin(&["version", "--client"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("Client Version: {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn client_version_as_json_is_one_valid_document() {
    let out = plugin(&["version", "--client", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(doc["clientVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let out = plugin(&["version", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn an_unknown_output_format_is_a_usage_error() {
    let out = plugin(&["version", "--client", "-o", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_missing_kubeconfig_is_one_error_line_and_exit_2() {
    let out = plugin(&["version", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(out.status.code(), Some(2));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("error: cannot read kubeconfig /nonexistent/kubeconfig"), "{lines:?}");
}

#[test]
fn an_unreachable_api_server_is_one_error_line_and_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let out = plugin(&["version", "--kubeconfig", kubeconfig.to_str().expect("utf-8 path"), "--request-timeout", "3s"]);
    assert_eq!(out.status.code(), Some(2));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("error: cannot reach the API server at https://127.0.0.1:1/"), "{lines:?}");
}

#[test]
fn install_against_an_unreachable_api_server_is_one_error_line_and_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let out = plugin(&["install", "--kubeconfig", kubeconfig.to_str().expect("utf-8 path"), "--request-timeout", "3s"]);
    assert_eq!(out.status.code(), Some(2));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("error: reading Namespace/causely"), "{lines:?}");
}

#[test]
fn no_cluster_configured_at_all_is_exit_2() {
    let out = plugin(&["version"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_lines(&out).len(), 1, "{:?}", stderr_lines(&out));
}

#[test]
fn completion_scripts_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = plugin(&["completion", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("kubectl-causely") && script.contains("install"), "{shell}");
    }
    assert_eq!(plugin(&["completion", "cmd"]).status.code(), Some(2));
}
