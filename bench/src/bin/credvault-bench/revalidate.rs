//! `revalidate`: what periodic re-validation costs the hot path. One store of `n` credentials;
//! each round starts a server with re-validation off, then one with it running flat out (a
//! period so short that every credential is always due, at 10x the default request rate, against
//! a loopback stand-in for Twilio), and measures health and Resolve on each, side by side. Also
//! the per-call cost of the base URLs Resolve returns since Regions (`Hosts::for_location`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::load::{Limits, Row};
use crate::server::{self, channels, preload, InProcess, TempDir};
use crate::sides::{ratio, Sides};

/// Every credential due all the time: re-validation never rests.
const EVERY: Duration = Duration::from_secs(2);
/// 10x `revalidate.requests_per_second`'s default.
const RATE: u32 = 50;

pub async fn run(
    n: usize,
    conc: usize,
    conns: usize,
    limits: Limits,
    rounds: usize,
) -> Result<(Vec<Row>, Vec<String>), String> {
    let dir = TempDir::new("revalidate").map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    preload(&data, n).await?;
    let twilio = StandIn::start().await?;
    let mut sides = Sides::new("re-validation");
    let mut asked = Vec::new();
    for round in 1..=rounds {
        eprintln!("  round {round}/{rounds}");
        for on in [false, true] {
            let mut config = server::config(&data);
            if on {
                config.twilio.api_base = twilio.base.clone();
                config.twilio.messaging_base = twilio.base.clone();
                config.revalidate.every = Some(EVERY);
                config.revalidate.requests_per_second = RATE;
            }
            let srv = InProcess::start_with(config).await?;
            let chans = channels(srv.addr, conns).await?;
            if on {
                // Past the first tick: the walk is checking when the measurements start.
                tokio::time::sleep(EVERY).await;
            }
            let (before, started) = (twilio.requests(), Instant::now());
            sides.measure(&chans, conc, limits, n, on).await;
            if on {
                let per_second =
                    (twilio.requests() - before) as f64 / started.elapsed().as_secs_f64();
                asked.push(per_second);
            }
            drop(srv);
        }
    }
    let rows = sides.rows(n, conc, "no revalidation", "revalidating");
    let twilio_rate = asked.iter().sum::<f64>() / asked.len().max(1) as f64;
    let notes = vec![
        format!(
            "Resolve with re-validation running (every {}s, {RATE} requests/s) / without: {:.2}x throughput, \
             p99 {:.2} ms vs {:.2} ms; the Twilio stand-in was asked {twilio_rate:.0} requests/s meanwhile",
            EVERY.as_secs(),
            ratio(&rows[3], &rows[1]),
            rows[3].p99,
            rows[1].p99
        ),
        format!(
            "Resolve / health: {:.2}x with re-validation off, {:.2}x with it on (same server each)",
            ratio(&rows[1], &rows[0]),
            ratio(&rows[3], &rows[2])
        ),
        format!(
            "per call, one task: Resolve's base URLs (Hosts::for_location, ie1 with its default edge) {:.2} us",
            for_location_ns() / 1000.0
        ),
    ];
    Ok((rows, notes))
}

/// Nanoseconds per `Hosts::for_location` (what Regions added to every Resolve answer).
fn for_location_ns() -> f64 {
    use credvault::domain::{Location, Region};
    let cfg = credvault::Config::with_data_dir("unused").twilio;
    let hosts = credvault::twilio::Hosts::new(&cfg).expect("default hosts");
    let loc = Location {
        region: Region::Ie1,
        edge: None,
    };
    const CALLS: u32 = 200_000;
    let started = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..CALLS {
        let urls = hosts.for_location(std::hint::black_box(loc));
        bytes += urls.api.len() + urls.messaging.len();
    }
    std::hint::black_box(bytes);
    started.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

/// A loopback stand-in for Twilio that accepts every credential the bench stores: an active
/// account, and a Messaging Service of that account (the bench's SIDs share their hex digits).
/// HTTP/1.1 with keep-alive, GETs only (re-validation sends nothing else).
struct StandIn {
    base: String,
    served: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    async fn start() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let base = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(answer(conn, counter.clone()));
            }
        });
        Ok(Self { base, served, task })
    }

    fn requests(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

async fn answer(mut conn: tokio::net::TcpStream, served: Arc<AtomicU64>) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let path = head.split_whitespace().nth(1).unwrap_or("/");
        let body = match path.strip_prefix("/v1/Services/MG") {
            Some(hex) => format!(r#"{{"sid":"MG{hex}","account_sid":"AC{hex}"}}"#),
            None => r#"{"status":"active"}"#.to_owned(),
        };
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        served.fetch_add(1, Ordering::Relaxed);
        if conn.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
