//! Kernel cost of the agent's eBPF programs: loads them, turns on the kernel's BPF run statistics
//! (`kernel.bpf_stats_enabled`), makes CONNECTIONS loopback connections (default 20,000), and
//! prints nanoseconds per program run. Then times the user-space side: one map read and decode of
//! the counters. Needs root. `cargo bench -p causely-agent --bench ebpf`.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use causely_agent::ebpf::{SchedProbe, TcpProbe};

fn main() -> anyhow::Result<()> {
    let connections: usize = std::env::var("CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let mut tcp = TcpProbe::load()?;
    let mut sched = SchedProbe::load()?;
    tcp.enable_run_stats()?;
    sched.enable_run_stats()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            drop(stream);
        }
    });
    let started = Instant::now();
    for _ in 0..connections {
        let mut stream = TcpStream::connect(addr)?;
        let _ = stream.write_all(b"x");
    }
    let _ = server.join();
    let elapsed = started.elapsed();
    println!(
        "{connections} loopback connections in {:.2} s ({:.0}/s)",
        elapsed.as_secs_f64(),
        connections as f64 / elapsed.as_secs_f64()
    );
    for stats in tcp.run_stats()?.into_iter().chain(sched.run_stats()?) {
        let per_run = stats.ns_per_run().map_or("-".to_owned(), |ns| format!("{ns:.1}"));
        println!("{:<24} runs {:>9}  ns/run {per_run}", stats.name, stats.run_count);
    }
    let read = Instant::now();
    let counters = tcp.read()?;
    println!(
        "user space: one read and decode of {} aggregates in {:?}; lost {}",
        counters.len(),
        read.elapsed(),
        tcp.lost()?
    );
    Ok(())
}
