//! The I/O side of `causely-agent check`: reads the node's files and loads the agent's eBPF
//! programs through the same code the agent runs, in this process's posture.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{BTF_PATH, Btf, Inputs, NodeFiles, OwnCgroup, own_container};
use crate::cgroup::CgroupIdResolver;
use crate::collect::{CgroupLayout, Collector, CollectorConfig};
use crate::ebpf::{SchedProbe, TcpProbe};

/// Everything [`super::evaluate`] judges, read on this node with `host_root` where the host's /proc
/// and /sys/fs/cgroup are mounted.
pub fn gather(host_root: &Path) -> Inputs {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |r| r.trim().to_owned());
    let mut programs = TcpProbe::check();
    programs.extend(SchedProbe::check());
    let layout = CgroupLayout::detect(host_root).map_err(|e| e.to_string());
    let own = own_cgroup(host_root, layout.as_ref().ok());
    Inputs {
        host_root: host_root.to_path_buf(),
        kernel,
        btf: btf(),
        programs,
        layout,
        own,
        node: node_files(host_root),
    }
}

fn btf() -> Btf {
    // Opened, not only looked up: a mount or security module may show the file but refuse reading it.
    match std::fs::File::open(BTF_PATH).and_then(|file| file.metadata()) {
        Ok(meta) => Btf::Present { bytes: meta.len() },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Btf::Missing,
        Err(err) => Btf::Unreadable(err.to_string()),
    }
}

fn own_cgroup(host_root: &Path, layout: Option<&CgroupLayout>) -> OwnCgroup {
    // The host's /proc shows this process by its host pid; its cgroup file reads the same from either.
    let on_host = host_root.join("proc/self/cgroup");
    let source =
        if host_root != Path::new("/") && on_host.is_file() { on_host } else { PathBuf::from("/proc/self/cgroup") };
    let contents = std::fs::read_to_string(&source).map_err(|e| e.to_string());
    let mut own = OwnCgroup { source, contents, by_inode: None, counter_errors: None };
    let Some(layout) = layout else { return own };
    let text = own.contents.as_deref().unwrap_or_default();
    if own_container(text, None).is_none() {
        own.by_inode = cgroup2_path_by_inode(layout);
    }
    if let Some((path, pod)) = own_container(text, own.by_inode.as_deref()) {
        let config = CollectorConfig { host_root: host_root.to_path_buf(), node: String::new() };
        own.counter_errors = Some(match Collector::new(config) {
            Ok(mut collector) => collector.read_container(path, pod).errors.iter().map(ToString::to_string).collect(),
            Err(err) => vec![err.to_string()],
        });
    }
    own
}

/// In a cgroup namespace a process sees its own cgroup2 as the root of /sys/fs/cgroup, and
/// `/proc/self/cgroup` says only `0::/`; the directory's inode is the cgroup's id, which the host's
/// cgroup2 mount names, as it does for the ids eBPF reports.
fn cgroup2_path_by_inode(layout: &CgroupLayout) -> Option<String> {
    let own_root = Path::new("/sys/fs/cgroup");
    if !own_root.join("cgroup.controllers").is_file() {
        return None;
    }
    let id = std::fs::metadata(own_root).ok()?.ino();
    CgroupIdResolver::new(layout.cgroup2_mount()?).resolve(id, 0).map(str::to_owned)
}

fn node_files(host_root: &Path) -> NodeFiles {
    let config = CollectorConfig { host_root: host_root.to_path_buf(), node: String::new() };
    let reading = match Collector::new(config) {
        Ok(mut collector) => collector.read_node(),
        // The node files do not depend on cgroups, but the collector is built around both.
        Err(_) => return read_node_without_cgroups(host_root),
    };
    let stats = reading.stats;
    NodeFiles {
        cpu: stats.cpu.is_some(),
        memory: stats.memory.is_some(),
        pressure: [("cpu", stats.psi_cpu), ("memory", stats.psi_memory), ("io", stats.psi_io)]
            .into_iter()
            .filter_map(|(name, psi)| psi.map(|_| name.to_owned()))
            .collect(),
        errors: reading.errors.iter().map(ToString::to_string).collect(),
    }
}

/// The node files with the collector's parsers when no cgroup hierarchy was found (the layout check
/// reports that); PSI is then not looked at.
fn read_node_without_cgroups(host_root: &Path) -> NodeFiles {
    use crate::collect::parse;
    let proc = host_root.join("proc");
    let mut files = NodeFiles::default();
    let mut read = |name: &str, parse: &dyn Fn(&str) -> bool| {
        let file = proc.join(name);
        match std::fs::read_to_string(&file) {
            Ok(text) if parse(&text) => true,
            Ok(_) => {
                files.errors.push(format!("{}: cannot be parsed", file.display()));
                false
            }
            Err(err) => {
                files.errors.push(format!("{}: {err}", file.display()));
                false
            }
        }
    };
    let cpu = read("stat", &|t| parse::proc_stat(t).is_ok());
    let memory = read("meminfo", &|t| parse::meminfo(t).is_ok());
    files.cpu = cpu;
    files.memory = memory;
    files
}
