//! Entry point of `kubectl-causely`: parse the command line, run it, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kubectl_causely::cli::Cli::parse();
    kubectl_causely::exit::finish(kubectl_causely::run(cli))
}
