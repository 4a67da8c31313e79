//! `keys rewrap` over real gRPC: every record moves to the active key while writers run and none
//! of their writes is lost; a rewrap killed with SIGKILL resumes from its stored cursor at the
//! next start, under a concurrent workload whose every acknowledged write must survive.

#[path = "common/child.rs"]
mod child;
mod common;
#[path = "common/workload.rs"]
mod workload;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use child::{ChildServer, Launch};
use common::*;
use credvault::client::AdminClient;
use credvault::proto::v1 as pb;
use tokio::sync::watch;
use tonic::Code;

async fn rewrap_status(a: &mut AdminClient) -> pb::RewrapStatus {
    a.get_rewrap_status(pb::GetRewrapStatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Polls until the rewrap is no longer running (bounded).
async fn finished(a: &mut AdminClient) -> pb::RewrapStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = rewrap_status(a).await;
        if s.state() != pb::RewrapState::Running {
            return s;
        }
        assert!(Instant::now() < deadline, "rewrap still running: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn add_many(c: &mut Client, owner: &str, n: usize) {
    for i in 0..n {
        let req = add_request(
            owner,
            &format!("bulk-{i:04}"),
            workload::credential(10_000 + i, 1),
        );
        c.add(req).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_moves_every_record_to_the_active_key_and_loses_no_concurrent_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // Slow enough that the writers below run during the pass.
    config.keys.rewrap_per_second = 200;
    let server = TestServer::start(config).await;
    let mut c = server.client().await;
    let mut a = admin(server.channel().await, TEST_TOKEN);

    assert_eq!(rewrap_status(&mut a).await.state(), pb::RewrapState::Idle);
    const N: usize = 120;
    for i in 0..N {
        let req = add_request("acme", &format!("r{i:03}"), workload::credential(i, 1));
        c.add(req).await.unwrap();
    }
    a.rotate_data_key(pb::RotateDataKeyRequest {})
        .await
        .unwrap();
    assert_eq!(records_on(&key_status(&mut a).await, 1), N as u64);

    let started = a
        .start_rewrap(pb::StartRewrapRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.state(), pb::RewrapState::Running);
    assert_eq!(started.target_key_id, 2);
    // A second start joins the running pass instead of starting another.
    let again = a
        .start_rewrap(pb::StartRewrapRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.state(), pb::RewrapState::Running);
    assert_eq!(again.started_at, started.started_at);

    // Writers during the pass: replace every third record, delete every fifth, add new ones.
    // `expected` is the last acknowledged state of each label (None: deleted).
    let mut expected: HashMap<String, Option<u64>> =
        (0..N).map(|i| (format!("r{i:03}"), Some(1))).collect();
    for round in 0..3u64 {
        for i in (0..N).filter(|i| i % 3 == round as usize) {
            let label = format!("r{i:03}");
            if i % 5 == 0 {
                match c.delete(delete_request("acme", &label)).await {
                    Ok(_) => {
                        expected.insert(label, None);
                    }
                    Err(e) => assert_eq!(e.code(), Code::NotFound),
                }
                continue;
            }
            let write = 2 + round;
            let mut req = add_request("acme", &label, workload::credential(i, write));
            req.replace = true;
            c.add(req).await.unwrap();
            expected.insert(label, Some(write));
        }
        let label = format!("new{round}");
        c.add(add_request("acme", &label, workload::credential(500, 1)))
            .await
            .unwrap();
        expected.insert(label, Some(1));
    }

    let done = finished(&mut a).await;
    assert_eq!(done.state(), pb::RewrapState::Done, "{done:?}");
    assert_eq!(done.unreadable, 0);
    assert!(
        done.rewrapped > 0 && done.done >= done.rewrapped,
        "{done:?}"
    );
    assert!(done.finished_at.is_some());

    for (label, write) in &expected {
        match (write, c.resolve(resolve_request("acme", label)).await) {
            (Some(write), Ok(reply)) => {
                let reply = reply.into_inner();
                assert_eq!(workload::write_of(&reply), Some(*write), "{label}");
            }
            (None, Err(e)) => assert_eq!(e.code(), Code::NotFound, "{label}"),
            (w, r) => panic!("{label}: expected {w:?}, got {r:?}"),
        }
    }
    let status = key_status(&mut a).await;
    assert_eq!(records_on(&status, 1), 0, "{status:?}");
    a.retire_data_key(pb::RetireDataKeyRequest { id: 1 })
        .await
        .expect("no record uses the old key any more");
    server.stop().await.unwrap();
}

const SLOTS: usize = 48;
const BULK: usize = 400;

/// SIGKILL in the middle of a rewrap, with writers running: the next start resumes the pass from
/// its cursor (not from the beginning), every acknowledged write is there field for field, and
/// the pass ends with no record left on the old key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrap_killed_mid_way_resumes_from_its_cursor_and_loses_no_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = child::data_dir(dir.path());
    let slow = Launch {
        env: vec![("CREDVAULT_KEYS_REWRAP_PER_SECOND".into(), "150".into())],
        ..Launch::default()
    };
    let mut server = ChildServer::start_with(&data, &slow);
    let token = server.admin_token();
    let mut c = server.client().await;
    add_many(&mut c, "bulk", BULK).await;
    let mut a = admin(server.channel().await, &token);
    a.rotate_data_key(pb::RotateDataKeyRequest {})
        .await
        .unwrap();
    let started = a
        .start_rewrap(pb::StartRewrapRequest {})
        .await
        .unwrap()
        .into_inner();

    // The workload of the crash test, on its own labels, during the pass.
    let clients = vec![server.client().await, server.client().await];
    let stopping = Arc::new(AtomicBool::new(false));
    let (acks_tx, mut acks_rx) = watch::channel(0u64);
    let seed = workload::Rng::from_os().next();
    let load = tokio::spawn({
        let stopping = stopping.clone();
        async move {
            workload::run(
                &clients,
                workload::slots(SLOTS),
                Arc::new(AtomicU64::new(1)),
                10_000,
                stopping,
                acks_tx,
                seed,
            )
            .await
        }
    });
    // Kill once the cursor has been stored a few pages in (progress is published after each
    // stored page) and the writers are busy.
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        let s = rewrap_status(&mut a).await;
        if s.done >= 128 && *acks_rx.borrow_and_update() >= 100 {
            break s;
        }
        assert_eq!(s.state(), pb::RewrapState::Running, "{s:?}");
        assert!(Instant::now() < deadline, "rewrap made no progress: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(before.done < before.total, "the pass must still be running");
    stopping.store(true, Ordering::SeqCst);
    server.kill9();
    let (mut slots, outcome) = tokio::time::timeout(Duration::from_secs(60), load)
        .await
        .expect("writers stop once the server is gone")
        .expect("writer tasks");
    assert!(outcome.acked > 0);

    // The restart resumes the stored pass by itself.
    let server = ChildServer::start(&data);
    let mut a = admin(server.channel().await, &token);
    let resumed = rewrap_status(&mut a).await;
    assert_ne!(resumed.state(), pb::RewrapState::Idle, "{resumed:?}");
    assert_eq!(resumed.started_at, started.started_at, "the same pass");
    assert!(
        resumed.done >= before.done,
        "resumed from the cursor: {} before the kill, {} after",
        before.done,
        resumed.done
    );
    assert!(
        server.log().contains("resuming the rewrap"),
        "{}",
        server.log()
    );
    let checked = workload::verify(&mut server.client().await, &mut slots).await;
    assert_eq!(checked.labels, SLOTS as u64);

    let done = finished(&mut a).await;
    assert_eq!(done.state(), pb::RewrapState::Done, "{done:?}");
    assert_eq!(done.unreadable, 0);
    let status = key_status(&mut a).await;
    assert_eq!(records_on(&status, 1), 0, "{status:?}");
    let mut c = server.client().await;
    for i in (0..BULK).step_by(37) {
        let reply = c
            .resolve(resolve_request("bulk", &format!("bulk-{i:04}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            reply,
            workload::expected_resolve(10_000 + i, 1, 1),
            "bulk-{i:04}"
        );
    }
    // And the workload's labels once more, after the pass touched them all.
    workload::verify(&mut c, &mut slots).await;
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
