//! `kubectl causely top --mediator-url …` in a pseudo-terminal against a real mediator on the local
//! cluster: a node made NotReady (its status patched as a kubelet would; kwok does not manage this
//! node) shows on the Symptoms screen; the banner comes and goes when the mediator dies and
//! restarts; tab reaches Topology; `q` exits 0 and leaves the terminal as it found it.
//!
//! Prints how long the symptom took from the patch to the mediator's read API and to the screen
//! (reported in docs/benchmarks.md; never asserted).

use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use causely_tests::cluster::Cluster;
use causely_tests::mediator::{Mediator, MediatorOptions, ensure_namespace};
use causely_tests::poll;
use causely_tests::pty::Pty;
use causely_tests::workspace::workspace_bin;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "top-tui";
/// Short enough that `node/<name>` fits the entity column at 80 columns.
const NODE: &str = "top-tui-node";

/// The smallest terminal `top` supports.
const COLUMNS: NonZeroU16 = NonZeroU16::new(80).unwrap();
const ROWS: NonZeroU16 = NonZeroU16::new(24).unwrap();

/// A Ready condition with a fresh heartbeat, as a kubelet posts it.
fn node_ready(status: &str) -> Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": "Test",
        "lastHeartbeatTime": now, "lastTransitionTime": now}]}})
}

fn shows_the_symptom(screen: &str) -> bool {
    screen.lines().any(|l| l.contains("node not ready") && l.contains(&format!("node/{NODE}")))
}

#[tokio::test(flavor = "multi_thread")]
async fn top_shows_a_symptom_as_it_opens_rides_out_a_mediator_restart_and_quits_cleanly() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let _ = nodes.delete(NODE, &DeleteParams::default()).await;
    poll::until("the leftover node is gone", Duration::from_secs(30), || {
        let nodes = nodes.clone();
        async move { Ok(nodes.get_opt(NODE).await?.is_none().then_some(())) }
    })
    .await?;
    nodes.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NODE}}))?).await?;
    let status = PatchParams::default();
    nodes.patch_status(NODE, &status, &Patch::Merge(node_ready("True"))).await?;

    let state = tempfile::tempdir()?;
    let mut mediator = Mediator::start(&cluster, &state.path().join("state"), MediatorOptions::new(NS)).await?;

    // A shell runs top, then reports its exit code and whether the terminal is back in cooked
    // mode with echo (raw mode turns both off).
    let bin = workspace_bin("kubectl-causely")?;
    let script = format!(
        "'{}' top --mediator-url '{}'; echo \"top exited $?\"; \
         echo \"tty: $(stty -a | tr ' ;' '\\n\\n' | grep -E '^-?(icanon|echo)$' | tr '\\n' ' ')\"",
        bin.display(),
        mediator.url
    );
    let mut pty = Pty::spawn("/bin/sh", &["-c", &script], COLUMNS, ROWS)?;
    pty.wait_for("the live Symptoms view", Duration::from_secs(30), |s| s.contains("● live") && s.contains("open ·"))
        .await?;
    assert!(!shows_the_symptom(&pty.contents()), "no symptom before the node fails:\n{}", pty.contents());

    // The node fails; measure when the mediator and the screen have it.
    let patched = Instant::now();
    nodes.patch_status(NODE, &status, &Patch::Merge(node_ready("False"))).await?;
    let on_screen = pty.wait_for("the node-not-ready symptom", Duration::from_secs(30), shows_the_symptom);
    let in_mediator = poll_mediator_until_open(&mediator);
    let (on_screen, in_mediator) = tokio::join!(on_screen, in_mediator);
    let (on_screen, in_mediator) = (on_screen?, in_mediator?);
    eprintln!(
        "symptom latency: patch -> mediator read API {:?}, patch -> top's screen {:?}",
        in_mediator.duration_since(patched),
        on_screen.duration_since(patched)
    );

    // The mediator dies: a banner, and the data stays. It restarts: live again, by itself.
    mediator.kill();
    pty.wait_for("the unreachable banner", Duration::from_secs(20), |s| s.contains("mediator unreachable")).await?;
    assert!(shows_the_symptom(&pty.contents()), "the last data stays while offline:\n{}", pty.contents());
    mediator.restart().await?;
    pty.wait_for("live again after the restart", Duration::from_secs(30), |s| {
        s.contains("● live") && !s.contains("mediator unreachable") && shows_the_symptom(s)
    })
    .await?;

    // Tab to Topology; the shared cluster may have more rows than fit, so filter down to the node.
    pty.send("\t")?;
    pty.wait_for("the Topology view", Duration::from_secs(10), |s| s.contains("topology (")).await?;
    pty.send(&format!("/{NODE}\r"))?;
    pty.wait_for("the failed node in the tree", Duration::from_secs(10), |s| {
        s.lines().any(|l| l.contains(&format!("node {NODE}")) && l.contains("● 1 critical"))
    })
    .await?;
    pty.send("q")?;
    pty.wait_for("top's exit code", Duration::from_secs(10), |s| s.contains("top exited")).await?;
    let screen = pty.wait_for("the terminal modes", Duration::from_secs(10), |s| s.contains("tty: i")).await;
    let contents = pty.contents();
    assert!(screen.is_ok() && contents.contains("top exited 0"), "{contents}");
    assert!(contents.contains("tty: icanon echo"), "raw mode was not undone:\n{contents}");
    assert!(pty.on_main_screen_with_cursor(), "the alternate screen or hidden cursor remained:\n{contents}");

    let _ = nodes.delete(NODE, &DeleteParams::default()).await;
    Ok(())
}

async fn poll_mediator_until_open(mediator: &Mediator) -> anyhow::Result<Instant> {
    let entity = format!("node/{NODE}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let symptoms = mediator.get_json("/v1/symptoms").await?;
        let open = symptoms["open"]
            .as_array()
            .is_some_and(|open| open.iter().any(|s| s["kind"] == "node-not-ready" && s["entity"] == entity.as_str()));
        if open {
            return Ok(Instant::now());
        }
        anyhow::ensure!(Instant::now() < deadline, "the mediator did not open the symptom: {symptoms}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn without_a_terminal_or_with_a_bad_url_top_refuses_in_one_line_with_exit_code_two() -> anyhow::Result<()> {
    let bin = workspace_bin("kubectl-causely")?;
    let cases: [(&[&str], &str); 3] = [
        (&["top", "--mediator-url", "http://127.0.0.1:1"], "TTY"),
        (&["top", "--mediator-url", "ftp://mediator"], "--mediator-url"),
        (&["top", "--mediator-url", "127.0.0.1:8080"], "--mediator-url"),
    ];
    for (args, mentions) in cases {
        // Run by the test harness, stdout is a pipe: not a terminal.
        let out = std::process::Command::new(&bin).args(args).env_remove("CAUSELY_MEDIATOR_URL").output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(mentions), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    }
    Ok(())
}

/// Without `--mediator-url`, top goes through the API server's service proxy to the install's
/// mediator Service, as on a real cluster (the mediator listens on its stand-in pod's IP, which
/// `service_proxy` holds on loopback).
#[tokio::test(flavor = "multi_thread")]
async fn top_reaches_the_mediator_through_the_api_servers_service_proxy_by_default() -> anyhow::Result<()> {
    const PROXIED_NS: &str = "top-proxy";
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, PROXIED_NS).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let held = causely_tests::service_proxy::expose(&client, PROXIED_NS, port).await?;
    let state = tempfile::tempdir()?;
    let mut options = MediatorOptions::new(PROXIED_NS);
    options.listen = Some(held.addr);
    let _mediator = Mediator::start(&cluster, &state.path().join("state"), options).await?;

    let script = format!(
        "unset CAUSELY_MEDIATOR_URL; KUBECONFIG='{}' '{}' top -n {PROXIED_NS}; echo \"top exited $?\"",
        cluster.kubeconfig.display(),
        workspace_bin("kubectl-causely")?.display()
    );
    let mut pty = Pty::spawn("/bin/sh", &["-c", &script], COLUMNS, ROWS)?;
    pty.wait_for("the live Symptoms view through the proxy", Duration::from_secs(30), |s| {
        s.contains("● live") && s.contains("open ·")
    })
    .await?;
    pty.send("q")?;
    pty.wait_for("top's exit code", Duration::from_secs(10), |s| s.contains("top exited 0")).await?;
    Ok(())
}
