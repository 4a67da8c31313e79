//! Two credvault instances over one 3-member etcd cluster (real etcd processes on loopback):
//! they share one set of credentials, agree at once, stay correct through a label race, keep
//! answering when the etcd leader or one of them dies, and etcd's files never hold a secret.

mod common;
#[path = "common/etcd.rs"]
mod etcd;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use credvault::proto::v1 as pb;
use tonic::Code;

/// Two servers on `cluster`, with one root key (as instances must share it).
async fn two_instances(dir: &Path, cluster: &etcd::Cluster) -> (TestServer, TestServer) {
    let key = etcd::shared_root_key(dir);
    let server = |name: &str| {
        let mut c = config(&dir.join(name));
        c.backend = credvault::config::Backend::Etcd;
        c.etcd.endpoints = cluster.endpoints();
        c.master_key_file = Some(key.clone());
        c
    };
    let a = TestServer::start(server("a")).await;
    // B after A has created the keyring: a store has one, whoever comes first.
    a.client().await.list(list_request("nobody")).await.unwrap();
    let b = TestServer::start(server("b")).await;
    (a, b)
}

fn list_request(owner: &str) -> pb::ListRequest {
    pb::ListRequest {
        owner: owner.into(),
        ..Default::default()
    }
}

fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_set_of_credentials_and_agree_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = etcd::Cluster::start(&dir.path().join("etcd"), 3) else {
        return;
    };
    let (a, b) = two_instances(dir.path(), &cluster).await;
    let (mut on_a, mut on_b) = (a.client().await, b.client().await);

    // Add on A resolves on B.
    on_a.add(add_request("acme", "sms", token_credential()))
        .await
        .unwrap();
    let got = on_b
        .resolve(resolve_request("acme", "sms"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.username.as_str(), got.password.as_str()),
        (ACCOUNT_SID, AUTH_TOKEN)
    );

    // A replace on B is what A resolves next, at once.
    let mut replace = add_request("acme", "sms", api_key_credential());
    replace.replace = true;
    on_b.add(replace).await.unwrap();
    let got = on_a
        .resolve(resolve_request("acme", "sms"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.password.as_str(), got.version), (API_KEY_SECRET, 2));

    // Delete on B is gone on A at once.
    on_b.delete(pb::DeleteRequest {
        owner: "acme".into(),
        label: "sms".into(),
    })
    .await
    .unwrap();
    let e = on_a
        .resolve(resolve_request("acme", "sms"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    // A label race across the two instances: exactly one winner every round.
    for round in 0..20 {
        let label = format!("race-{round}");
        let (mut ca, mut cb) = (on_a.clone(), on_b.clone());
        let (la, lb) = (label.clone(), label.clone());
        let ra =
            tokio::spawn(async move { ca.add(add_request("acme", &la, token_credential())).await });
        let rb =
            tokio::spawn(
                async move { cb.add(add_request("acme", &lb, api_key_credential())).await },
            );
        let (ra, rb) = (ra.await.unwrap(), rb.await.unwrap());
        let codes = [&ra, &rb].map(|r| r.as_ref().map_or_else(|e| e.code(), |_| Code::Ok));
        assert!(
            codes.contains(&Code::Ok) && codes.contains(&Code::AlreadyExists),
            "round {round}: {codes:?}"
        );
        // Both instances resolve the winner's credential.
        let want = if ra.is_ok() {
            AUTH_TOKEN
        } else {
            API_KEY_SECRET
        };
        for c in [&mut on_a, &mut on_b] {
            let got = c.resolve(resolve_request("acme", &label)).await.unwrap();
            assert_eq!(got.into_inner().password, want, "round {round}");
        }
    }
    let listed = on_b.list(list_request("acme")).await.unwrap().into_inner();
    assert_eq!(listed.credentials.len(), 20);

    // etcd's WAL and db hold sealed records only: no secret in plaintext, in any member.
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    let scan = Instant::now();
    let mut files = 0;
    let mut keys_seen = false;
    for (path, bytes) in files_under(&dir.path().join("etcd")) {
        files += 1;
        // Keys are plain (owner and label): seeing one proves the search reads the records.
        keys_seen |= contains(&bytes, b"/credvault/cred/acme/race-7");
        for secret in [AUTH_TOKEN, API_KEY_SECRET] {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{} holds a secret in plaintext",
                path.display()
            );
        }
    }
    assert!(
        files >= 6,
        "found only {files} etcd files: wrong directory?"
    );
    assert!(
        keys_seen,
        "no record key in etcd's files: the search is looking in the wrong place"
    );
    eprintln!("{files} etcd files scanned in {:?}", scan.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_instances_keep_answering_when_the_etcd_leader_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut cluster) = etcd::Cluster::start(&dir.path().join("etcd"), 3) else {
        return;
    };
    let (a, b) = two_instances(dir.path(), &cluster).await;
    let (mut on_a, mut on_b) = (a.client().await, b.client().await);
    on_a.add(add_request("acme", "before", token_credential()))
        .await
        .unwrap();

    let leader = cluster.leader();
    cluster.members[leader].kill();
    let killed = Instant::now();
    // Every call right after the kill succeeds, within a caller's deadline of 5 s: the store
    // retries through the election (and past the dead member) for it.
    let deadline = Duration::from_secs(5);
    for i in 0..10 {
        for c in [&mut on_a, &mut on_b] {
            let got = c
                .resolve(with_deadline(resolve_request("acme", "before"), deadline))
                .await
                .unwrap_or_else(|e| panic!("Resolve {i} after the leader died: {e:?}"));
            assert_eq!(got.into_inner().password, AUTH_TOKEN);
        }
        let label = format!("after-{i}");
        on_b.add(with_deadline(
            add_request("acme", &label, token_credential()),
            deadline,
        ))
        .await
        .unwrap_or_else(|e| panic!("Add {i} after the leader died: {e:?}"));
        let got = on_a
            .resolve(with_deadline(resolve_request("acme", &label), deadline))
            .await
            .unwrap();
        assert_eq!(got.into_inner().password, AUTH_TOKEN);
    }
    eprintln!("40 calls across a leader loss in {:?}", killed.elapsed());
    let new_leader = cluster.leader();
    assert_ne!(new_leader, leader);

    // The old leader comes back as a follower; nothing was lost.
    cluster.restart(leader);
    let listed = on_a.list(list_request("acme")).await.unwrap().into_inner();
    assert_eq!(listed.credentials.len(), 11);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_dies_and_the_other_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = etcd::Cluster::start(&dir.path().join("etcd"), 3) else {
        return;
    };
    let (a, b) = two_instances(dir.path(), &cluster).await;
    let (mut on_a, mut on_b) = (a.client().await, b.client().await);
    on_a.add(add_request("acme", "sms", token_credential()))
        .await
        .unwrap();
    // A dies mid-flight (its task is aborted, as a killed process stops: no shutdown).
    let writes = tokio::spawn(async move {
        for i in 0.. {
            if on_a
                .add(add_request("acme", &format!("w{i}"), token_credential()))
                .await
                .is_err()
            {
                return i;
            }
        }
        unreachable!()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(a);
    let acknowledged = tokio::time::timeout(Duration::from_secs(10), writes)
        .await
        .expect("A's client never saw A go")
        .unwrap();
    // B answers, and has every write A acknowledged.
    let got = on_b.resolve(resolve_request("acme", "sms")).await.unwrap();
    assert_eq!(got.into_inner().password, AUTH_TOKEN);
    for i in 0..acknowledged {
        on_b.resolve(resolve_request("acme", &format!("w{i}")))
            .await
            .unwrap_or_else(|e| panic!("w{i}, acknowledged by A, is not on B: {e:?}"));
    }
    on_b.add(add_request("acme", "after", token_credential()))
        .await
        .unwrap();
    b.stop().await.unwrap();
}

fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// A data key rotated on one instance is used by the other at once: records sealed under it
/// open there (the keyring is re-read from etcd), and the other's next rotation builds on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_on_one_instance_serves_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = etcd::Cluster::start(&dir.path().join("etcd"), 1) else {
        return;
    };
    let (a, b) = two_instances(dir.path(), &cluster).await;
    let (mut on_a, mut on_b) = (a.client().await, b.client().await);
    let (mut admin_a, mut admin_b) = (
        admin(a.channel().await, TEST_TOKEN),
        admin(b.channel().await, TEST_TOKEN),
    );
    on_a.add(add_request("acme", "old", token_credential()))
        .await
        .unwrap();

    let rotated = admin_a
        .rotate_data_key(pb::RotateDataKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.active.unwrap().id, 2);
    on_a.add(add_request("acme", "new", api_key_credential()))
        .await
        .unwrap();
    let got = on_b
        .resolve(resolve_request("acme", "new"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.password, API_KEY_SECRET);

    let rotated = admin_b
        .rotate_data_key(pb::RotateDataKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rotated.active.unwrap().id,
        3,
        "B's rotation did not build on A's"
    );
    on_b.add(add_request("acme", "newer", token_credential()))
        .await
        .unwrap();
    for label in ["old", "new", "newer"] {
        on_a.resolve(resolve_request("acme", label))
            .await
            .unwrap_or_else(|e| panic!("{label} on A: {e:?}"));
    }
    let (status_a, status_b) = (
        key_status(&mut admin_a).await,
        key_status(&mut admin_b).await,
    );
    assert_eq!(records_on(&status_a, 3), 1);
    assert_eq!((status_a.active_key_id, status_b.active_key_id), (3, 3));
    assert_eq!(status_a.keyring_version, status_b.keyring_version);
}
