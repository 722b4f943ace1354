//! One module per subcommand; each takes its parsed arguments and returns an exit outcome.

pub mod install;
pub mod version;

use crate::cli::{Cli, Command};
use crate::exit::{Failure, Outcome};

pub async fn dispatch(cli: Cli) -> Result<Outcome, Failure> {
    match cli.command {
        Command::Install(args) => install::run(args).await,
        Command::Version(args) => version::run(args).await,
    }
}
