//! A tiny hand-parsed command line: a bench needs a handful of numbers, not a CLI framework.

use std::net::SocketAddr;
use std::time::Duration;

pub const USAGE: &str = "\
usage: credvault-bench <scenario> [options]

scenarios:
  health             grpc.health.v1.Health/Check (what tonic costs with no work)
  resolve            Resolve random labels on a store of --creds credentials
  list               List pages of 50 from random positions of --creds credentials
  add                durable Add of fresh labels at 1, 16 and 64 callers (or --concurrency)
  add-replace-storm  --concurrency (default 64) callers Add(replace) ONE label; per-second progress
  startup            time to SERVING and RSS of the credvault binary over --creds (default 100k)
  etcd               etcd Range vs Resolve and Put vs durable Add (c=64) side by side
                     (needs `etcd` on PATH; resolve and add also run their etcd counterpart)
  on-etcd            credvault on the etcd store: Resolve vs etcd Range, Add vs etcd's create
                     Txn (c=64), Resolve vs health on the same server
  callers            Resolve with a token (audit buffered, sync), over TLS and mTLS, each vs health
  rewrap             Resolve p99 while `keys rewrap` re-encrypts --creds (default 6000) records,
                     vs Resolve without, at the default throttle and at 10x it
  revalidate         health and Resolve with periodic re-validation off, and running flat out
                     (every credential always due, 50 Twilio requests/s to a loopback stand-in)
  metrics            health and Resolve with metrics off, and on (scraped every second)
  core               Vault::resolve through the library, one caller, no gRPC (for profiling)
  all                everything above side by side in one run, with the ratios against the targets

options:
  --concurrency N    concurrent callers (default 32; add: 1,16,64; storm: 64)
  --connections N    HTTP/2 connections the callers share (default 2)
  --requests N       most requests per measurement (default 1000000)
  --seconds S        length of one measurement in seconds (default 3)
  --rounds N         interleaved rounds per measurement in `all` (default 3)
  --creds N          credentials in the store (resolve/list default 1000; all: 1000 and 100000)
  --addr HOST:PORT   target a running server on loopback instead of starting one in-process
  --smoke            seconds-long run with small stores (CI); no thresholds
";

#[derive(Debug, Clone)]
pub struct Args {
    pub scenario: String,
    pub concurrency: Option<usize>,
    pub connections: usize,
    pub requests: u64,
    pub seconds: Duration,
    pub rounds: usize,
    pub creds: Option<usize>,
    pub addr: Option<SocketAddr>,
    pub smoke: bool,
}

impl Args {
    pub fn parse(mut argv: impl Iterator<Item = String>) -> Result<Self, String> {
        let scenario = argv.next().ok_or("missing scenario")?;
        if scenario == "-h" || scenario == "--help" {
            return Err(String::new());
        }
        let mut args = Args {
            scenario,
            concurrency: None,
            connections: 2,
            requests: 1_000_000,
            seconds: Duration::from_secs(3),
            rounds: 3,
            creds: None,
            addr: None,
            smoke: false,
        };
        let mut seconds_given = false;
        while let Some(flag) = argv.next() {
            let mut value = || argv.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--concurrency" => args.concurrency = Some(positive(&flag, &value()?)?),
                "--connections" => args.connections = positive(&flag, &value()?)?,
                "--requests" => args.requests = positive(&flag, &value()?)? as u64,
                "--rounds" => args.rounds = positive(&flag, &value()?)?,
                "--creds" => args.creds = Some(positive(&flag, &value()?)?),
                "--seconds" => {
                    let v = value()?;
                    let s: f64 = v
                        .parse()
                        .map_err(|_| format!("{flag}: not a number: {v}"))?;
                    if !(s > 0.0 && s <= 600.0) {
                        return Err(format!("{flag} must be in (0, 600]"));
                    }
                    args.seconds = Duration::from_secs_f64(s);
                    seconds_given = true;
                }
                "--addr" => {
                    let v = value()?;
                    let addr: SocketAddr = v
                        .parse()
                        .map_err(|_| format!("--addr must be IP:PORT, got {v}"))?;
                    // This tool generates load: it must never point at anything but this machine.
                    if !addr.ip().is_loopback() {
                        return Err(format!("--addr must be a loopback address, got {addr}"));
                    }
                    args.addr = Some(addr);
                }
                "--smoke" => args.smoke = true,
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown option {other}")),
            }
        }
        if args.smoke {
            if !seconds_given {
                args.seconds = Duration::from_millis(400);
            }
            args.rounds = 1;
        }
        Ok(args)
    }

    /// Credential counts for the read scenarios.
    pub fn store_sizes(&self) -> Vec<usize> {
        match (self.creds, self.smoke, self.scenario.as_str()) {
            (Some(n), _, _) => vec![n],
            (None, true, _) => vec![200, 2_000],
            (None, false, "all") => vec![1_000, 100_000],
            (None, false, "startup") => vec![100_000],
            (None, false, _) => vec![1_000],
        }
    }

    pub fn concurrency_or(&self, default: usize) -> usize {
        self.concurrency.unwrap_or(default)
    }

    /// Concurrency levels for durable Add.
    pub fn add_levels(&self) -> Vec<usize> {
        match (self.concurrency, self.scenario.as_str()) {
            (Some(n), s) if s != "all" => vec![n],
            (None, "etcd") => vec![64],
            _ => vec![1, 16, 64],
        }
    }
}

fn positive(flag: &str, v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} must be a positive integer, got {v}")),
    }
}
