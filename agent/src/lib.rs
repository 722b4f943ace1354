//! The node agent: reads cgroups, /proc and (with eBPF) the kernel's TCP state machine; keeps raw
//! samples in VictoriaMetrics only; reports connections and symptoms to the mediator.
//!
//! Pure core: `cgroup` (attribution), `collect` (parsing and rates), `detect`, `pipeline`. I/O
//! adapters: `ebpf` (aya), `ship` (VictoriaMetrics and the mediator), `serve`, `run`.

pub mod cgroup;
pub mod collect;
pub mod config;
pub mod detect;
pub mod ebpf;
pub mod kubelet;
pub mod pipeline;
pub mod run;
pub mod serve;
pub mod ship;

pub use config::Cli;
pub use run::run;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
