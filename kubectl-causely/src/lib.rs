//! The `kubectl causely` plugin: command-line surface, cluster access and the commands themselves.

pub mod audit;
pub mod baseline;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod egress;
pub mod exit;
pub mod health;
pub mod kubeconfig;
pub mod mediator_api;
pub mod node_check;
pub mod options;
pub mod out;
pub mod plan;
pub mod record;
pub mod render;
pub mod rollout;
pub mod top;

use exit::{Failure, Outcome};

/// Runs one parsed command line to completion.
pub fn run(cli: cli::Cli) -> Result<Outcome, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::CouldNotRun(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(commands::dispatch(cli))
}
