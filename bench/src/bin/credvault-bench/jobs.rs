//! Measurements as jobs, so `all` can interleave them round by round: on a noisy machine a
//! neighbour's compile then slows every scenario alike instead of skewing one of them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use credvault::client::VaultClient;
use credvault::domain::{Label, Owner, PageToken};
use credvault::proto::v1 as pb;
use tonic::transport::Channel;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

use crate::load::{drive, BoxFut, Limits, Row, Sample};
use crate::server::{credential_pb, label, OWNER};

type RunOnce = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Sample> + Send>> + Send + Sync>;

/// One named measurement that can be run again for each round.
pub struct Job {
    pub name: String,
    pub concurrency: usize,
    run: RunOnce,
}

impl Job {
    pub fn new<C, F>(
        name: impl Into<String>,
        clients: Vec<C>,
        concurrency: usize,
        limits: Limits,
        op: F,
    ) -> Self
    where
        C: Clone + Send + Sync + 'static,
        F: for<'a> Fn(&'a mut C, u64) -> BoxFut<'a> + Clone + Send + Sync + 'static,
    {
        let clients = Arc::new(clients);
        Job {
            name: name.into(),
            concurrency,
            run: Box::new(move || {
                let (clients, op) = (clients.clone(), op.clone());
                Box::pin(async move { drive(&clients, concurrency, limits, op).await })
            }),
        }
    }
}

impl Job {
    /// One measurement, for scenarios that sequence rounds themselves.
    pub async fn once(&self) -> Sample {
        settle().await;
        (self.run)().await
    }
}

/// Runs every job once per round, in order, and pools each job's rounds into one row.
pub async fn interleave(jobs: Vec<Job>, rounds: usize) -> Vec<Row> {
    let mut samples: Vec<Vec<Sample>> = jobs.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (job, out) in jobs.iter().zip(&mut samples) {
            settle().await;
            let s = (job.run)().await;
            eprintln!(
                "  round {}/{rounds} {:<32} {:>9.0} rps, {} errors",
                round + 1,
                job.name,
                s.rps(),
                s.errors
            );
            out.push(s);
        }
    }
    jobs.iter()
        .zip(samples)
        .map(|(job, s)| Row::new(job.name.clone(), job.concurrency, Sample::merge_rounds(s)))
        .collect()
}

/// Waits (at most `SETTLE_MAX`) until the machine is quiet: at least 90% idle over 200 ms.
/// Background work left by the previous job (etcd's snapshot after a preload or a Put round,
/// sled's log maintenance) would otherwise be billed to the next job.
async fn settle() {
    const SETTLE_MAX: Duration = Duration::from_secs(5);
    let started = Instant::now();
    while started.elapsed() < SETTLE_MAX {
        let Some(a) = cpu_times() else { return };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(b) = cpu_times() else { return };
        let (idle, total) = (b.0 - a.0, b.1 - a.1);
        if total == 0 || idle * 10 >= total * 9 {
            return;
        }
    }
    eprintln!("  (machine still busy after {SETTLE_MAX:?}; measuring anyway)");
}

/// (idle + iowait, total) jiffies of all CPUs, from /proc/stat.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((idle, fields.iter().take(8).sum()))
}

pub fn health(chans: &[Channel], conc: usize, limits: Limits, name: &str) -> Job {
    let clients: Vec<_> = chans.iter().cloned().map(HealthClient::new).collect();
    Job::new(
        name,
        clients,
        conc,
        limits,
        |c: &mut HealthClient<Channel>, _| {
            Box::pin(async move {
                let req = HealthCheckRequest {
                    service: String::new(),
                };
                let r = c.check(req).await.map_err(status)?;
                check(r.get_ref().status == 1, "health is not SERVING")
            }) as BoxFut<'_>
        },
    )
}

fn vault_clients(chans: &[Channel]) -> Vec<VaultClient> {
    chans.iter().cloned().map(crate::server::client).collect()
}

/// Resolve of a uniformly random label among the `n` preloaded ones.
pub fn resolve(chans: &[Channel], conc: usize, limits: Limits, n: usize, name: &str) -> Job {
    resolve_as(vault_clients(chans), conc, limits, n, name)
}

/// [`resolve`] through these clients (a token of their own, or none: mTLS callers).
pub fn resolve_as(
    clients: Vec<VaultClient>,
    conc: usize,
    limits: Limits,
    n: usize,
    name: &str,
) -> Job {
    Job::new(name, clients, conc, limits, move |c, r| {
        Box::pin(async move {
            let req = pb::ResolveRequest {
                owner: OWNER.into(),
                label: label((r % n as u64) as usize),
                require_valid: false,
            };
            let r = c.resolve(req).await.map_err(status)?;
            check(r.get_ref().password.len() == 32, "Resolve gave no password")
        }) as BoxFut<'_>
    })
}

/// A page of 50 starting after a random label.
pub fn list(chans: &[Channel], conc: usize, limits: Limits, n: usize, name: &str) -> Job {
    // Start far enough from the end that every page is full.
    let starts = n.saturating_sub(51).max(1) as u64;
    Job::new(name, vault_clients(chans), conc, limits, move |c, r| {
        Box::pin(async move {
            let after = Label::parse(&label((r % starts) as usize)).expect("valid label");
            let req = pb::ListRequest {
                owner: OWNER.into(),
                page_size: 50,
                page_token: PageToken(after).encode(&Owner::parse(OWNER).expect("valid owner")),
            };
            let r = c.list(req).await.map_err(status)?;
            check(!r.get_ref().credentials.is_empty(), "List page is empty")
        }) as BoxFut<'_>
    })
}

/// Durable Add of a fresh label each time (`tag` keeps labels unique across jobs and rounds).
pub fn add(chans: &[Channel], conc: usize, limits: Limits, tag: &str, name: &str) -> Job {
    let seq = Arc::new(AtomicU64::new(0));
    let tag = tag.to_owned();
    Job::new(name, vault_clients(chans), conc, limits, move |c, _| {
        let i = seq.fetch_add(1, Ordering::Relaxed);
        let req = pb::AddRequest {
            owner: OWNER.into(),
            label: format!("{tag}-{i:08}"),
            credential: Some(credential_pb(i as usize)),
            replace: false,
            ..Default::default()
        };
        Box::pin(async move {
            let r = c.add(req).await.map_err(status)?;
            check(r.get_ref().credential.is_some(), "Add gave no metadata")
        }) as BoxFut<'_>
    })
}

/// Every caller replaces the same label: the CAS loop must keep making progress.
pub fn storm(chans: &[Channel], conc: usize, limits: Limits, name: &str) -> Job {
    Job::new(name, vault_clients(chans), conc, limits, move |c, r| {
        let req = pb::AddRequest {
            owner: OWNER.into(),
            label: "storm".into(),
            credential: Some(credential_pb(r as usize % 1000)),
            replace: true,
            ..Default::default()
        };
        Box::pin(async move {
            c.add(req).await.map_err(status)?;
            Ok(())
        }) as BoxFut<'_>
    })
}

pub fn status(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}
