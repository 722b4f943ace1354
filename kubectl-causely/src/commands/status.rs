//! `kubectl causely status`: each component's desired and ready pods, version and age; exit 1
//! when any is unhealthy or Causely is not installed in the namespace.

use crate::cli::{OutputFormat, StatusArgs};
use crate::exit::{Failure, Outcome};
use crate::{cluster, health, kubeconfig, rollout};

pub async fn run(args: StatusArgs) -> Result<Outcome, Failure> {
    let (client, _) = kubeconfig::client(&args.cluster).await?;
    let namespace = &args.namespace.namespace;
    let Some(record) = cluster::read_record(&client, namespace).await? else {
        match args.output {
            OutputFormat::Json => crate::outln!("{}", serde_json::json!({"installed": false, "namespace": namespace})),
            OutputFormat::Text => crate::outln!("Causely is not installed in namespace {namespace}"),
        }
        return Ok(Outcome::Problem);
    };
    let components = if args.wait.wait {
        rollout::wait(&client, &record.settings, args.wait.timeout, |_| {}).await?
    } else {
        rollout::health(&client, &record.settings).await?
    };
    let healthy = components.iter().all(health::ComponentHealth::healthy);
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({
                "installed": true,
                "namespace": namespace,
                "version": record.settings.version,
                "healthy": healthy,
                "components": components,
            });
            crate::outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        OutputFormat::Text => crate::out!("{}", health::table(&components)),
    }
    Ok(if healthy { Outcome::Clean } else { Outcome::Problem })
}
