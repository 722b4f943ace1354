//! The components' container images as `scripts/images` builds them: reproducible, holding nothing but the
//! binary, the CA bundle and the users, running as the pod specs expect, labelled with their commit, and
//! runnable from their own root filesystem alone, names resolved by the static binary's own libc. And the
//! Dockerfiles, which cannot be built here (no container engine, no docker.io), kept equal to those images
//! so that people who build with Docker get what the release ships.
//!
//! The first test to run builds the release binaries and the images (`scripts/images`; a no-op build after
//! `make images`). Root: binaries run under chroot and a DNS server binds port 53, as CI runs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, ensure};
use causely_tests::dns::DnsServer;
use causely_tests::images::{self, COMPONENTS, Layout};
use causely_tests::workspace::repo_root;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn reference(component: &str) -> String {
    format!("causely-{component}:{VERSION}")
}

fn layout() -> anyhow::Result<Layout> {
    Ok(Layout::open(&images::built()?.join("oci")))
}

/// The commit's time as the images write it (RFC 3339, UTC, seconds).
fn rfc3339(epoch: i64) -> anyhow::Result<String> {
    let out = Command::new("date").args(["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%dT%H:%M:%SZ"]).output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
    assert_eq!(euid, Some("0"), "this test runs binaries under chroot and binds port 53: run it as root (CI does)");
}

#[test]
fn each_image_holds_only_its_binary_the_ca_bundle_and_the_users() -> anyhow::Result<()> {
    let layout = layout()?;
    let (_, epoch) = images::head_commit()?;
    let ca_bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt")?;
    for c in COMPONENTS {
        let entries = layout.entries(&reference(c))?;
        let listed: Vec<String> = entries
            .iter()
            .map(|e| {
                let slash = if e.is_dir && !e.path.ends_with('/') { "/" } else { "" };
                format!("{}{slash} {:o} {}:{}", e.path, e.mode, e.uid, e.gid)
            })
            .collect();
        let expected = [
            "etc/ 755 0:0".to_owned(),
            "etc/group 644 0:0".to_owned(),
            "etc/passwd 644 0:0".to_owned(),
            "etc/ssl/ 755 0:0".to_owned(),
            "etc/ssl/certs/ 755 0:0".to_owned(),
            "etc/ssl/certs/ca-certificates.crt 644 0:0".to_owned(),
            "usr/ 755 0:0".to_owned(),
            "usr/local/ 755 0:0".to_owned(),
            "usr/local/bin/ 755 0:0".to_owned(),
            format!("usr/local/bin/causely-{c} 755 0:0"),
        ];
        assert_eq!(listed, expected, "causely-{c}");
        assert!(entries.iter().all(|e| e.mtime == epoch as u64), "causely-{c}: every mtime is the commit's time");
        let passwd = String::from_utf8(layout.file(&reference(c), "etc/passwd")?)?;
        assert!(passwd.lines().any(|l| l.starts_with("nonroot:x:65532:65532:")), "{passwd}");
        assert!(passwd.lines().any(|l| l.starts_with("root:x:0:0:")), "{passwd}");
        let group = String::from_utf8(layout.file(&reference(c), "etc/group")?)?;
        assert!(group.lines().any(|l| l.starts_with("nonroot:x:65532:")), "{group}");
        assert!(
            layout.file(&reference(c), "etc/ssl/certs/ca-certificates.crt")? == ca_bundle,
            "the system's CA bundle"
        );
    }
    Ok(())
}

#[test]
fn only_the_agent_runs_as_root_and_nothing_carries_a_wall_clock_time() -> anyhow::Result<()> {
    let layout = layout()?;
    let (_, epoch) = images::head_commit()?;
    let created = rfc3339(epoch)?;
    for c in COMPONENTS {
        let config = layout.config(&reference(c))?;
        let user = config["config"]["User"].as_str().unwrap_or_default();
        match c {
            // CAP_BPF and CAP_PERFMON only count for uid 0 in a container.
            "agent" => assert_eq!(user, "0:0"),
            _ => assert_eq!(user, "65532:65532", "causely-{c} runs as the installer's non-root uid"),
        }
        assert_eq!(config["config"]["Entrypoint"], serde_json::json!([format!("/usr/local/bin/causely-{c}")]));
        assert!(config["config"]["Cmd"].is_null(), "causely-{c}: the pod spec gives the arguments");
        assert_eq!((config["architecture"].as_str(), config["os"].as_str()), (Some("amd64"), Some("linux")));
        assert_eq!(config["created"], created.as_str(), "causely-{c}");
        let history = config["history"].as_array().context("history")?;
        assert_eq!(history.len(), 2, "one entry per layer");
        assert!(history.iter().all(|h| h["created"] == created.as_str()), "causely-{c}: {history:?}");
    }
    Ok(())
}

#[test]
fn the_labels_name_the_source_commit_version_and_license() -> anyhow::Result<()> {
    let layout = layout()?;
    let (revision, epoch) = images::head_commit()?;
    for c in COMPONENTS {
        let config = layout.config(&reference(c))?;
        let labels: BTreeMap<String, String> = serde_json::from_value(config["config"]["Labels"].clone())?;
        let expected = BTreeMap::from([
            ("org.opencontainers.image.created".to_owned(), rfc3339(epoch)?),
            ("org.opencontainers.image.licenses".to_owned(), "Apache-2.0".to_owned()),
            ("org.opencontainers.image.revision".to_owned(), revision.clone()),
            (
                "org.opencontainers.image.source".to_owned(),
                "https://github.com/kubectl-causely/kubectl-causely".to_owned(),
            ),
            ("org.opencontainers.image.title".to_owned(), format!("causely-{c}")),
            ("org.opencontainers.image.version".to_owned(), VERSION.to_owned()),
        ]);
        assert_eq!(labels, expected, "causely-{c}");
    }
    Ok(())
}

#[test]
fn digests_json_names_each_manifest_and_the_images_share_their_base_layer() -> anyhow::Result<()> {
    let out = images::built()?;
    let layout = layout()?;
    let digests = images::digests(out)?;
    assert_eq!(digests.keys().map(String::as_str).collect::<Vec<_>>(), ["agent", "demo", "executor", "mediator"]);
    let mut bases = Vec::new();
    for c in COMPONENTS {
        // manifest_digest reads index.json; blob() checks the manifest's bytes hash to that digest.
        let digest = layout.manifest_digest(&reference(c))?;
        layout.blob(&digest)?;
        assert_eq!(digests[c], digest, "causely-{c}");
        bases.push(layout.layers(&reference(c))?[0].clone());
    }
    assert!(bases.iter().all(|b| *b == bases[0]), "users and CA bundle: one blob, pulled once per node");
    Ok(())
}

#[test]
fn the_same_binaries_assemble_into_the_same_digests_whatever_their_file_times_and_modes() -> anyhow::Result<()> {
    let built = images::digests(images::built()?)?;
    let release = images::release_binaries()?;
    let scratch = tempfile::tempdir()?;
    let mut assembled = Vec::new();
    for (i, (mtime, mode)) in [(1_000_000_000u64, 0o755), (1_800_000_000, 0o700)].into_iter().enumerate() {
        let bins = scratch.path().join(format!("bins-{i}"));
        std::fs::create_dir(&bins)?;
        for c in COMPONENTS {
            let copy = bins.join(format!("causely-{c}"));
            std::fs::copy(release.join(format!("causely-{c}")), &copy)?;
            std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            std::fs::File::options().write(true).open(&copy)?.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))?;
        }
        // Different times on the files the script writes, too: it runs a second later.
        std::thread::sleep(Duration::from_millis(1100));
        let out = scratch.path().join(format!("out-{i}"));
        images::run_script(&["assemble", "--binaries", &bins.to_string_lossy(), "--out", &out.to_string_lossy()])?;
        assembled.push(images::digests(&out)?);
    }
    assert_eq!(assembled[0], assembled[1], "two assemblies of the same binaries");
    assert_eq!(assembled[0], built, "and the build's own");
    Ok(())
}

#[test]
fn each_binary_runs_from_its_image_alone() -> anyhow::Result<()> {
    require_root();
    let layout = layout()?;
    let scratch = tempfile::tempdir()?;
    for c in COMPONENTS {
        let root = scratch.path().join(c);
        layout.unpack(&reference(c), &root)?;
        let out =
            Command::new("chroot").arg(&root).arg(format!("/usr/local/bin/causely-{c}")).arg("--version").output()?;
        assert!(out.status.success(), "causely-{c} in its image: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8(out.stdout)?, format!("causely-{c} {VERSION}\n"));
    }
    Ok(())
}

/// Runs `causely-demo call URL` from the image's root until it reports; the report line.
fn call_from(root: &Path, url: &str) -> anyhow::Result<String> {
    let mut child = Command::new("chroot")
        .arg(root)
        .args(["/usr/local/bin/causely-demo", "call", url, "--interval", "100ms", "--report-every", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let report = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(" ok, ") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    report.with_context(|| format!("no report from causely-demo call {url} within 20 s: {seen:?}"))
}

#[test]
fn a_static_binary_resolves_names_from_etc_hosts_and_from_dns_in_an_otherwise_empty_root() -> anyhow::Result<()> {
    require_root();
    let layout = layout()?;
    let scratch = tempfile::tempdir()?;
    let root = scratch.path().join("demo");
    layout.unpack(&reference("demo"), &root)?;

    // A server the client calls, answering every connection with 200.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let dns = DnsServer::start(&[("dns-web.test", Ipv4Addr::LOCALHOST)])?;
    // What the kubelet mounts into a container: the pod's /etc/hosts and resolv.conf, nothing else (no
    // nsswitch.conf, no libnss_*.so: static glibc has the files and dns services built in).
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n127.0.0.1 hosts-web.test\n")?;
    std::fs::write(root.join("etc/resolv.conf"), format!("nameserver {}\noptions timeout:1\n", dns.address))?;

    let line = call_from(&root, &format!("http://hosts-web.test:{port}/"))?;
    ensure!(!line.contains(": 0 ok") && line.contains(", 0 failed"), "{line}");
    assert!(!dns.queries().contains(&"hosts-web.test".to_owned()), "/etc/hosts answered, not DNS");

    let line = call_from(&root, &format!("http://dns-web.test:{port}/"))?;
    ensure!(!line.contains(": 0 ok") && line.contains(", 0 failed"), "{line}");
    assert!(dns.queries().contains(&"dns-web.test".to_owned()), "resolved through the DNS server");
    Ok(())
}

#[test]
fn the_dockerfiles_final_stages_hold_and_run_what_the_built_images_do() -> anyhow::Result<()> {
    let layout = layout()?;
    for c in COMPONENTS {
        let path = repo_root().join(c).join("Dockerfile");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let stage = images::final_stage(&text)?;
        let name = format!("{c}/Dockerfile");
        assert_eq!(stage.from, "scratch", "{name}: nothing under the binary");

        let mut copied = stage.copies.clone();
        copied.sort();
        let files: Vec<String> =
            layout.entries(&reference(c))?.into_iter().filter(|e| !e.is_dir).map(|e| format!("/{}", e.path)).collect();
        assert_eq!(copied, files, "{name}: COPY destinations against the image's files");

        let config = layout.config(&reference(c))?;
        assert_eq!(stage.user.as_deref(), config["config"]["User"].as_str(), "{name}: USER");
        let entrypoint: Vec<String> = serde_json::from_value(config["config"]["Entrypoint"].clone())?;
        assert_eq!(stage.entrypoint.as_ref(), Some(&entrypoint), "{name}: ENTRYPOINT");

        let labels: BTreeMap<String, String> = serde_json::from_value(config["config"]["Labels"].clone())?;
        assert_eq!(stage.labels.keys().collect::<Vec<_>>(), labels.keys().collect::<Vec<_>>(), "{name}: LABEL keys");
        for (key, value) in &stage.labels {
            match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                // Build arguments (version, revision, created) are given at build time.
                Some(arg) => assert!(stage.args.contains_key(arg), "{name}: LABEL {key} uses ARG {arg}, not declared"),
                None => assert_eq!(Some(value), labels.get(key), "{name}: LABEL {key}"),
            }
        }
        assert_eq!(stage.args.get("VERSION").map(String::as_str), Some(VERSION), "{name}: ARG VERSION's default");
    }
    Ok(())
}
