//! The node agent. So far only its command line; the eBPF and cgroup collectors, detectors and shippers live here as they are built.

pub mod cgroup;
pub mod collect;
pub mod detect;

use clap::Parser;

pub mod ebpf;
pub mod pipeline;
pub mod ship;

/// Causely node agent: collects node and container metrics with eBPF and cgroups, keeps raw samples in VictoriaMetrics, and reports topology and symptoms to the mediator.
#[derive(Debug, Parser)]
#[command(name = "causely-agent", version, about, long_about = None)]
pub struct Cli {}

/// Runs the component. This build carries only the command-line surface and the shared model;
/// it refuses to start rather than pretend to collect.
pub fn run(_cli: Cli) -> anyhow::Result<()> {
    anyhow::bail!("this build of causely-agent cannot collect yet; it only answers --help and --version")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn running_without_the_component_built_is_an_error_not_a_silent_success() {
        let err = run(Cli {}).unwrap_err();
        assert!(err.to_string().contains("cannot"), "{err}");
    }
}
