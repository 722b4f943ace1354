//! Render benchmark: how long `install --dry-run` spends building the release's typed objects
//! and printing them as YAML. Run with `make bench` (or `cargo bench -p kubectl-causely`).

use std::time::{Duration, Instant};

use kubectl_causely::baseline::Baseline;
use kubectl_causely::render::settings::{ExecutorRbac, Settings};
use kubectl_causely::render::{self, Format};

fn measure(name: &str, iterations: usize, mut f: impl FnMut() -> usize) {
    let mut samples: Vec<Duration> = Vec::with_capacity(iterations);
    let mut bytes = 0;
    for _ in 0..iterations {
        let start = Instant::now();
        bytes = std::hint::black_box(f());
        samples.push(start.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    println!(
        "{name:<40} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}  ({iterations} runs, output {bytes})",
        pct(0.5),
        pct(0.99),
        samples[samples.len() - 1]
    );
}

fn main() {
    let baseline = Baseline::seed().expect("the compiled-in baseline parses");
    let default = Settings::defaults();
    let executor = Settings { executor: Some(ExecutorRbac::Scoped), ..Settings::defaults() };
    measure("parse baseline", 2_000, || Baseline::seed().map(|b| b.components.len()).unwrap_or(0));
    measure("render default release", 2_000, || render::render(&default, &baseline).map(|m| m.len()).unwrap_or(0));
    measure("render + print YAML (default)", 500, || {
        let manifests = render::render(&default, &baseline).unwrap_or_default();
        render::print(&manifests, Format::Yaml).map(|s| s.len()).unwrap_or(0)
    });
    measure("render + print YAML (with executor)", 500, || {
        let manifests = render::render(&executor, &baseline).unwrap_or_default();
        render::print(&manifests, Format::Yaml).map(|s| s.len()).unwrap_or(0)
    });
}
