//! The mediator. So far only its command line; the cluster index, topology join, symptoms, intake and egress live here as they are built.

use clap::Parser;

pub mod egress;
pub mod index;
pub mod symptoms;
pub mod topology;

/// Causely mediator: watches the cluster, joins the agents' observations into a service topology, detects cluster symptoms, and sends only topology and symptoms upstream.
#[derive(Debug, Parser)]
#[command(name = "causely-mediator", version, about, long_about = None)]
pub struct Cli {}

/// Runs the component. This build carries only the command-line surface and the shared model;
/// it refuses to start rather than pretend to mediate.
pub fn run(_cli: Cli) -> anyhow::Result<()> {
    anyhow::bail!("this build of causely-mediator cannot mediate yet; it only answers --help and --version")
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
