//! Entry point of `causely-executor`: parse the command line, run, map errors to exit code 2.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    causely_runtime::exit(causely_executor::run(causely_executor::Cli::parse()))
}
