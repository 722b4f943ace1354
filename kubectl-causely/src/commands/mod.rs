//! One module per subcommand; each takes its parsed arguments and returns an exit outcome.

pub mod audit;
pub mod check;
pub mod completion;
pub mod egress;
pub mod install;
pub mod rbac_diff;
pub mod remediate;
pub mod status;
pub mod top;
pub mod uninstall;
pub mod upgrade;
pub mod version;

use crate::cli::{Cli, Command};
use crate::exit::{Failure, Outcome};

pub async fn dispatch(cli: Cli) -> Result<Outcome, Failure> {
    match cli.command {
        Command::Install(args) => install::run(args).await,
        Command::Upgrade(args) => upgrade::run(args).await,
        Command::Uninstall(args) => uninstall::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::AuditPermissions(args) => audit::run(args).await,
        Command::RbacDiff(args) => rbac_diff::run(args).await,
        Command::Remediate(args) => remediate::run(args).await,
        Command::Top(args) => top::run(args).await,
        Command::Egress(args) => egress::run(args).await,
        Command::Completion(args) => completion::run(args),
        Command::Version(args) => version::run(args).await,
    }
}
