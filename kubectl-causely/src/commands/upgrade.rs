//! `kubectl causely upgrade`: plan (objects added, changed, removed, RBAC changes), then apply,
//! prune what the new release no longer has, wait for the rollout, and on failure roll back to
//! the recorded previous release.

use crate::cli::{UpgradeArgs, WaitFlags};
use crate::commands::install;
use crate::exit::{Failure, Outcome};
use crate::record::Record;
use crate::{cluster, kubeconfig, options, plan};

pub async fn run(args: UpgradeArgs) -> Result<Outcome, Failure> {
    let (client, _) = kubeconfig::client(&args.cluster).await?;
    let namespace = &args.namespace.namespace;
    let previous = cluster::read_record(&client, namespace).await?.ok_or_else(|| {
        Failure::CouldNotRun(format!("Causely is not installed in namespace {namespace}; run kubectl causely install"))
    })?;
    let settings = options::resolve(previous.settings.clone(), namespace, &args.settings)?;
    let next = install::release(&settings)?;
    let next_objects: Vec<_> = next.iter().filter(|m| m.name != crate::record::NAME).cloned().collect();
    let changes = plan::plan(&previous.objects, &next_objects, namespace);
    crate::out!("{}", plan::describe(&changes));
    if args.dry_run {
        return Ok(Outcome::Clean);
    }
    if changes.is_empty() {
        return Ok(Outcome::Clean);
    }

    cluster::apply_all(&client, &next, |m, changed| {
        if changed {
            crate::outln!("{} applied", m.key());
        }
    })
    .await?;
    for gone in &changes.removed {
        if cluster::delete(&client, gone).await? {
            crate::outln!("{} pruned", gone.key());
        }
    }
    let wait = WaitFlags { wait: true, timeout: args.timeout };
    if install::wait(&client, &settings, &wait).await? == Outcome::Clean {
        crate::outln!("upgraded to release {}", settings.version);
        return Ok(Outcome::Clean);
    }
    if !args.rollback_on_failure {
        eprintln!("the rollout failed; left as is (--rollback-on-failure=false)");
        return Ok(Outcome::Problem);
    }
    roll_back(&client, &previous, &changes.added).await?;
    eprintln!("the rollout failed; rolled back to the recorded release {}", previous.settings.version);
    Ok(Outcome::Problem)
}

/// Re-applies the recorded release and deletes what the failed release added.
async fn roll_back(client: &kube::Client, previous: &Record, added: &[crate::render::Manifest]) -> Result<(), Failure> {
    let mut objects = previous.objects.clone();
    objects.push(previous.to_manifest());
    cluster::apply_all(client, &objects, |_, _| {}).await?;
    for object in added {
        cluster::delete(client, object).await?;
    }
    Ok(())
}
