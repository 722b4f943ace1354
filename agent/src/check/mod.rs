//! `causely-agent check`: what this node gives the agent, judged from plain facts.
//!
//! [`gather`] is the I/O side: it reads the files and loads the eBPF programs, in whatever posture
//! the process runs with (in a pod: the DaemonSet's own). [`evaluate`] turns those facts into the
//! report, and [`encode`] fits the report into a termination message; both are pure.

pub mod gather;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use causely_model::node_check::TERMINATION_MESSAGE_LIMIT;
use causely_model::{NodeCheck, NodeCheckReport, NodeCheckStatus};

use crate::cgroup::{PodContainer, parse_cgroup_path, path_from_proc_cgroup};
use crate::collect::CgroupLayout;
use crate::config::CheckArgs;
use crate::ebpf::ProgramCheck;

pub use gather::gather;

/// Where the kernel publishes its BTF; the programs are CO-RE and relocated against it.
pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// Everything `check` looks at, as the I/O side found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// Where the host's /proc and /sys/fs/cgroup are mounted in this process (`/host` in the
    /// DaemonSet), so that paths can be named as the host spells them.
    pub host_root: PathBuf,
    /// The kernel release.
    pub kernel: String,
    pub btf: Btf,
    /// Every program of the agent, from `TcpProbe::check` and `SchedProbe::check`.
    pub programs: Vec<ProgramCheck>,
    /// The cgroup hierarchy under the host root, or why none was found.
    pub layout: Result<CgroupLayout, String>,
    pub own: OwnCgroup,
    pub node: NodeFiles,
}

/// The kernel's BTF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Btf {
    Present { bytes: u64 },
    Missing,
    Unreadable(String),
}

/// The agent's own cgroups, which it must be able to attribute as it attributes every container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCgroup {
    /// The file read: `<host root>/proc/self/cgroup`, or `/proc/self/cgroup`.
    pub source: PathBuf,
    /// Its contents, or why it could not be read.
    pub contents: Result<String, String>,
    /// The cgroup2 path of the process's own cgroup found by its inode under the host's cgroup2
    /// mount, for when a cgroup namespace shows the process only `0::/`.
    pub by_inode: Option<String>,
    /// When the container was found: the files of its cgroup the collector could not read (empty
    /// when it read them all). `None` when it was not found.
    pub counter_errors: Option<Vec<String>>,
}

/// The node files the collectors read under the host's /proc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFiles {
    /// `stat` was read and parsed.
    pub cpu: bool,
    /// `meminfo` was read and parsed.
    pub memory: bool,
    /// The resources whose pressure (PSI) file was read: `cpu`, `memory`, `io`.
    pub pressure: Vec<String>,
    /// Every file that could not be read or parsed, with why.
    pub errors: Vec<String>,
}

/// The agent's container found in its own cgroups: the path (relative to the hierarchy's mount)
/// and what it attributes to. From `/proc/self/cgroup` as every process is attributed, else from
/// the path the inode of its cgroup2 root resolved to.
pub fn own_container(contents: &str, by_inode: Option<&str>) -> Option<(String, PodContainer)> {
    [path_from_proc_cgroup(contents), by_inode]
        .into_iter()
        .flatten()
        .find_map(|path| parse_cgroup_path(path).filter(|p| p.container_id.is_some()).map(|p| (path.to_owned(), p)))
}

/// The cgroup2 (`0::`) line's path of a `/proc/<pid>/cgroup`.
fn cgroup2_path(contents: &str) -> Option<&str> {
    contents.lines().find_map(|line| line.strip_prefix("0::"))
}

/// `path` as the host names it: without the host root it is mounted under.
fn on_host(host_root: &Path, path: &Path) -> String {
    match path.strip_prefix(host_root) {
        Ok(rest) if host_root != Path::new("/") => format!("/{}", rest.display()),
        _ => path.display().to_string(),
    }
}

fn ok(id: &str, description: String) -> NodeCheck {
    NodeCheck { id: id.to_owned(), status: NodeCheckStatus::Ok, description, hint: None }
}

fn warning(id: &str, description: String, hint: impl Into<String>) -> NodeCheck {
    NodeCheck { id: id.to_owned(), status: NodeCheckStatus::Warning, description, hint: Some(hint.into()) }
}

fn error(id: &str, description: String, hint: impl Into<String>) -> NodeCheck {
    NodeCheck { id: id.to_owned(), status: NodeCheckStatus::Error, description, hint: Some(hint.into()) }
}

/// The report of one run: one check per finding, in the order the agent needs them.
pub fn evaluate(inputs: &Inputs) -> NodeCheckReport {
    let mut checks = vec![btf_check(&inputs.btf)];
    checks.extend(inputs.programs.iter().map(|p| program_check(p, &inputs.btf)));
    checks.push(layout_check(&inputs.host_root, &inputs.layout));
    checks.extend(own_cgroup_checks(&inputs.host_root, &inputs.layout, &inputs.own));
    checks.extend(node_checks(&inputs.host_root, &inputs.node));
    NodeCheckReport { agent_version: env!("CARGO_PKG_VERSION").to_owned(), kernel: inputs.kernel.clone(), checks }
}

fn btf_check(btf: &Btf) -> NodeCheck {
    match btf {
        Btf::Present { bytes } => ok("btf", format!("kernel BTF is present ({BTF_PATH}, {} KiB)", bytes / 1024)),
        Btf::Missing => error(
            "btf",
            format!("kernel BTF is missing: {BTF_PATH} does not exist"),
            "the agent's eBPF programs are CO-RE: they need a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels from 5.4 on)",
        ),
        Btf::Unreadable(why) => error(
            "btf",
            format!("kernel BTF cannot be read: {BTF_PATH}: {why}"),
            "the agent's pod mounts the host's /sys/kernel/btf read-only; check that mount and the node's security module",
        ),
    }
}

fn program_check(program: &ProgramCheck, btf: &Btf) -> NodeCheck {
    let id = format!("ebpf/{}", program.program);
    let Some(err) = &program.error else {
        return ok(&id, format!("eBPF program {} loads and attaches (tp_btf/{})", program.program, program.tracepoint));
    };
    let hint = if err.contains("(os error 1)") || err.contains("Operation not permitted") {
        "the kernel refused the agent's privileges: it needs CAP_BPF and CAP_PERFMON (kernel 5.8+) and a seccomp profile that allows bpf(2) and perf_event_open(2); --agent-mode=privileged gives it all"
    } else if !matches!(btf, Btf::Present { .. }) {
        "without kernel BTF no CO-RE program can be relocated (see the btf check)"
    } else {
        "the kernel's loader or verifier refused the program: report it with the kernel release and this message"
    };
    error(
        &id,
        format!(
            "eBPF program {} does not load or attach (tp_btf/{}): {}",
            program.program,
            program.tracepoint,
            kernel_error(err)
        ),
        hint,
    )
}

fn layout_check(host_root: &Path, layout: &Result<CgroupLayout, String>) -> NodeCheck {
    match layout {
        Ok(CgroupLayout::V2 { mount }) => {
            ok("cgroup-layout", format!("cgroup v2: the unified hierarchy at {}", on_host(host_root, mount)))
        }
        Ok(CgroupLayout::V1 { memory, unified: Some(unified), .. }) => ok(
            "cgroup-layout",
            format!(
                "cgroup hybrid: v1 controllers (memory at {}), cgroup2 at {}",
                on_host(host_root, memory),
                on_host(host_root, unified)
            ),
        ),
        Ok(CgroupLayout::V1 { memory, unified: None, .. }) => warning(
            "cgroup-layout",
            format!("cgroup v1 (memory at {}) without a cgroup2 hierarchy", on_host(host_root, memory)),
            "eBPF events carry cgroup2 ids, so connections and run-queue latency cannot be attributed to pods on this node; CPU and memory still are",
        ),
        Err(why) => error(
            "cgroup-layout",
            format!("no cgroup hierarchy found: {why}"),
            format!(
                "the agent reads the host's /sys/fs/cgroup at {}/sys/fs/cgroup (--host-root); check the pod's host mounts",
                host_root.display().to_string().trim_end_matches('/')
            ),
        ),
    }
}

fn own_cgroup_checks(host_root: &Path, layout: &Result<CgroupLayout, String>, own: &OwnCgroup) -> Vec<NodeCheck> {
    let contents = match &own.contents {
        Ok(contents) => contents,
        Err(why) => {
            return vec![error(
                "cgroup-self",
                format!("cannot read {}: {why}", own.source.display()),
                "the agent attributes containers by their cgroup paths; it needs the host's /proc",
            )];
        }
    };
    let Some((path, pod)) = own_container(contents, own.by_inode.as_deref()) else {
        let seen = path_from_proc_cgroup(contents).unwrap_or("none");
        return vec![error(
            "cgroup-self",
            format!(
                "cannot map its own container: {} names no kubelet cgroup (its path: {seen})",
                own.source.display()
            ),
            "the agent attributes containers by the kubelet's cgroup names (cgroupfs or systemd driver; containerd, CRI-O or docker ids); run the check in the agent's pod",
        )];
    };
    let id = pod.container_id.as_deref().unwrap_or_default();
    let mut out = vec![ok(
        "cgroup-self",
        format!(
            "maps its own container: pod {}, container {} ({} QoS, cgroup {path})",
            pod.pod_uid,
            short(id),
            pod.qos
        ),
    )];
    match &own.counter_errors {
        Some(errors) if errors.is_empty() => out.push(ok(
            "cgroup-counters",
            "reads its own container's CPU, throttling, memory and OOM counters".to_owned(),
        )),
        Some(errors) => out.push(error(
            "cgroup-counters",
            format!("cannot read its own container's counters: {}", errors.join("; ")),
            "the agent reads every container's cgroup files under the host's /sys/fs/cgroup; check that mount",
        )),
        None => {}
    }
    // Without a cgroup2 hierarchy the layout check has said it already.
    let Some(mount) = layout.as_ref().ok().and_then(CgroupLayout::cgroup2_mount) else { return out };
    let unified = cgroup2_path(contents).filter(|p| parse_cgroup_path(p).is_some()).or(own.by_inode.as_deref());
    out.push(match unified.and_then(parse_cgroup_path) {
        Some(found) if found == pod => {
            ok("cgroup-ebpf", "eBPF events can be attributed: its container has a kubelet-named cgroup2 path".to_owned())
        }
        _ => warning(
            "cgroup-ebpf",
            format!(
                "eBPF events cannot be attributed to pods: its container has no kubelet-named path in the cgroup2 hierarchy at {}",
                on_host(host_root, mount)
            ),
            "eBPF events carry cgroup2 ids; on a hybrid host the runtime must place containers in the unified hierarchy too (runc does)",
        ),
    });
    out
}

fn node_checks(host_root: &Path, node: &NodeFiles) -> Vec<NodeCheck> {
    let proc = on_host(host_root, &host_root.join("proc"));
    let read = if node.cpu && node.memory {
        ok("proc", format!("reads the node's CPU and memory ({proc}/stat, {proc}/meminfo)"))
    } else {
        error(
            "proc",
            format!("cannot read the node's CPU and memory: {}", node.errors.join("; ")),
            format!(
                "the agent reads the host's /proc at {}/proc (--host-root); check the pod's host mounts",
                host_root.display().to_string().trim_end_matches('/')
            ),
        )
    };
    let pressure = if node.pressure.is_empty() {
        warning(
            "pressure",
            format!("no pressure (PSI) files under {proc}/pressure"),
            "node pressure symptoms are off: the kernel needs CONFIG_PSI and must not be booted with psi=0",
        )
    } else {
        ok("pressure", format!("reads the node's pressure (PSI): {}", node.pressure.join(", ")))
    };
    vec![read, pressure]
}

/// The first 12 characters of a container id, as runtimes print it.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A loader error in one line: its own words, and of the verifier's log only the last lines, where
/// the verifier says why it stopped (the rest is the instruction trace).
pub fn kernel_error(text: &str) -> String {
    const KEEP: usize = 3;
    let Some((head, log)) = text.split_once("Verifier output:") else {
        return causely_runtime::one_line(text);
    };
    let lines: Vec<&str> = log.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(KEEP)..];
    let head = causely_runtime::one_line(head);
    let head = head.trim_end_matches('.');
    if tail.is_empty() { head.to_owned() } else { format!("{head}; verifier: {}", tail.join(" | ")) }
}

/// `text` cut to at most `max` characters, marked with an ellipsis where it was cut.
fn shorten(text: &mut String, max: usize) {
    if text.chars().count() > max {
        *text = text.chars().take(max.saturating_sub(1)).collect::<String>() + "…";
    }
}

/// The report as one JSON document of at most `limit` bytes: descriptions and hints are shortened
/// until it fits, and only if even that is not enough are the least severe checks left out (and
/// counted), so that what fails is always in the message.
pub fn encode(report: &NodeCheckReport, limit: usize) -> String {
    let to_json = |r: &NodeCheckReport| serde_json::to_string(r).unwrap_or_default();
    let mut fitted = report.clone();
    for max in [usize::MAX, 600, 300, 160] {
        for check in &mut fitted.checks {
            shorten(&mut check.description, max);
            if let Some(hint) = check.hint.as_mut() {
                shorten(hint, max);
            }
        }
        let text = to_json(&fitted);
        if text.len() <= limit {
            return text;
        }
    }
    let severity = |s: NodeCheckStatus| match s {
        NodeCheckStatus::Error => 0,
        NodeCheckStatus::Warning => 1,
        NodeCheckStatus::Ok => 2,
    };
    fitted.checks.sort_by_key(|c| severity(c.status));
    let total = fitted.checks.len();
    while !fitted.checks.is_empty() {
        fitted.checks.pop();
        let mut attempt = fitted.clone();
        attempt.checks.push(warning(
            "truncated",
            format!("{} more checks did not fit the termination message", total - fitted.checks.len()),
            "run causely-agent check on the node for the whole report",
        ));
        let text = to_json(&attempt);
        if text.len() <= limit {
            return text;
        }
    }
    to_json(&fitted)
}

/// Why `check` could not report at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot write the report to stdout: {0}")]
    Stdout(#[source] std::io::Error),
}

/// Runs every check on this node and writes the report to stdout and, when it exists, the
/// termination log. Returns whether everything the agent needs passed.
pub fn run(args: &CheckArgs) -> Result<bool, CheckError> {
    let report = evaluate(&gather(&args.host_root));
    let text = encode(&report, TERMINATION_MESSAGE_LIMIT);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(format!("{text}\n").as_bytes()).and_then(|()| stdout.flush()).map_err(CheckError::Stdout)?;
    // Only an existing file: the kubelet creates it in a pod, and on a host /dev is no place for a new one.
    if args.termination_log.is_file() {
        let written = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&args.termination_log)
            .and_then(|mut file| file.write_all(text.as_bytes()));
        if let Err(err) = written {
            eprintln!("warning: cannot write the report to {}: {err}", args.termination_log.display());
        }
    }
    Ok(report.passed())
}

/// The exit code of a check: 0 everything needed passed, 1 something needed failed, 2 no report.
pub fn exit(result: Result<bool, CheckError>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {}", causely_runtime::one_line(&err.to_string()));
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests;
