//! Entry point of `causely-agent`: parse the command line, run or check, map the outcome to an exit code.

use std::process::ExitCode;

use causely_agent::{Action, Cli, check};
use clap::Parser;

fn main() -> ExitCode {
    match Cli::parse().action() {
        Action::Run(args) => causely_runtime::exit(causely_agent::run(*args)),
        Action::Check(args) => check::exit(check::run(&args)),
    }
}
