//! `causely-mediator` refuses bad configuration with one line on stderr and exit code 2, before
//! it touches the cluster or the state directory.

use std::process::Command;

use causely_tests::workspace::workspace_bin;

fn run(args: &[&str]) -> anyhow::Result<(i32, String)> {
    let output = Command::new(workspace_bin("causely-mediator")?).args(args).env_remove("KUBECONFIG").output()?;
    Ok((output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned()))
}

#[test]
fn bad_configuration_is_one_line_and_exit_code_two() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.json");
    std::fs::write(&rules, r#"{"resolveAfterSecondz": 5}"#)?;
    let kubeconfig = dir.path().join("missing-kubeconfig");
    let state = dir.path().join("state");
    let cases: [(&[&str], &str); 7] = [
        (&["--cluster-id", "Prod_EU"], "--cluster-id"),
        (&["--upstream-url", "http://backend.example.com/ingest"], "https"),
        (&["--agent-service-account", "a/b/c"], "--agent-service-account"),
        (&["--executor-service-account", "a/b/c"], "--executor-service-account"),
        (&["--rules", rules.to_str().unwrap_or_default()], "resolveAfterSecondz"),
        (&["--kubeconfig", kubeconfig.to_str().unwrap_or_default()], "kubeconfig"),
        (&["--batch-interval", "soon"], "--batch-interval"),
    ];
    for (args, mentions) in cases {
        let mut args = args.to_vec();
        let state = state.to_str().unwrap_or_default();
        args.extend(["--state-dir", state]);
        let (code, stderr) = run(&args)?;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(mentions), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(lines.len() <= 3, "{args:?}: {stderr}");
        assert!(!state.is_empty() && !std::path::Path::new(state).exists(), "{args:?} created the state directory");
    }
    Ok(())
}
