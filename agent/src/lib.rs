//! The node agent: reads cgroups, /proc and (with eBPF) the kernel's TCP state machine; keeps raw
//! samples in VictoriaMetrics only; reports connections and symptoms to the mediator.
//!
//! Pure core: `cgroup` (attribution), `collect` (parsing and rates), `detect`, `pipeline`, the
//! judgements of `check`. I/O adapters: `ebpf` (aya), `ship` (VictoriaMetrics and the mediator),
//! `serve`, `run`, `check::gather`.

pub mod cgroup;
pub mod check;
pub mod collect;
pub mod config;
pub mod detect;
pub mod ebpf;
pub mod kubelet;
pub mod pipeline;
pub mod run;
pub mod serve;
pub mod ship;

pub use config::{Action, Cli};
pub use run::run;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_run_keeps_its_flags_and_check_needs_none_of_them() {
        let urls = ["--mediator-url", "http://m:8080", "--victoria-metrics-url", "http://vm:8428"];
        let run = Cli::try_parse_from([["causely-agent", "--node-name", "n1"].as_slice(), &urls].concat())
            .expect("a run's flags")
            .action();
        let Action::Run(run) = run else { panic!("not a run: {run:?}") };
        assert_eq!((run.node_name.as_str(), run.interval), ("n1", std::time::Duration::from_secs(10)));

        let check = Cli::try_parse_from(["causely-agent", "check", "--host-root", "/host"]).expect("check").action();
        let Action::Check(check) = check else { panic!("not a check: {check:?}") };
        assert_eq!(check.host_root, std::path::PathBuf::from("/host"));
        assert_eq!(check.termination_log, std::path::PathBuf::from("/dev/termination-log"));

        // A run's flag does not go with check, and check takes none of them.
        assert!(Cli::try_parse_from(["causely-agent", "--node-name", "n1", "check"]).is_err());
        assert!(Cli::try_parse_from(["causely-agent", "check", "--node-name", "n1"]).is_err());
    }
}
