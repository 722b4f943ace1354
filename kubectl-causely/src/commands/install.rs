//! `kubectl causely install`: render the release for the given settings, then print it
//! (`--dry-run`), validate it on the server (`--dry-run=server`), or apply it with server-side
//! apply and record what was applied; `--wait` waits for the rollout.

use kube::Client;

use crate::baseline::Baseline;
use crate::cli::{DryRun, InstallArgs, ManifestFormat, WaitFlags};
use crate::exit::{Failure, Outcome};
use crate::record::Record;
use crate::render::settings::Settings;
use crate::render::{self, Format, Manifest};
use crate::{cluster, health, kubeconfig, options, rollout};

/// The rendered release for `settings`, followed by the record of it.
pub fn release(settings: &Settings) -> Result<Vec<Manifest>, Failure> {
    let baseline = Baseline::seed().map_err(|e| Failure::CouldNotRun(e.to_string()))?;
    let objects = render::render(settings, &baseline).map_err(|e| Failure::Usage(e.to_string()))?;
    let record = Record { settings: settings.clone(), objects: objects.clone() }.to_manifest();
    Ok(objects.into_iter().chain([record]).collect())
}

/// Waits for the rollout, printing progress to stderr; a component still not ready at the
/// deadline is reported with the cluster's explanation, and the outcome is a problem.
pub async fn wait(client: &Client, settings: &Settings, flags: &WaitFlags) -> Result<Outcome, Failure> {
    let mut last_line = String::new();
    let result = rollout::wait(client, settings, flags.timeout, |components| {
        let line = components
            .iter()
            .map(|c| format!("{} {}/{}", c.component, c.ready, c.desired))
            .collect::<Vec<_>>()
            .join(", ");
        if line != last_line {
            eprintln!("waiting: {line}");
            last_line = line;
        }
    })
    .await?;
    let mut outcome = Outcome::Clean;
    for component in result.iter().filter(|c| !c.healthy()) {
        outcome = Outcome::Problem;
        eprintln!(
            "not ready after {:?}: {} ({})",
            flags.timeout,
            component.component,
            component.problem.as_deref().unwrap_or_default()
        );
        for reason in rollout::explain(client, settings, component.component).await? {
            eprintln!("  {reason}");
        }
    }
    if outcome == Outcome::Clean {
        eprint!("{}", health::table(&result));
    }
    Ok(outcome)
}

pub async fn run(args: InstallArgs) -> Result<Outcome, Failure> {
    let settings = options::resolve(Settings::defaults(), &args.namespace.namespace, &args.settings)?;
    let manifests = release(&settings)?;
    if args.dry_run == Some(DryRun::Client) {
        let format = match args.output {
            ManifestFormat::Yaml => Format::Yaml,
            ManifestFormat::Json => Format::Json,
        };
        crate::out!("{}", render::print(&manifests, format).map_err(Failure::CouldNotRun)?);
        return Ok(Outcome::Clean);
    }
    let (client, _) = kubeconfig::client(&args.cluster).await?;
    if args.dry_run == Some(DryRun::Server) {
        cluster::validate_all(&client, &manifests, |manifest, validated| {
            if validated {
                crate::outln!("{} validated (server dry run)", manifest.key());
            } else {
                crate::outln!("{} not validated: its namespace does not exist yet", manifest.key());
            }
        })
        .await?;
        return Ok(Outcome::Clean);
    }
    cluster::apply_all(&client, &manifests, |manifest, changed| {
        crate::outln!("{} {}", manifest.key(), if changed { "applied" } else { "unchanged" });
    })
    .await?;
    if args.wait.wait { wait(&client, &settings, &args.wait).await } else { Ok(Outcome::Clean) }
}
