//! Bounded soak: a mixed Add/replace/Resolve/List/Delete workload against credvault on loopback,
//! reporting errors and the server's resident memory over time. Stops by itself at `--requests`
//! or `--minutes`, whichever comes first.
//!
//! ```text
//! cargo run --release -p credvault-bench --bin credvault-soak -- --minutes 5 --requests 5000000
//! ```
//! Without `--addr` it starts its own server in-process (`credvault::serve` on 127.0.0.1:0 over
//! a temporary data dir, removed afterwards) and reads VmRSS from /proc/self/status; with
//! `--addr` it drives that server (loopback only) and cannot see its memory.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use credvault::proto::v1 as pb;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

struct Args {
    requests: u64,
    minutes: f64,
    concurrency: usize,
    labels: u64,
    sample: Duration,
    addr: Option<SocketAddr>,
}

/// The caller of the in-process server (every scope, every owner).
const SOAK_TOKEN: &str = "cvt_soak-caller-token-with-every-scope-00000";

/// `CREDVAULT_TOKEN_FILE`'s token when set (for `--addr` servers), else [`SOAK_TOKEN`].
fn bearer() -> credvault::client::Bearer {
    let token = std::env::var_os("CREDVAULT_TOKEN_FILE")
        .and_then(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_else(|| SOAK_TOKEN.to_owned());
    credvault::client::Bearer::new(&token).expect("a valid token")
}

const USAGE: &str = "usage: credvault-soak [--requests N] [--minutes M] [--concurrency C] \
[--labels L] [--sample-secs S] [--addr 127.0.0.1:PORT]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        requests: 1_000_000,
        minutes: 2.0,
        concurrency: 32,
        labels: 500,
        sample: Duration::from_secs(10),
        addr: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let bad = |e: &dyn std::fmt::Display| format!("bad value for {flag}: {e}");
        match flag.as_str() {
            "--requests" => a.requests = value()?.parse().map_err(|e| bad(&e))?,
            "--minutes" => a.minutes = value()?.parse().map_err(|e| bad(&e))?,
            "--concurrency" => a.concurrency = value()?.parse().map_err(|e| bad(&e))?,
            "--labels" => a.labels = value()?.parse().map_err(|e| bad(&e))?,
            "--sample-secs" => {
                a.sample = Duration::from_secs_f64(value()?.parse().map_err(|e| bad(&e))?)
            }
            "--addr" => a.addr = Some(value()?.parse().map_err(|e| bad(&e))?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if let Some(addr) = a.addr {
        // Soak traffic stays on this machine.
        if !addr.ip().is_loopback() {
            return Err(format!("--addr must be a loopback address, not {addr}"));
        }
    }
    if !(a.minutes > 0.0 && a.minutes <= 120.0) || a.requests == 0 {
        return Err("--minutes must be in (0, 120] and --requests > 0".into());
    }
    a.concurrency = a.concurrency.clamp(1, 1024);
    a.labels = a.labels.max(1);
    Ok(a)
}

#[derive(Default)]
struct Counters {
    issued: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut own_server = None;
    let addr = match args.addr {
        Some(addr) => addr,
        None => match start_server().await {
            Ok((addr, server)) => {
                own_server = Some(server);
                addr
            }
            Err(e) => {
                eprintln!("cannot start the in-process server: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let channel = match Endpoint::from_shared(format!("http://{addr}"))
        .expect("loopback uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot connect to {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };

    let deadline = Instant::now() + Duration::from_secs_f64(args.minutes * 60.0);
    let counters = Arc::new(Counters::default());
    println!(
        "soak: {addr}, {} workers, {} labels, up to {} requests or {} min; server RSS {}",
        args.concurrency,
        args.labels,
        args.requests,
        args.minutes,
        if own_server.is_some() {
            "in-process"
        } else {
            "not visible (--addr)"
        }
    );
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (channel, counters) = (channel.clone(), counters.clone());
            let (requests, labels) = (args.requests, args.labels);
            tokio::spawn(worker(
                w as u64, channel, counters, requests, labels, deadline,
            ))
        })
        .collect();

    let started = Instant::now();
    let mut samples: Vec<(f64, u64, Option<u64>)> = Vec::new();
    let mut last_done = 0;
    let mut ticker = tokio::time::interval(args.sample);
    ticker.tick().await;
    loop {
        let all_done = workers.iter().all(|w| w.is_finished());
        if !all_done {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        let t = started.elapsed().as_secs_f64();
        let done = counters.done.load(Ordering::Relaxed);
        let rss = own_server.as_ref().and_then(|_| rss_kib());
        println!(
            "t={t:7.1}s requests={done:9} rate={:8.0}/s errors={} rss={}",
            (done - last_done) as f64 / args.sample.as_secs_f64(),
            counters.errors.load(Ordering::Relaxed),
            rss.map_or("n/a".into(), |r| format!("{:.1} MiB", r as f64 / 1024.0)),
        );
        samples.push((t, done, rss));
        last_done = done;
        if all_done || Instant::now() >= deadline {
            break;
        }
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = counters.done.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    println!(
        "soak done: {done} requests in {elapsed:.1} s ({:.0}/s), {errors} errors",
        done as f64 / elapsed
    );
    let rss: Vec<u64> = samples.iter().filter_map(|s| s.2).collect();
    if let (Some(first), Some(last), Some(max)) =
        (rss.get(rss.len() / 4), rss.last(), rss.iter().max())
    {
        println!(
            "rss: after warm-up {:.1} MiB, end {:.1} MiB, max {:.1} MiB ({:+.1} MiB after warm-up)",
            *first as f64 / 1024.0,
            *last as f64 / 1024.0,
            *max as f64 / 1024.0,
            (*last as f64 - *first as f64) / 1024.0
        );
    }
    drop(channel);
    if let Some(server) = own_server {
        server.stop().await;
    }
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One worker: a mix of the five calls a campaign service makes, until a bound is hit.
async fn worker(
    id: u64,
    channel: Channel,
    counters: Arc<Counters>,
    requests: u64,
    labels: u64,
    deadline: Instant,
) {
    let mut client = credvault::client::vault_client(channel, bearer());
    let mut rng = (id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while counters.issued.fetch_add(1, Ordering::Relaxed) < requests && Instant::now() < deadline {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let owner = format!("soak-{}", rng % 4);
        let label = format!("label-{}", (rng >> 8) % labels);
        let n = rng >> 20;
        let outcome = match (rng >> 40) % 100 {
            0..=39 => client
                .resolve(pb::ResolveRequest {
                    owner,
                    label,
                    require_valid: false,
                })
                .await
                .map(drop),
            40..=64 => client.add(add(owner, label, n, true)).await.map(drop),
            65..=74 => client.add(add(owner, label, n, false)).await.map(drop),
            75..=84 => client
                .delete(pb::DeleteRequest { owner, label })
                .await
                .map(drop),
            _ => client
                .list(pb::ListRequest {
                    owner,
                    page_size: 50,
                    page_token: String::new(),
                })
                .await
                .map(drop),
        };
        counters.done.fetch_add(1, Ordering::Relaxed);
        if let Err(status) = outcome {
            // Absent labels and taken labels are answers, not errors.
            let expected = matches!(status.code(), Code::NotFound | Code::AlreadyExists);
            // Count every error; print the first few.
            if !expected && counters.errors.fetch_add(1, Ordering::Relaxed) < 10 {
                eprintln!("error: {:?}: {}", status.code(), status.message());
            }
        }
    }
}

fn add(owner: String, label: String, n: u64, replace: bool) -> pb::AddRequest {
    use pb::twilio_credential::{Auth, Sender};
    pb::AddRequest {
        owner,
        label,
        credential: Some(pb::TwilioCredential {
            account_sid: format!("AC{n:032x}"),
            auth: Some(Auth::AuthToken(pb::AuthToken {
                auth_token: format!("{:032x}", n ^ 0x5eed),
            })),
            sender: Some(Sender::MessagingServiceSid(format!("MG{n:032x}"))),
            ..Default::default()
        }),
        replace,
        ..Default::default()
    }
}

/// The in-process server and what it takes to stop it and clean up.
struct OwnServer {
    dir: PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), credvault::ServeError>>,
}

impl OwnServer {
    async fn stop(self) {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("server stopped with an error: {e}"),
            Err(e) => eprintln!("server task failed: {e}"),
        }
        // Log-structured storage: deletes and replaces leave garbage until sled reclaims it.
        println!(
            "data dir size at the end: {:.1} MiB",
            dir_bytes(&self.dir) as f64 / (1024.0 * 1024.0)
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn start_server() -> Result<(SocketAddr, OwnServer), String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("credvault-soak-{}-{nanos}", std::process::id()));
    let mut config = credvault::Config::with_data_dir(dir.join("data"));
    config.callers = vec![credvault::auth::Caller::admin(
        "soak",
        credvault::auth::token::TokenHash::of(SOAK_TOKEN),
    )];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(credvault::serve(listener, config, async {
        let _ = stopped.await;
    }));
    Ok((addr, OwnServer { dir, stop, task }))
}

/// This process's resident set size in KiB (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
