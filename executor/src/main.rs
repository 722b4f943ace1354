//! Entry point of `causely-executor`: parse the command line, run, map errors to exit code 2.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = causely_executor::Cli::parse();
    match causely_executor::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", format!("{err:#}").split_whitespace().collect::<Vec<_>>().join(" "));
            ExitCode::from(2)
        }
    }
}
