//! Turns the shared cluster flags into a connected `kube::Client`, with kubectl's precedence:
//! `--kubeconfig`, then `$KUBECONFIG`, then `~/.kube/config`, then the in-cluster service account.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::cli::ClusterFlags;
use crate::exit::Failure;

/// Loads the client configuration the flags select, without contacting the cluster.
pub async fn load_config(flags: &ClusterFlags) -> Result<Config, Failure> {
    let options = KubeConfigOptions { context: flags.context.clone(), ..KubeConfigOptions::default() };
    let mut config = match &flags.kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| Failure::Usage(format!("cannot read kubeconfig {}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| Failure::Usage(format!("kubeconfig {}: {e}", path.display())))?
        }
        None if flags.context.is_some() => {
            Config::from_kubeconfig(&options).await.map_err(|e| Failure::Usage(format!("kubeconfig: {e}")))?
        }
        None => Config::infer().await.map_err(|e| {
            Failure::CouldNotRun(format!("no cluster configured (use --kubeconfig or set KUBECONFIG): {e}"))
        })?,
    };
    config.connect_timeout = Some(flags.request_timeout);
    config.read_timeout = Some(flags.request_timeout);
    config.write_timeout = Some(flags.request_timeout);
    Ok(config)
}

/// A client for the cluster the flags select.
pub async fn client(flags: &ClusterFlags) -> Result<(Client, Config), Failure> {
    let config = load_config(flags).await?;
    let client = Client::try_from(config.clone())
        .map_err(|e| Failure::CouldNotRun(format!("cannot build a client for {}: {e}", config.cluster_url)))?;
    Ok((client, config))
}
