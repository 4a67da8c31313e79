//! `metrics`: what Prometheus metrics cost Resolve. One store of `n` credentials; each round
//! starts a server with metrics off, then one with `metrics.listen` set and a scraper reading
//! `/metrics` every second meanwhile, and measures health and Resolve on each. The audit log is
//! `buffered`, so the per-call cost of metrics is not hidden behind the audit fsync. Beside
//! that, the cost of recording one RPC (`Metrics::rpc`) is timed directly, alone and from two
//! threads at once, for a figure this machine's noise cannot hide.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::load::{Limits, Row};
use crate::server::{self, channels, preload, InProcess, TempDir};
use crate::sides::{ratio, Sides};

pub async fn run(
    n: usize,
    conc: usize,
    conns: usize,
    limits: Limits,
    rounds: usize,
) -> Result<(Vec<Row>, Vec<String>), String> {
    let dir = TempDir::new("metrics").map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    preload(&data, n).await?;
    let mut sides = Sides::new("metrics");
    let scrapes = Arc::new(AtomicUsize::new(0));
    let mut record = None;
    for round in 1..=rounds {
        eprintln!("  round {round}/{rounds}");
        for on in [false, true] {
            let mut config = server::config(&data);
            config.audit.durability = credvault::config::AuditDurability::Buffered;
            let addr = on.then(free_port).transpose()?;
            config.metrics_listen = addr;
            let srv = InProcess::start_with(config).await?;
            let chans = channels(srv.addr, conns).await?;
            let scraper = addr.map(|a| tokio::spawn(scrape_every_second(a, scrapes.clone())));
            sides.measure(&chans, conc, limits, n, on).await;
            if on && record.is_none() {
                record = Some(record_ns());
            }
            if let Some(s) = scraper {
                s.abort();
            }
            drop(srv);
        }
    }
    let rows = sides.rows(n, conc, "metrics off", "metrics on");
    let on_off = ratio(&rows[3], &rows[1]);
    let verdict = if on_off >= 0.97 { "meets" } else { "MISSES" };
    let mut notes = vec![
        format!(
            "Resolve with metrics on (scraped every second) / off: {on_off:.2}x ({verdict} >= 0.97x); \
             p99 {:.2} ms vs {:.2} ms; {} scrapes answered meanwhile",
            rows[3].p99,
            rows[1].p99,
            scrapes.load(Ordering::Relaxed)
        ),
        format!(
            "Resolve / health: {:.2}x with metrics off, {:.2}x with them on (same server each)",
            ratio(&rows[1], &rows[0]),
            ratio(&rows[3], &rows[2])
        ),
    ];
    if let Some(Some((alone, both))) = record {
        // The CPU a Resolve takes at the measured rate: 2 cores over its calls a second.
        let resolve_ns = 2e9 / rows[3].rps.max(1.0);
        notes.push(format!(
            "per call, recording one RPC (Metrics::rpc: a counter and a histogram): {alone:.0} ns \
             alone, {both:.0} ns from two threads at once; {:.2}% of the ~{:.0} us of CPU a Resolve \
             takes here",
            100.0 * both / resolve_ns,
            resolve_ns / 1000.0
        ));
    }
    Ok((rows, notes))
}

/// Nanoseconds per `Metrics::rpc` (what a served `/metrics` adds to every RPC), one thread
/// alone and then two at once on the same series (the families' lock shared between cores).
/// Needs a server serving metrics in this process; it counts 600,000 Resolves it never answered.
fn record_ns() -> Option<(f64, f64)> {
    let m = credvault::metrics::get()?;
    const CALLS: u32 = 200_000;
    let run = || {
        let started = Instant::now();
        for _ in 0..CALLS {
            let took = std::hint::black_box(Duration::from_micros(900));
            m.rpc(std::hint::black_box("Resolve"), "OK", took);
        }
        started.elapsed().as_nanos() as f64 / f64::from(CALLS)
    };
    let alone = run();
    let both = std::thread::scope(|s| {
        let other = s.spawn(run);
        let mine = run();
        (mine + other.join().unwrap_or(mine)) / 2.0
    });
    Some((alone, both))
}

fn free_port() -> Result<SocketAddr, String> {
    let port = crate::etcd::free_port().map_err(|e| e.to_string())?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// GET /metrics once a second, as Prometheus would, until aborted.
async fn scrape_every_second(addr: SocketAddr, answered: Arc<AtomicUsize>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else {
            continue;
        };
        let request = "GET /metrics HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n";
        if conn.write_all(request.as_bytes()).await.is_err() {
            continue;
        }
        let mut reply = Vec::new();
        if conn.read_to_end(&mut reply).await.is_ok() && reply.starts_with(b"HTTP/1.1 200") {
            answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}
