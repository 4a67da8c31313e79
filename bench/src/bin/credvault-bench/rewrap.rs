//! `rewrap`: what a running `keys rewrap` costs Resolve. One server over a store of `n`
//! credentials; each round measures Resolve with no rewrap running, then rotates the data key,
//! starts a rewrap and measures Resolve again while it runs, then waits for the pass to end.
//! Done at the default throttle and at 10x it, so the throttle's effect shows side by side.

use std::time::{Duration, Instant};

use credvault::client::{admin_client, AdminClient};
use credvault::proto::v1 as pb;

use crate::jobs;
use crate::load::{Limits, Row, Sample};
use crate::server::{self, bearer, channels, preload, InProcess, TempDir};
use crate::short;

pub async fn run(
    n: usize,
    conc: usize,
    conns: usize,
    limits: Limits,
    rounds: usize,
) -> Result<(Vec<Row>, Vec<String>), String> {
    let dir = TempDir::new("rewrap").map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    preload(&data, n).await?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let default = credvault::vault::REWRAP_PER_SECOND;
    for rate in [default, default * 10] {
        let mut config = server::config(&data);
        config.keys.rewrap_per_second = rate;
        let srv = InProcess::start_with(config).await?;
        let chans = channels(srv.addr, conns).await?;
        let mut admin = admin_client(chans[0].clone(), bearer());
        let idle = jobs::resolve(&chans, conc, limits, n, "resolve");
        let busy = jobs::resolve(&chans, conc, limits, n, "resolve during rewrap");
        let (mut quiet, mut during) = (Vec::new(), Vec::new());
        let mut overlap = Vec::new();
        for round in 1..=rounds {
            quiet.push(idle.once().await);
            admin
                .rotate_data_key(pb::RotateDataKeyRequest {})
                .await
                .map_err(jobs::status)?;
            let started = Instant::now();
            admin
                .start_rewrap(pb::StartRewrapRequest {})
                .await
                .map_err(jobs::status)?;
            during.push(busy.once().await);
            let measured = started.elapsed();
            let status = wait_done(&mut admin).await?;
            let pass = started.elapsed();
            let covered = (measured.as_secs_f64() / pass.as_secs_f64()).min(1.0);
            // The share of the measurement during which the pass was running.
            let running = (pass.as_secs_f64() / measured.as_secs_f64()).min(1.0);
            eprintln!(
                "  round {round}/{rounds} rewrap at {rate}/s: {} records re-encrypted in {:.1} s ({:.0}/s); \
                 the Resolve measurement overlapped {:.0}% of the pass",
                status.rewrapped,
                pass.as_secs_f64(),
                status.rewrapped as f64 / pass.as_secs_f64(),
                covered * 100.0
            );
            overlap.push(running);
        }
        let quiet = Row::new(
            format!("resolve {} (beside rewrap {rate}/s)", short(n)),
            conc,
            Sample::merge_rounds(quiet),
        );
        let during = Row::new(
            format!("resolve {} during rewrap {rate}/s", short(n)),
            conc,
            Sample::merge_rounds(during),
        );
        let ratio = during.p99 / quiet.p99.max(1e-9);
        let verdict = if ratio <= 2.0 { "meets" } else { "MISSES" };
        let min_overlap = overlap.iter().copied().fold(1.0, f64::min);
        notes.push(format!(
            "rewrap throttled to {rate}/s: Resolve p99 {:.2} ms during vs {:.2} ms without: {ratio:.2}x \
             ({verdict} <= 2x); throughput {:.2}x; the rewrap was running for at least {:.0}% of each measurement",
            during.p99,
            quiet.p99,
            during.rps / quiet.rps.max(1.0),
            min_overlap.min(1.0) * 100.0
        ));
        rows.push(quiet);
        rows.push(during);
        drop(srv);
    }
    Ok((rows, notes))
}

async fn wait_done(admin: &mut AdminClient) -> Result<pb::RewrapStatus, String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s = admin
            .get_rewrap_status(pb::GetRewrapStatusRequest {})
            .await
            .map_err(jobs::status)?
            .into_inner();
        match s.state() {
            pb::RewrapState::Running if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            pb::RewrapState::Done => return Ok(s),
            _ => return Err(format!("rewrap did not finish: {s:?}")),
        }
    }
}
