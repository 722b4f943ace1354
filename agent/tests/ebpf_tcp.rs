//! Component test of the TCP eBPF programs in the running kernel (needs root): real loopback connections
//! must show up as Outbound and Inbound aggregates of this process's cgroup, and a refused connect as failed.

#![allow(clippy::unwrap_used)] // helpers of tests: a panic is the failure report

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use causely_agent::ebpf::{ConnectionCounters, TcpProbe};
use causely_model::Direction;

fn load() -> TcpProbe {
    TcpProbe::load()
        .unwrap_or_else(|e| panic!("cannot load the eBPF programs; this test must run as root (CI runs as root): {e}"))
}

/// The cgroup v2 id of this process: the inode of its cgroup2 directory, found from the `0::` line of
/// /proc/self/cgroup under either mount point (a hybrid host mounts cgroup2 at /sys/fs/cgroup/unified).
fn own_cgroup_id() -> u64 {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::")).expect("no cgroup2 line in /proc/self/cgroup");
    for root in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        let dir = format!("{root}{path}");
        // Only cgroup2 directories have cgroup.controllers; a cgroup1 hierarchy at /sys/fs/cgroup does not.
        if Path::new(&dir).join("cgroup.controllers").exists() {
            return std::fs::metadata(&dir).unwrap().ino();
        }
    }
    panic!("cannot find the cgroup2 directory of {path}");
}

/// Drains until `done` holds over everything read so far, or gives up after a few seconds: the last
/// transitions (closes) can land a moment after the syscalls return.
fn read_until(probe: &mut TcpProbe, done: impl Fn(&[ConnectionCounters]) -> bool) -> Vec<ConnectionCounters> {
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        all.extend(probe.read().unwrap());
        if done(&all) || Instant::now() > deadline {
            return all;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sum(
    all: &[ConnectionCounters],
    pick: impl Fn(&ConnectionCounters) -> bool,
    field: fn(&ConnectionCounters) -> u64,
) -> u64 {
    all.iter().filter(|c| pick(c)).map(field).sum()
}

// One test so the probe is loaded once and the two scenarios cannot see each other's ports mixed up.
#[test]
fn loopback_connections_and_a_refused_connect_are_counted_per_cgroup() {
    let mut probe = load();
    let cgroup = own_cgroup_id();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..5 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        }
    });
    for _ in 0..5 {
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        c.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
    }
    server.join().unwrap();

    let outbound = |c: &ConnectionCounters| {
        c.direction == Direction::Outbound && c.remote == SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    };
    let inbound = |c: &ConnectionCounters| {
        c.direction == Direction::Inbound && c.local == SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    };
    let all =
        read_until(&mut probe, |all| sum(all, outbound, |c| c.closed) >= 5 && sum(all, inbound, |c| c.closed) >= 5);
    let ours: Vec<_> = all.iter().filter(|c| outbound(c) || inbound(c)).collect();
    assert!(ours.iter().all(|c| c.cgroup_id == cgroup), "cgroup {cgroup} expected: {ours:#?}");
    assert!(sum(&all, outbound, |c| c.established) >= 5, "{ours:#?}");
    assert!(sum(&all, inbound, |c| c.established) >= 5, "{ours:#?}");
    assert!(sum(&all, outbound, |c| c.closed) >= 5, "{ours:#?}");
    assert!(sum(&all, outbound, |c| c.rtt_count) >= 1, "closes carry an RTT: {ours:#?}");
    assert_eq!(sum(&all, outbound, |c| c.failed), 0, "{ours:#?}");

    // A port nobody listens on: bind and drop a listener to get one.
    let closed_port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, closed_port)).is_err());
    let refused = |c: &ConnectionCounters| {
        c.direction == Direction::Outbound && c.remote == SocketAddr::from((Ipv4Addr::LOCALHOST, closed_port))
    };
    let all = read_until(&mut probe, |all| sum(all, refused, |c| c.failed) >= 1);
    let ours: Vec<_> = all.iter().filter(|c| refused(c)).collect();
    assert!(sum(&all, refused, |c| c.failed) >= 1, "{ours:#?}");
    assert!(ours.iter().all(|c| c.cgroup_id == cgroup && c.established == 0), "{ours:#?}");

    assert_eq!(probe.lost().unwrap(), 0);
}

#[test]
fn run_statistics_count_the_programs_invocations() {
    let mut probe = load();
    probe.enable_run_stats().unwrap();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    for _ in 0..20 {
        let _c = TcpStream::connect(addr).unwrap();
        let _s = listener.accept().unwrap();
    }
    let stats = probe.run_stats().unwrap();
    let set_state = stats.iter().find(|s| s.name == "tcp_set_state").unwrap();
    assert!(set_state.run_count >= 40, "{stats:?}");
    assert!(set_state.ns_per_run().is_some(), "{stats:?}");
    eprintln!("{stats:?} ns/run {:?}", set_state.ns_per_run());
}

/// Env var telling a re-executed copy of this test binary to act as the retransmit scenario.
const RETRANSMIT_HELPER: &str = "CAUSELY_TEST_RETRANSMIT_HELPER";
/// Fixed: the helper runs in its own network namespace, where nothing else uses it.
const RETRANSMIT_PORT: u16 = 40123;

/// Forces retransmits without netem: in a private network namespace, sends while `lo` is down for 1.5 s,
/// then brings it back so the data (and the connection) get through.
#[test]
#[ignore = "runs only as the helper of a_forced_retransmit_is_counted_through_the_socket"]
fn retransmit_helper() {
    if std::env::var_os(RETRANSMIT_HELPER).is_none() {
        return;
    }
    let lo = |state: &str| {
        let status = std::process::Command::new("ip").args(["link", "set", "lo", state]).status().unwrap();
        assert!(status.success(), "ip link set lo {state}");
    };
    lo("up");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, RETRANSMIT_PORT)).unwrap();
    let mut client = TcpStream::connect((Ipv4Addr::LOCALHOST, RETRANSMIT_PORT)).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    lo("down");
    client.write_all(b"lost").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    lo("up");
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"lost");
}

#[test]
fn a_forced_retransmit_is_counted_through_the_socket() {
    let mut probe = load();
    let cgroup = own_cgroup_id();
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("unshare")
        .arg("-n")
        .arg(&exe)
        .args(["--exact", "retransmit_helper", "--ignored", "--nocapture"])
        .env(RETRANSMIT_HELPER, "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "helper failed: {}", String::from_utf8_lossy(&output.stderr));

    let ours = |c: &ConnectionCounters| {
        c.direction == Direction::Outbound && c.remote == SocketAddr::from((Ipv4Addr::LOCALHOST, RETRANSMIT_PORT))
    };
    // Closes happen as the helper exits; retransmits are counted while it sleeps.
    let all = read_until(&mut probe, |all| sum(all, ours, |c| c.retransmits) >= 1 && sum(all, ours, |c| c.closed) >= 1);
    let seen: Vec<_> = all.iter().filter(|c| ours(c)).collect();
    assert!(sum(&all, ours, |c| c.retransmits) >= 1, "{seen:#?}");
    assert!(seen.iter().all(|c| c.cgroup_id == cgroup), "cgroup {cgroup} expected: {seen:#?}");
}
