//! `causely-executor` refuses bad configuration with one error line on stderr and exit code 2, before
//! it touches the cluster or its state directory.

use std::process::Command;

use causely_tests::workspace::workspace_bin;

#[test]
fn bad_configuration_is_one_line_and_exit_code_two() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let unknown_key = dir.path().join("unknown.yaml");
    std::fs::write(&unknown_key, "maxReplica: 3\n")?;
    let bounds = dir.path().join("bounds.yaml");
    std::fs::write(&bounds, "minReplicas: 4\nmaxReplicas: 2\n")?;
    let state = dir.path().join("state");
    let path = |p: &std::path::Path| p.to_str().unwrap_or_default().to_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "--mediator-url"),
        (vec!["--mediator-url".into(), "not a url".into()], "--mediator-url"),
        (vec!["--mediator-url".into(), "http://m".into(), "--policy".into(), path(&unknown_key)], "maxReplica"),
        (vec!["--mediator-url".into(), "http://m".into(), "--policy".into(), path(&bounds)], "minReplicas"),
        (vec!["--mediator-url".into(), "http://m".into(), "--policy".into(), path(&dir.path().join("none"))], "none"),
        (vec!["--mediator-url".into(), "http://m".into(), "--poll-interval".into(), "soon".into()], "--poll-interval"),
    ];
    for (mut args, mentions) in cases {
        args.extend(["--state-dir".into(), path(&state)]);
        let output = Command::new(workspace_bin("causely-executor")?).args(&args).env_remove("KUBECONFIG").output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(mentions), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // One error line (clap adds a usage line and a hint after a missing flag).
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.lines().filter(|l| !l.trim().is_empty()).count() <= 4, "{args:?}: {stderr}");
        assert!(!state.exists(), "{args:?} created the state directory");
    }
    Ok(())
}
