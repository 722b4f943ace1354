//! `kubectl causely completion <shell>`: the shell completion script, generated from the CLI.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionArgs};
use crate::exit::{Failure, Outcome};

pub fn run(args: CompletionArgs) -> Result<Outcome, Failure> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "kubectl-causely", &mut std::io::stdout());
    Ok(Outcome::Clean)
}
