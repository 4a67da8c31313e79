//! Crash test: the real binary under concurrent Add/replace/Delete load is killed with SIGKILL at a
//! random moment and restarted on the same data dir, round after round. Every acknowledged write
//! must be there (field for field, at its version), every acknowledged Delete must hold, the only
//! uncertainty allowed is the one operation per label that was in flight, and the store must open
//! without repair.
//!
//! Rounds: `CREDVAULT_CRASH_ROUNDS` (default 3). CI runs 10+ against the release binary:
//! `CREDVAULT_CRASH_ROUNDS=10 cargo test --release --test crash -- --nocapture`.

#[path = "common/child.rs"]
mod child;
#[path = "common/workload.rs"]
mod workload;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use child::ChildServer;
use tokio::sync::watch;
use workload::Rng;

const SLOTS: usize = 64;
const CHANNELS: usize = 4;
/// Enough operations per label that the load is still running when the kill comes.
const OPS_PER_SLOT: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let rounds: usize = std::env::var("CREDVAULT_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let data = child::data_dir(dir.path());
    let mut rng = Rng::from_os();
    let seed = rng.next();
    println!("crash test: {rounds} rounds, {SLOTS} labels, seed {seed:#x}");

    let mut slots = workload::slots(SLOTS);
    let next_write = Arc::new(AtomicU64::new(1));
    let mut server = ChildServer::start(&data);
    let (mut total_acked, mut total_checked, mut total_present) = (0, 0, 0);
    let started = Instant::now();

    for round in 1..=rounds {
        let mut clients = Vec::new();
        for _ in 0..CHANNELS {
            clients.push(server.client().await);
        }
        // The kill point: after a random number of acknowledgements, then a random few hundred
        // microseconds more, so it lands anywhere in a write's life (before, during or after
        // its group flush).
        let kill_after = 100 + rng.below(1500);
        let extra = Duration::from_micros(rng.below(800));
        let stopping = Arc::new(AtomicBool::new(false));
        let (acks_tx, mut acks_rx) = watch::channel(0u64);
        let load = tokio::spawn({
            let (clients, next_write, stopping) =
                (clients.clone(), next_write.clone(), stopping.clone());
            async move {
                workload::run(
                    &clients,
                    slots,
                    next_write,
                    OPS_PER_SLOT,
                    stopping,
                    acks_tx,
                    seed ^ round as u64,
                )
                .await
            }
        });
        // The guard `wait_for` returns holds the watch lock: drop it at once, or every writer's
        // `send_modify` blocks on it.
        let reached = tokio::time::timeout(
            Duration::from_secs(120),
            acks_rx.wait_for(|n| *n >= kill_after),
        )
        .await
        .map(|r| r.is_ok());
        assert!(
            matches!(reached, Ok(true)),
            "round {round}: load did not reach {kill_after} acks"
        );
        tokio::time::sleep(extra).await;
        stopping.store(true, Ordering::SeqCst);
        server.kill9();
        let (after_kill, outcome) = tokio::time::timeout(Duration::from_secs(60), load)
            .await
            .expect("writers stop once the server is gone")
            .expect("writer tasks");
        slots = after_kill;
        drop(clients);

        let restart = Instant::now();
        server = ChildServer::start(&data);
        let restart_ms = restart.elapsed().as_millis();
        let checked = workload::verify(&mut server.client().await, &mut slots).await;
        assert!(
            !server.log().contains("panicked"),
            "server panicked:\n{}",
            server.log()
        );
        println!(
            "round {round}: killed after {} acks ({} duplicate Adds refused); restart {restart_ms} ms; \
             checked {} labels ({} present, field for field); in-flight at kill: {} landed, {} lost",
            outcome.acked,
            outcome.refused_duplicates,
            checked.labels,
            checked.present,
            checked.pending_landed,
            checked.pending_lost,
        );
        total_acked += outcome.acked;
        total_checked += checked.labels;
        total_present += checked.present;
    }
    println!(
        "crash test: {rounds} rounds of kill -9 in {:.1} s; {total_acked} acknowledged writes and \
         deletes, {total_checked} label states checked ({total_present} resolved field for field); \
         no acknowledged operation lost",
        started.elapsed().as_secs_f64()
    );
    assert!(total_acked > 0);
}
