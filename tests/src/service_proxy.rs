//! Makes a host-process mediator reachable through the API server's service proxy, the way the
//! plugin reaches an installed one by default: a kwok pod standing for the mediator's pod (a
//! container port named `api`), a Service `causely-mediator` selecting it, and the pod's IP held
//! on this machine's loopback interface, where the mediator then listens. The API server's proxy
//! connection to the pod IP lands on it; the address is in the local cluster's pod CIDR and is
//! never routed off the machine. Needs root (`ip addr`).

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, PostParams};

use crate::poll;

/// The address held on the loopback interface; released when dropped.
#[derive(Debug)]
pub struct ProxiedAddr {
    pub addr: SocketAddr,
}

impl Drop for ProxiedAddr {
    fn drop(&mut self) {
        let _ = ip_addr("del", self.addr.ip());
    }
}

fn ip_addr(action: &str, ip: IpAddr) -> anyhow::Result<()> {
    let status = Command::new("ip").args(["addr", action, &format!("{ip}/32"), "dev", "lo"]).status()?;
    anyhow::ensure!(status.success(), "ip addr {action} {ip}/32 dev lo failed (needs root)");
    Ok(())
}

/// Creates the pod and Service in `namespace` (which must exist) for a mediator on `port`, and
/// holds the pod's IP on the loopback interface. Start the mediator with `--listen` on the
/// returned address.
pub async fn expose(client: &kube::Client, namespace: &str, port: u16) -> anyhow::Result<ProxiedAddr> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let labels = serde_json::json!({"app.kubernetes.io/name": "mediator", "causely.test/proxied": "true"});
    let _ = pods.delete("causely-mediator-proxied", &DeleteParams::default().grace_period(0)).await;
    let _ = services.delete("causely-mediator", &DeleteParams::default()).await;
    poll::until("the previous proxied mediator pod is gone", Duration::from_secs(30), || async {
        Ok(pods.get_opt("causely-mediator-proxied").await?.is_none().then_some(()))
    })
    .await?;
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "causely-mediator-proxied", "labels": labels},
        "spec": crate::kwok::on_fake_nodes(serde_json::json!({"containers": [{"name": "mediator",
            "image": "registry.example/causely/mediator:test", "ports": [{"name": "api", "containerPort": port}]}]}))
    }))?;
    pods.create(&PostParams::default(), &pod).await.context("creating the mediator's stand-in pod")?;
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "causely-mediator"},
        "spec": {"selector": labels, "ports": [{"name": "api", "port": 8080, "targetPort": "api"}]}
    }))?;
    services.create(&PostParams::default(), &service).await.context("creating the mediator Service")?;
    let ip: IpAddr = poll::until("the stand-in pod has an IP", Duration::from_secs(60), || async {
        let pod = pods.get("causely-mediator-proxied").await?;
        Ok(pod.status.and_then(|s| s.pod_ip).and_then(|ip| ip.parse().ok()))
    })
    .await?;
    // `replace`, not `add`: an address a killed run left behind is taken over, not an error.
    ip_addr("replace", ip)?;
    Ok(ProxiedAddr { addr: SocketAddr::new(ip, port) })
}
