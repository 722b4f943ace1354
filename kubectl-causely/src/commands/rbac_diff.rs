//! `kubectl causely rbac-diff [FROM] [TO]`: what RBAC each component gains and loses between two
//! of installed, seed, release or a file (default: installed to release, what an upgrade would
//! change). Exit 1 when they differ, as diff(1) does.

use crate::audit::diff;
use crate::audit::grants::Catalogue;
use crate::cli::{OutputFormat, RbacDiffArgs};
use crate::commands::audit::{connect, expected};
use crate::exit::{Failure, Outcome};

pub async fn run(args: RbacDiffArgs) -> Result<Outcome, Failure> {
    let namespace = &args.namespace.namespace;
    let needs_cluster = args.from == "installed" || args.to == "installed";
    let (client, catalogue) = if needs_cluster {
        let (client, catalogue) = connect(&args.cluster).await?;
        (Some(client), catalogue)
    } else {
        (None, Catalogue::default())
    };
    let from = expected(&args.from, namespace, client.as_ref(), &catalogue).await?;
    let to = expected(&args.to, namespace, client.as_ref(), &catalogue).await?;
    let result = diff::diff(&from, &to);
    match args.output {
        OutputFormat::Text => crate::out::print(&diff::text(&result)),
        OutputFormat::Json => crate::out::print(&(serde_json::to_string_pretty(&result).unwrap_or_default() + "\n")),
    }
    Ok(if result.components.is_empty() { Outcome::Clean } else { Outcome::Problem })
}
