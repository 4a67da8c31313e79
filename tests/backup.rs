//! Backup and restore: a backup streamed while writers run restores with every credential
//! acknowledged before it resolving field for field; a flipped byte, a cut file or the wrong root
//! key is refused before anything is written; a non-empty target is refused untouched; a restore
//! cut short is finished by running it again, and no server opens the half-restored store.

mod common;
#[path = "common/etcd.rs"]
mod etcd;
#[path = "common/workload.rs"]
mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use credvault::client::{admin_client, AdminClient, Bearer};
use credvault::proto::v1 as pb;
use credvault::store::{SledStore, Store};
use credvault::Config;
use tonic::Code;

fn test_admin(channel: tonic::transport::Channel) -> AdminClient {
    admin(channel, TEST_TOKEN)
}

async fn backup_bytes(a: &mut AdminClient) -> Vec<u8> {
    let mut stream = a.backup(pb::BackupRequest {}).await.unwrap().into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        bytes.extend_from_slice(&chunk.data);
    }
    bytes
}

/// A config over `dir` whose root key is the file `key` (outside the data dir).
fn config_with_key(dir: &Path, key: &Path) -> Config {
    let mut c = config(dir);
    c.master_key_file = Some(key.to_owned());
    c
}

fn write_key(path: &Path, byte: u8) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, [byte; 32]).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn save(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_concurrent_writes_restores_every_acknowledged_credential() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("root.key");
    write_key(&key, 0x11);
    let source = dir.path().join("source");
    let server = TestServer::start(config_with_key(&source, &key)).await;
    let mut c = server.client().await;
    let mut a = test_admin(server.channel().await);
    for i in 0..200 {
        let req = add_request(
            "acme",
            &format!("before-{i:03}"),
            workload::credential(i, 1),
        );
        c.add(req).await.unwrap();
    }
    a.rotate_data_key(pb::RotateDataKeyRequest {})
        .await
        .unwrap();

    // Writers: new labels and replaces of the old ones, acknowledged ones remembered.
    let acked: Arc<Mutex<BTreeMap<String, (usize, u64)>>> = Arc::default();
    for i in 0..200 {
        acked
            .lock()
            .unwrap()
            .insert(format!("before-{i:03}"), (i, 1));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4usize {
        let (mut c, acked, stop) = (server.client().await, acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let (label, slot, write, replace) = if n % 2 == 0 {
                    let slot = ((n as usize) * 7 + w) % 200;
                    (format!("before-{slot:03}"), slot, 100 + n, true)
                } else {
                    let slot = 1000 + w * 100_000 + n as usize;
                    (format!("during-{w}-{n:05}"), slot, 1, false)
                };
                let mut req = add_request("acme", &label, workload::credential(slot, write));
                req.replace = replace;
                c.add(req).await.unwrap();
                acked.lock().unwrap().insert(label, (slot, write));
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // Everything acknowledged before the backup starts must be in it.
    let must_have = acked.lock().unwrap().clone();
    let bytes = backup_bytes(&mut a).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    server.stop().await.unwrap();

    let verified = credvault::backup::verify(&bytes).unwrap();
    let path = save(dir.path(), "snap.backup", &bytes);
    let target = dir.path().join("target");
    let restored = credvault::restore(&config_with_key(&target, &key), &path)
        .await
        .unwrap();
    assert_eq!(restored.records, verified.snapshot.records.len() as u64);
    assert_eq!(restored.unreadable, 0);
    assert!(restored.records as usize >= must_have.len());

    let server = TestServer::start(config_with_key(&target, &key)).await;
    let mut c = server.client().await;
    for (label, (slot, write)) in &must_have {
        let reply = c
            .resolve(resolve_request("acme", label))
            .await
            .unwrap_or_else(|e| panic!("{label}: {e:?}"))
            .into_inner();
        let got = workload::write_of(&reply).unwrap();
        // The backup holds the write acknowledged before it, or a later one.
        assert!(got >= *write, "{label}: write {got} < acknowledged {write}");
        assert_eq!(
            reply,
            workload::expected_resolve(*slot, got, reply.version),
            "{label}"
        );
    }
    // Every record in the restored store opens (nothing DATA_LOSS).
    let mut listed = 0;
    let mut token = String::new();
    loop {
        let page = c
            .list(pb::ListRequest {
                owner: "acme".into(),
                page_size: 100,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        listed += page.credentials.len();
        for m in &page.credentials {
            c.resolve(resolve_request("acme", &m.label)).await.unwrap();
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(listed as u64, restored.records);
    // The copy seals new writes under a key of its own.
    let status = test_admin(server.channel().await)
        .get_key_status(pb::GetKeyStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.active_key_id, restored.active_key);
    assert!(status
        .keys
        .iter()
        .all(|k| k.id < restored.active_key || k.records == 0));
    server.stop().await.unwrap();
}

/// A small backup of two credentials, taken from a server over root key `key`.
async fn small_backup(dir: &Path, key: &Path) -> Vec<u8> {
    let server = TestServer::start(config_with_key(&dir.join("small"), key)).await;
    let mut c = server.client().await;
    for label in ["one", "two"] {
        c.add(add_request("acme", label, token_credential()))
            .await
            .unwrap();
    }
    let bytes = backup_bytes(&mut test_admin(server.channel().await)).await;
    server.stop().await.unwrap();
    bytes
}

#[tokio::test]
async fn a_flipped_byte_a_cut_file_or_the_wrong_root_key_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("root.key");
    write_key(&key, 0x22);
    let bytes = small_backup(dir.path(), &key).await;
    let target = dir.path().join("target");
    let data = target.join("data");

    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for at in [3, 20, bytes.len() / 2, bytes.len() - 40, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x04;
        cases.push((format!("byte {at} flipped"), bad));
    }
    cases.push(("cut short".into(), bytes[..bytes.len() - 10].to_vec()));
    cases.push(("empty".into(), Vec::new()));
    for (what, bad) in cases {
        let path = save(dir.path(), "bad.backup", &bad);
        let err = credvault::restore(&config_with_key(&target, &key), &path)
            .await
            .expect_err(&what);
        let text = err.to_string();
        assert!(text.contains("nothing was written"), "{what}: {text}");
        assert!(!data.exists(), "{what}: the data dir was created");
    }

    let wrong = dir.path().join("wrong.key");
    write_key(&wrong, 0x33);
    let path = save(dir.path(), "good.backup", &bytes);
    let err = credvault::restore(&config_with_key(&target, &wrong), &path)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("wrong.key"), "names the file: {text}");
    assert!(
        text.contains("does not open the backup's keyring"),
        "{text}"
    );
    assert!(!data.exists(), "the data dir was created");

    // A root key file that does not exist is not made up either.
    let missing = dir.path().join("missing.key");
    let err = credvault::restore(&config_with_key(&target, &missing), &path)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing.key"), "{err}");
    assert!(!missing.exists() && !data.exists());

    // And the right key restores it.
    credvault::restore(&config_with_key(&target, &key), &path)
        .await
        .unwrap();
    let server = TestServer::start(config_with_key(&target, &key)).await;
    let mut c = server.client().await;
    c.resolve(resolve_request("acme", "two")).await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_non_empty_target_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("root.key");
    write_key(&key, 0x44);
    let path = save(
        dir.path(),
        "b.backup",
        &small_backup(dir.path(), &key).await,
    );
    let target = dir.path().join("target");
    // A server that started once has a keyring there: not empty.
    let server = TestServer::start(config_with_key(&target, &key)).await;
    let mut c = server.client().await;
    c.add(add_request("acme", "mine", api_key_credential()))
        .await
        .unwrap();
    server.stop().await.unwrap();

    let err = credvault::restore(&config_with_key(&target, &key), &path)
        .await
        .unwrap_err();
    assert!(err.is_not_empty(), "{err}");
    assert!(err.to_string().contains("not empty"), "{err}");

    let server = TestServer::start(config_with_key(&target, &key)).await;
    let mut c = server.client().await;
    c.resolve(resolve_request("acme", "mine")).await.unwrap();
    let e = c.resolve(resolve_request("acme", "one")).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_restore_cut_short_is_refused_at_start_and_finished_by_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("root.key");
    write_key(&key, 0x55);
    let bytes = small_backup(dir.path(), &key).await;
    let path = save(dir.path(), "b.backup", &bytes);
    let verified = credvault::backup::verify(&bytes).unwrap();

    // What a restore killed after its marker and one record leaves behind.
    let target = dir.path().join("target");
    let data = target.join("data");
    std::fs::create_dir_all(&data).unwrap();
    {
        let store = SledStore::open(&data, 1 << 20).unwrap();
        store
            .put_if_absent(b"meta/restoring", verified.sha256.to_vec())
            .await
            .unwrap();
        let (k, v) = verified.snapshot.records[0].clone();
        store.put_if_absent(&k, v).await.unwrap();
        store.flush().await.unwrap();
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = credvault::serve(listener, config_with_key(&target, &key), async {})
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("restore into this store was cut short"),
        "{err}"
    );

    // Another backup does not complete it...
    let other = save(
        dir.path(),
        "other.backup",
        &small_backup(&dir.path().join("x"), &key).await,
    );
    let err = credvault::restore(&config_with_key(&target, &key), &other)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another backup"), "{err}");
    // ...the same one does.
    let restored = credvault::restore(&config_with_key(&target, &key), &path)
        .await
        .unwrap();
    assert_eq!(restored.records, 2);
    let server = TestServer::start(config_with_key(&target, &key)).await;
    let mut c = server.client().await;
    for label in ["one", "two"] {
        c.resolve(resolve_request("acme", label)).await.unwrap();
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn backup_needs_an_admin_caller_of_every_owner() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.callers.push(caller(
        "acme-admin",
        "cvt_acme-admin-token-0000000000000000000000",
        &["admin", "list", "resolve"],
        &["acme"],
    ));
    let server = TestServer::start(config).await;
    let mut a = admin_client(
        server.channel().await,
        Bearer::new("cvt_acme-admin-token-0000000000000000000000").unwrap(),
    );
    let e = a.backup(pb::BackupRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let mut none = admin_client(server.channel().await, Bearer::none());
    let e = none.backup(pb::BackupRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    server.stop().await.unwrap();
}

/// The migration path: a backup of the sled store restores into an empty etcd prefix, and a
/// server on etcd serves every credential; a second restore into that prefix is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_backup_restores_into_etcd_and_serves_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let Some(etcd) = etcd::Etcd::start(&dir.path().join("etcd")) else {
        return;
    };
    let key = dir.path().join("root.key");
    write_key(&key, 0x66);
    let sled = config_with_key(&dir.path().join("sled"), &key);
    let server = TestServer::start(sled).await;
    let mut c = server.client().await;
    for i in 0..30 {
        let req = add_request("acme", &format!("m{i:02}"), workload::credential(i, 1));
        c.add(req).await.unwrap();
    }
    let path = save(
        dir.path(),
        "sled.backup",
        &backup_bytes(&mut test_admin(server.channel().await)).await,
    );
    server.stop().await.unwrap();

    let mut on_etcd = config_with_key(&dir.path().join("node"), &key);
    on_etcd.backend = credvault::config::Backend::Etcd;
    on_etcd.etcd.endpoints = vec![etcd.endpoint.clone()];
    on_etcd.etcd.prefix = "/migrated/".into();
    let restored = credvault::restore(&on_etcd, &path).await.unwrap();
    assert_eq!(restored.records, 30);
    let err = credvault::restore(&on_etcd, &path).await.unwrap_err();
    assert!(err.is_not_empty(), "{err}");

    let server = TestServer::start(on_etcd).await;
    let mut c = server.client().await;
    for i in 0..30 {
        let reply = c
            .resolve(resolve_request("acme", &format!("m{i:02}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply, workload::expected_resolve(i, 1, 1));
    }
    c.add(add_request("acme", "new-on-etcd", token_credential()))
        .await
        .unwrap();
    server.stop().await.unwrap();
}
