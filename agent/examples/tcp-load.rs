//! A local TCP load generator for the agent's footprint benchmark (scripts/bench-agent): opens
//! RATE loopback connections per second (default 10,000) for SECONDS (default 60), each sending
//! one byte and closing, and prints the rate it reached.
//! `cargo run --release -p causely-agent --example tcp-load -- RATE SECONDS`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CLIENT_THREADS: u64 = 2;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10_000);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(60);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut byte = [0u8; 1];
            let _ = stream.read(&mut byte);
        }
    });
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENT_THREADS)
        .map(|_| {
            let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
            std::thread::spawn(move || {
                let per_thread = rate / CLIENT_THREADS;
                let begun = Instant::now();
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Paced: never ahead of the schedule, catching up when behind.
                    let due = (begun.elapsed().as_secs_f64() * per_thread as f64) as u64;
                    if sent >= due {
                        std::thread::sleep(Duration::from_micros(200));
                        continue;
                    }
                    sent += 1;
                    match TcpStream::connect(addr) {
                        Ok(mut stream) => {
                            let _ = stream.write_all(b"x");
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = done.load(Ordering::Relaxed);
    println!(
        "{done} connections in {elapsed:.1} s: {:.0}/s (target {rate}/s), {} failed",
        done as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}
