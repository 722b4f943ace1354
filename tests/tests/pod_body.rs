//! `tests/cluster/pod-body` gives kwok pods real bodies: two pods' processes talk TCP to each other
//! over their pod IPs, and run in cgroups named as the kubelet names them. Needs root.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use causely_tests::cluster::Cluster;
use causely_tests::mediator::ensure_namespace;
use causely_tests::pod_body::{PodBody, fresh_pod};
use causely_tests::poll;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

const NS: &str = "pod-body";

#[tokio::test(flavor = "multi_thread")]
async fn two_pods_made_real_talk_over_their_pod_ips_from_kubelet_named_cgroups() -> anyhow::Result<()> {
    let cluster = Cluster::get()?;
    let client = cluster.client().await?;
    ensure_namespace(&client, NS).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let server_pod = fresh_pod(&pods, "server", "kwok-node-1").await?;
    fresh_pod(&pods, "client", "kwok-node-1").await?;
    let server = PodBody::run(&cluster, NS, "server", None, &["python3", "-m", "http.server", "18080"])?;
    let caller = PodBody::run(&cluster, NS, "client", None, &["sleep", "300"])?;
    assert_eq!(Some(server.ip.clone()), server_pod.status.and_then(|s| s.pod_ip));

    // The server runs in the pod's cgroups, as a nested kubelet's cgroupfs driver names them (under
    // `kwok/`, apart from the real node's kubelet, which removes cgroups of pods it does not run).
    let uid = server_pod.metadata.uid.context("uid")?;
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", server.pid))?;
    let expected = format!("/kwok/kubepods/besteffort/pod{uid}/{}", server.container_id);
    assert!(cgroups.lines().any(|l| l.ends_with(&expected)), "{expected} not in\n{cgroups}");

    // The client's network namespace reaches the server's pod IP through the host.
    let url = format!("http://{}:18080/", server.ip);
    let status = poll::until("the server answers from the client pod", Duration::from_secs(20), || {
        let (netns, url) = (caller.netns.clone(), url.clone());
        async move {
            let out = Command::new("ip")
                .args(["netns", "exec", &netns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2", &url])
                .output()?;
            let code = String::from_utf8_lossy(&out.stdout).into_owned();
            Ok((code == "200").then_some(code))
        }
    })
    .await?;
    assert_eq!(status, "200");

    let netns = server.netns.clone();
    drop(server);
    drop(caller);
    let listed = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output()?.stdout).into_owned();
    assert!(!listed.contains(&netns), "the body's namespace is removed: {listed}");
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/memory/kwok/kubepods/besteffort/pod{uid}")).exists());
    Ok(())
}
