//! The closed-loop load driver and its statistics.
//!
//! `concurrency` callers each send one request, wait for the answer, and send the next, until the
//! request budget or the time budget runs out. Latencies are kept exactly (one u32 of
//! microseconds per request, sorted at the end): runs are bounded, so memory is too, and no
//! histogram crate is needed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type BoxFut<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// How long and how much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub requests: u64,
    pub duration: Duration,
    /// Unrecorded traffic first, so connections, caches and the allocator are warm.
    pub warmup: Duration,
}

/// One measurement (or several merged).
#[derive(Debug, Default, Clone)]
pub struct Sample {
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Successful completions in each second of the measurement.
    pub per_second: Vec<u64>,
    sorted: bool,
}

/// Runs `op` from `concurrency` callers over `clients` (caller i uses client i % len).
/// `op` gets its caller's client and a fresh pseudo-random number.
pub async fn drive<C, F>(clients: &[C], concurrency: usize, limits: Limits, op: F) -> Sample
where
    C: Clone + Send + 'static,
    F: for<'a> Fn(&'a mut C, u64) -> BoxFut<'a> + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let budget = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + limits.warmup;
    let deadline = measure_from + limits.duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let mut client = clients[worker % clients.len()].clone();
        let (op, budget) = (op.clone(), budget.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = SplitMix(0x9e37_79b9_7f4a_7c15 ^ (worker as u64) << 32 ^ nanos());
            let mut s = Sample::default();
            loop {
                let sent = Instant::now();
                if sent >= deadline {
                    break;
                }
                let measured = sent >= measure_from;
                if measured && budget.fetch_add(1, Ordering::Relaxed) >= limits.requests {
                    break;
                }
                let result = op(&mut client, rng.next()).await;
                let done = Instant::now();
                if !measured {
                    continue;
                }
                match result {
                    Ok(()) => {
                        let us = (done - sent).as_micros().min(u32::MAX as u128) as u32;
                        s.latencies_us.push(us);
                        let sec = (done - measure_from).as_secs() as usize;
                        if s.per_second.len() <= sec {
                            s.per_second.resize(sec + 1, 0);
                        }
                        s.per_second[sec] += 1;
                    }
                    Err(e) => {
                        s.errors += 1;
                        s.first_error.get_or_insert(e);
                    }
                }
            }
            s
        }));
    }
    let mut total = Sample::default();
    for task in tasks {
        match task.await {
            Ok(s) => total.absorb(s),
            Err(e) => {
                total.errors += 1;
                total
                    .first_error
                    .get_or_insert(format!("caller panicked: {e}"));
            }
        }
    }
    total.elapsed = Instant::now().saturating_duration_since(measure_from);
    total
}

impl Sample {
    /// Adds another measurement: latencies pooled, time summed, per-second series appended.
    pub fn absorb(&mut self, other: Sample) {
        self.latencies_us.extend_from_slice(&other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        if self.per_second.len() < other.per_second.len() {
            self.per_second.resize(other.per_second.len(), 0);
        }
        for (a, b) in self.per_second.iter_mut().zip(&other.per_second) {
            *a += b;
        }
        self.sorted = false;
    }

    /// Merges rounds measured one after another: latencies pooled, time summed, and the
    /// complete seconds of each round strung together.
    pub fn merge_rounds(rounds: Vec<Sample>) -> Sample {
        let mut total = Sample::default();
        for mut r in rounds {
            let seconds = r.full_seconds().to_vec();
            total.per_second.extend_from_slice(&seconds);
            total.latencies_us.append(&mut r.latencies_us);
            total.errors += r.errors;
            total.first_error = total.first_error.or(r.first_error);
            total.elapsed += r.elapsed;
        }
        total
    }

    pub fn ok(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    pub fn rps(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..=1) in milliseconds, nearest rank.
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        if !self.sorted {
            self.latencies_us.sort_unstable();
            self.sorted = true;
        }
        let n = self.latencies_us.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.latencies_us[rank - 1]) / 1000.0
    }

    /// Completed seconds only: the last, partial second would understate progress.
    pub fn full_seconds(&self) -> &[u64] {
        let full = self.elapsed.as_secs() as usize;
        &self.per_second[..full.min(self.per_second.len())]
    }
}

/// A row of the results table.
pub struct Row {
    pub name: String,
    pub concurrency: usize,
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Successful completions in each complete second.
    pub per_second: Vec<u64>,
}

impl Row {
    pub fn new(name: impl Into<String>, concurrency: usize, mut s: Sample) -> Self {
        Row {
            per_second: s.full_seconds().to_vec(),
            name: name.into(),
            concurrency,
            rps: s.rps(),
            p50: s.quantile_ms(0.50),
            p99: s.quantile_ms(0.99),
            p999: s.quantile_ms(0.999),
            ok: s.ok(),
            errors: s.errors,
            first_error: s.first_error.take(),
        }
    }

    pub fn header() -> String {
        format!(
            "| {:<34} | {:>5} | {:>9} | {:>8} | {:>8} | {:>8} | {:>8} | {:>6} |\n|{}|",
            "scenario",
            "conc",
            "RPS",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "ok",
            "errors",
            "-".repeat(34 + 5 + 9 + 8 * 4 + 6 + 8 * 3 + 2)
        )
    }

    pub fn line(&self) -> String {
        let mut s = format!(
            "| {:<34} | {:>5} | {:>9.0} | {:>8.3} | {:>8.3} | {:>8.3} | {:>8} | {:>6} |",
            self.name,
            self.concurrency,
            self.rps,
            self.p50,
            self.p99,
            self.p999,
            self.ok,
            self.errors
        );
        if let Some(e) = &self.first_error {
            s.push_str(&format!("\n    first error: {e}"));
        }
        s
    }
}

/// A small fast PRNG for picking labels (no need for cryptographic randomness here).
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
}
