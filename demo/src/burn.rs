//! `burn`: keeps CPUs busy, one thread each, so the agent's high-CPU detector has something to see.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Spins `threads` threads until SIGTERM.
pub async fn run(threads: u16) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for i in 0..threads {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new().name(format!("burn-{i}")).spawn(move || spin(&stop))?;
    }
    tracing::info!(threads, "burning");
    causely_runtime::shutdown().await;
    stop.store(true, Ordering::Relaxed);
    Ok(())
}

/// Busy work until `stop` is set; returns how many rounds it did (so the work cannot be optimised away).
pub fn spin(stop: &AtomicBool) -> u64 {
    let mut x = 1u64;
    let mut rounds = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..100_000 {
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407));
        }
        rounds += 1;
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burner_works_until_it_is_stopped() {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || spin(&stop)
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        assert!(thread.join().unwrap() > 0);
    }
}
