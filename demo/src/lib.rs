//! The demo workload the demo and the end-to-end tests run as real pods: `serve` answers HTTP,
//! `call` calls it through its Service, `burn` keeps one CPU busy. Each is a symptom source the
//! agent and the mediator should see (a `calls` edge, high CPU utilization).
//!
//! Pure core: `http` (request heads, responses, URLs). I/O: `serve`, `call`, `burn`, wired in `run`.

pub mod burn;
pub mod call;
pub mod config;
pub mod http;
pub mod serve;

pub use config::{Cli, Command};

/// Runs the chosen subcommand until SIGTERM (or, for `call` and `serve`, until it cannot go on).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    causely_runtime::init_logs();
    // One thread is plenty for a demo pod; `burn` spins on a thread of its own.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match cli.command {
        Command::Serve { listen } => runtime.block_on(serve::run(listen)),
        Command::Call(options) => runtime.block_on(call::run(options)),
        Command::Burn { threads } => runtime.block_on(burn::run(threads)),
    }
}
