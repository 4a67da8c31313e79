//! credvault-bench: a loopback load generator for credvault (issue 9).
//!
//! Starts its own server in-process on 127.0.0.1:0 over a scratch dir (or targets `--addr`, which
//! must be loopback), drives a closed loop of callers for a bounded number of requests and
//! seconds, and prints RPS, p50, p99, p99.9 and errors. `all` runs every scenario side by side,
//! interleaved round by round, and prints the ratios the issue sets as targets.
//!
//! `cargo run --release -p credvault-bench -- all` (the etcd rows need `etcd` on PATH).
#![forbid(unsafe_code)]

#[path = "credvault-bench/args.rs"]
mod args;
#[path = "credvault-bench/callers.rs"]
mod callers;
#[path = "credvault-bench/etcd.rs"]
mod etcd;
#[path = "credvault-bench/jobs.rs"]
mod jobs;
#[path = "credvault-bench/load.rs"]
mod load;
#[path = "credvault-bench/metrics.rs"]
mod metrics;
#[path = "credvault-bench/on_etcd.rs"]
mod on_etcd;
#[path = "credvault-bench/report.rs"]
mod report;
#[path = "credvault-bench/revalidate.rs"]
mod revalidate;
#[path = "credvault-bench/rewrap.rs"]
mod rewrap;
#[path = "credvault-bench/server.rs"]
mod server;
#[path = "credvault-bench/sides.rs"]
mod sides;
#[path = "credvault-bench/startup.rs"]
mod startup;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use args::{Args, USAGE};
use etcd::Etcd;
use load::Limits;
use report::Report;
use server::{channels, preload, preload_remote, InProcess, TempDir};

/// mimalloc instead of glibc malloc (~9% of server CPU under load; BENCHMARKS.md). `no_thp`:
/// with transparent huge pages mimalloc doubled RSS and took 10x longer to reach SERVING.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some("__serve") {
        return serve_child();
    }
    let args = match Args::parse(argv) {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}\n");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-client")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the client runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(report) => {
            print!("{}", report.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A store of `n` credentials, ready to serve.
struct Store {
    n: usize,
    dir: TempDir,
    record_bytes: usize,
}

impl Store {
    async fn prepare(n: usize) -> Result<Store, String> {
        let dir = TempDir::new(&format!("store{n}")).map_err(|e| e.to_string())?;
        let record_bytes = preload(&dir.path().join("data"), n).await?;
        Ok(Store {
            n,
            dir,
            record_bytes,
        })
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }
}

/// Where the load goes: a server of ours (kept alive by the guard) or the `--addr` one.
/// Fields drop in order: the server stops before its scratch dir is removed.
struct Target {
    addr: SocketAddr,
    _server: Option<InProcess>,
    _dir: Option<TempDir>,
}

impl Target {
    /// Our server over `store` (or over a fresh empty dir). With `--addr`: that server, after
    /// an idempotent preload of `n` credentials.
    async fn new(args: &Args, store: Option<&Store>, n: usize) -> Result<Target, String> {
        if let Some(addr) = args.addr {
            if n > 0 {
                preload_remote(addr, n).await?;
            }
            return Ok(Target {
                addr,
                _server: None,
                _dir: None,
            });
        }
        let (data, dir) = match store {
            Some(s) => (s.data(), None),
            None => {
                let dir = TempDir::new("fresh").map_err(|e| e.to_string())?;
                (dir.path().join("data"), Some(dir))
            }
        };
        let server = InProcess::start(&data).await?;
        Ok(Target {
            addr: server.addr,
            _server: Some(server),
            _dir: dir,
        })
    }
}

/// `n` for a row name: "1k", "100k", or the number itself.
pub(crate) fn short(n: usize) -> String {
    if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

async fn run(args: Args) -> Result<Report, String> {
    let limits = Limits {
        requests: args.requests,
        duration: args.seconds,
        warmup: (args.seconds / 5).min(Duration::from_millis(500)),
    };
    let conc = args.concurrency_or(32);
    let conns = args.connections;
    let mut report = Report::new(&args, conc);
    let scenario = args.scenario.clone();
    let reads = matches!(scenario.as_str(), "health" | "resolve" | "list" | "all");
    let writes = matches!(scenario.as_str(), "add" | "add-replace-storm" | "all");
    let known = reads
        || writes
        || matches!(
            scenario.as_str(),
            "startup"
                | "etcd"
                | "on-etcd"
                | "core"
                | "callers"
                | "rewrap"
                | "revalidate"
                | "metrics"
        );
    if !known {
        return Err(format!("unknown scenario {scenario}\n\n{USAGE}"));
    }

    if scenario == "callers" {
        let n = args.creds.unwrap_or(1000);
        let (rows, notes) = callers::run(n, conc, conns, limits, args.rounds).await?;
        report.rows.extend(rows);
        report.notes.extend(notes);
        return Ok(report);
    }
    if scenario == "on-etcd" {
        let n = args.creds.unwrap_or(if args.smoke { 200 } else { 1000 });
        let (rows, notes) = on_etcd::run(n, conc, conns, limits, args.rounds).await?;
        report.rows.extend(rows);
        report.notes.extend(notes);
        return Ok(report);
    }
    if scenario == "metrics" {
        let n = args.creds.unwrap_or(if args.smoke { 200 } else { 1000 });
        let (rows, notes) = metrics::run(n, conc, conns, limits, args.rounds).await?;
        report.rows.extend(rows);
        report.notes.extend(notes);
        return Ok(report);
    }
    if scenario == "revalidate" {
        let n = args.creds.unwrap_or(if args.smoke { 200 } else { 2000 });
        let (rows, notes) = revalidate::run(n, conc, conns, limits, args.rounds).await?;
        report.rows.extend(rows);
        report.notes.extend(notes);
        return Ok(report);
    }
    if scenario == "rewrap" {
        let n = args.creds.unwrap_or(if args.smoke { 500 } else { 6000 });
        let (rows, notes) = rewrap::run(n, conc, conns, limits, args.rounds).await?;
        report.rows.extend(rows);
        report.notes.extend(notes);
        return Ok(report);
    }
    // Stores first (preloading is not measured), then the startup of the largest.
    let mut stores = Vec::new();
    if scenario == "core" {
        for n in args.store_sizes() {
            let store = Store::prepare(n).await?;
            let calls = (args.requests as usize).min(200_000);
            let ns = server::core_resolve(&store.data(), n, calls).await?;
            eprintln!(
                "core: Vault::resolve on {n} credentials: {:.2} us per call",
                ns / 1000.0
            );
        }
        return Ok(report);
    }
    let needs_store = matches!(
        scenario.as_str(),
        "resolve" | "list" | "all" | "startup" | "etcd"
    );
    if needs_store && args.addr.is_none() {
        for n in args.store_sizes() {
            stores.push(Store::prepare(n).await?);
        }
    }
    if matches!(scenario.as_str(), "startup" | "all") {
        match (args.addr, stores.last()) {
            (None, Some(big)) => report.startup = Some(startup::measure(&big.data(), big.n).await?),
            _ => eprintln!("notice: startup is measured only on a store of our own (no --addr)"),
        }
    }
    // The baseline runs next to the scenarios it is compared with.
    let etcd = if matches!(scenario.as_str(), "etcd" | "all" | "resolve" | "add") {
        Etcd::start().await
    } else {
        None
    };
    // etcd values are as large as a stored credvault record.
    let value_size = match (stores.first(), &etcd) {
        (Some(s), _) => s.record_bytes,
        (None, Some(_)) => Store::prepare(1).await?.record_bytes,
        (None, None) => 0,
    };

    if reads || scenario == "etcd" {
        let mut jobs = Vec::new();
        let mut targets = Vec::new();
        let sizes: Vec<usize> = if args.addr.is_some() {
            args.store_sizes()
        } else {
            stores.iter().map(|s| s.n).collect()
        };
        if scenario == "health" {
            let t = Target::new(&args, None, 0).await?;
            let chans = channels(t.addr, conns).await?;
            jobs.push(jobs::health(&chans, conc, limits, "health"));
            targets.push(t);
        }
        for (i, &n) in sizes.iter().enumerate() {
            if !matches!(scenario.as_str(), "resolve" | "list" | "all" | "etcd") {
                break;
            }
            let t = Target::new(&args, stores.get(i), n).await?;
            let chans = channels(t.addr, conns).await?;
            let k = short(n);
            jobs.push(jobs::health(
                &chans,
                conc,
                limits,
                &format!("health ({k} store)"),
            ));
            if scenario != "list" {
                jobs.push(jobs::resolve(
                    &chans,
                    conc,
                    limits,
                    n,
                    &format!("resolve {k}"),
                ));
            }
            if !matches!(scenario.as_str(), "resolve" | "etcd") {
                jobs.push(jobs::list(
                    &chans,
                    conc,
                    limits,
                    n,
                    &format!("list 50 of {k}"),
                ));
            }
            targets.push(t);
        }
        if let Some(etcd) = &etcd {
            let n = sizes.first().copied().unwrap_or(1000);
            let name = format!("etcd range ({} values)", short(n));
            jobs.push(
                etcd.range_job(conns, conc, limits, n, value_size, &name)
                    .await?,
            );
        }
        report
            .rows
            .extend(jobs::interleave(jobs, args.rounds).await);
        drop(targets);
    }

    if matches!(scenario.as_str(), "add" | "all" | "etcd") {
        let t = Some(Target::new(&args, None, 0).await?);
        let mut jobs = Vec::new();
        let run_id = std::process::id();
        for c in args.add_levels() {
            if let Some(t) = &t {
                let chans = channels(t.addr, conns).await?;
                let tag = format!("add-c{c}-p{run_id}");
                jobs.push(jobs::add(
                    &chans,
                    c,
                    limits,
                    &tag,
                    &format!("durable add c={c}"),
                ));
            }
            if let Some(etcd) = &etcd {
                let name = format!("etcd put c={c}");
                jobs.push(etcd.put_job(conns, c, limits, value_size, &name).await?);
            }
        }
        report
            .rows
            .extend(jobs::interleave(jobs, args.rounds).await);
    }

    if matches!(scenario.as_str(), "add-replace-storm" | "all") {
        let t = Target::new(&args, None, 0).await?;
        let chans = channels(t.addr, conns).await?;
        let c = if scenario == "all" {
            64
        } else {
            args.concurrency_or(64)
        };
        // Long enough to see several whole seconds of progress.
        let storm_limits = Limits {
            duration: limits
                .duration
                .max(Duration::from_secs(if args.smoke { 2 } else { 5 })),
            ..limits
        };
        let job = jobs::storm(&chans, c, storm_limits, &format!("add-replace storm c={c}"));
        report.rows.extend(jobs::interleave(vec![job], 1).await);
    }
    Ok(report)
}

/// Fallback server for `startup` when the release `credvault` binary is not built: the same
/// `credvault::serve`, configured from the environment, stopped by SIGTERM/SIGINT.
fn serve_child() -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let config = match credvault::Config::from_env() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        let stop = async {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                term.recv().await;
            }
        };
        match credvault::serve(listener, config, stop).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
