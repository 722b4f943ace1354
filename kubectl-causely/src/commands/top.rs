//! `kubectl causely top`: checks its flags and the terminal, then hands over to the TUI in `top/`.

use crate::cli::TopArgs;
use crate::exit::{Failure, Outcome};
use crate::mediator_api::{MediatorApi, parse_mediator_url};

pub async fn run(args: TopArgs) -> Result<Outcome, Failure> {
    // A bad URL is a usage error wherever top runs, so it is told before the terminal check.
    if let Some(url) = &args.mediator.mediator_url {
        parse_mediator_url(url)?;
    }
    crate::top::require_terminal()?;
    let api = MediatorApi::from_flags(&args.mediator, &args.namespace.namespace, &args.cluster).await?;
    crate::top::run(api).await
}
