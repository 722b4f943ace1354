//! Compiles the C eBPF programs in `ebpf/` (CO-RE) into OUT_DIR, against a `vmlinux.h` generated there from
//! the build machine's kernel BTF, so the agent can embed the objects.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const INSTALL: &str = "install clang, bpftool, libbpf-dev (scripts/deps installs them)";
const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

fn main() -> ExitCode {
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // One line, shown by cargo as the build error.
            println!("cargo::error={message}");
            ExitCode::FAILURE
        }
    }
}

fn build() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    // Canonical, so the paths clang records (BTF line info, DWARF) start with the workspace root the prefix map
    // below replaces.
    let workspace = manifest_dir.join("..").canonicalize().map_err(|e| format!("cannot resolve the workspace: {e}"))?;
    let src_dir = workspace.join("ebpf");
    println!("cargo::rerun-if-changed={}", src_dir.display());
    println!("cargo::rerun-if-changed={KERNEL_BTF}");

    let mut sources = Vec::new();
    for entry in fs::read_dir(&src_dir).map_err(|e| format!("cannot list {}: {e}", src_dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.to_string_lossy().ends_with(".bpf.c") {
            println!("cargo::rerun-if-changed={}", path.display());
            sources.push(path);
        }
    }
    sources.sort();

    let vmlinux = out_dir.join("vmlinux.h");
    generate_vmlinux_h(&vmlinux)?;
    for source in &sources {
        compile(source, &workspace, &src_dir, &out_dir)?;
    }
    Ok(())
}

/// vmlinux.h is generated, never committed: it is tens of MiB and specific to a kernel; CO-RE relocations make
/// the compiled object portable anyway.
fn generate_vmlinux_h(target: &Path) -> Result<(), String> {
    if !Path::new(KERNEL_BTF).exists() {
        return Err(format!(
            "{KERNEL_BTF} is missing (kernel built without BTF?); the eBPF build needs it and {INSTALL}"
        ));
    }
    let output = Command::new("bpftool")
        .args(["btf", "dump", "file", KERNEL_BTF, "format", "c"])
        .output()
        .map_err(|e| format!("bpftool could not be run ({e}): {INSTALL}"))?;
    if !output.status.success() {
        return Err(format!(
            "bpftool btf dump failed: {}",
            String::from_utf8_lossy(&output.stderr).lines().next().unwrap_or_default()
        ));
    }
    // Rewrite only when the content changes, so clang's inputs keep their timestamps.
    if fs::read(target).ok().as_deref() != Some(output.stdout.as_slice()) {
        fs::write(target, &output.stdout).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    }
    Ok(())
}

/// bpf_tracing.h picks the register layout of BPF_PROG arguments by architecture.
fn target_arch() -> &'static str {
    match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "arm64",
        Ok("riscv64") => "riscv",
        Ok("s390x") => "s390",
        _ => "x86",
    }
}

fn compile(source: &Path, workspace: &Path, src_dir: &Path, out_dir: &Path) -> Result<(), String> {
    let name = source.file_name().map(|n| n.to_string_lossy().replace(".bpf.c", ".bpf.o")).unwrap_or_default();
    let object = out_dir.join(name);
    let output = Command::new("clang")
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
        // The object is embedded in the agent: paths of this checkout in its debug info would make two
        // clones at different places build different binaries (and images). OUT_DIR (vmlinux.h) on its own,
        // for a target directory outside the workspace.
        .arg(format!("-ffile-prefix-map={}=/causely/out", out_dir.display()))
        .arg(format!("-ffile-prefix-map={}=/causely", workspace.display()))
        .arg(format!("-D__TARGET_ARCH_{}", target_arch()))
        .arg("-I")
        .arg(out_dir)
        .arg("-I")
        .arg(src_dir)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(&object)
        .output()
        .map_err(|e| format!("clang could not be run ({e}): {INSTALL}"))?;
    if !output.status.success() {
        // The full diagnostics go to the build log; the error line names the file.
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        let headers_missing = String::from_utf8_lossy(&output.stderr).contains("bpf/bpf_helpers.h");
        return Err(if headers_missing {
            format!("libbpf headers not found compiling {}: {INSTALL}", source.display())
        } else {
            format!("clang failed on {} (diagnostics above)", source.display())
        });
    }
    Ok(())
}
