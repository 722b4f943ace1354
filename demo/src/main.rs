//! Entry point of `causely-demo`: parse the command line, run, map errors to exit code 2.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    causely_runtime::exit(causely_demo::run(causely_demo::Cli::parse()))
}
