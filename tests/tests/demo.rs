//! The README's demo in its scripted form, `scripts/demo --no-tui`: the local cluster, an install,
//! the mediator and a node's agent as local processes (real eBPF), demo pods given bodies, a CPU
//! burner's symptom, the client → web call, and `egress verify`. Needs root, as CI runs.

use std::process::Command;

use causely_tests::cluster::Cluster;
use causely_tests::plugin::expect;
use causely_tests::workspace::repo_root;

#[test]
fn the_scripted_demo_shows_the_call_the_symptom_and_a_proven_egress() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let out = Command::new(repo_root().join("scripts/demo"))
        .arg("--no-tui")
        .env("KUBECONFIG", &cluster.kubeconfig)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The demo leaves Causely installed, as a user would want; the other tests expect a clean cluster.
    expect(&cluster, &["uninstall", "--purge"], 0)?;
    assert!(out.status.success(), "the demo exited {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status.code());
    assert!(
        stdout.lines().any(|l| l.contains("--calls :8080/tcp-->") && l.contains("client") && l.contains("web")),
        "no client → web call in:\n{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.contains("high-cpu-utilization") && l.contains("burner")),
        "no burner symptom in:\n{stdout}"
    );
    // egress verify went through the API server's service proxy to the demo's mediator and
    // found every check in order.
    assert!(stdout.contains("egress verify: PROVEN"), "{stdout}");
    assert!(stdout.contains("through the API server's proxy"), "{stdout}");
    assert!(stdout.contains("network-policies"), "{stdout}");
    Ok(())
}
