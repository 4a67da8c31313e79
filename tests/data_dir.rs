//! The data dir as the real binary leaves it: private to its user, safe to restart after a crash
//! during the very first start, and held by one process at a time.

#[path = "common/child.rs"]
mod child;
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use child::ChildServer;
use credvault::store::SledStore;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every entry below `dir` (the dir included), with its mode.
fn modes(dir: &Path, out: &mut Vec<(String, u32)>) {
    out.push((dir.display().to_string(), mode(dir)));
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            modes(&e.path(), out);
        } else {
            out.push((e.path().display().to_string(), mode(&e.path())));
        }
    }
}

fn assert_private(dir: &Path) {
    let mut all = Vec::new();
    modes(dir, &mut all);
    let open: Vec<_> = all.iter().filter(|(_, m)| m & 0o077 != 0).collect();
    assert!(open.is_empty(), "readable by group or others: {open:?}");
    assert!(
        all.len() >= 4,
        "expected sled's files, the key and the marker: {all:?}"
    );
}

/// One credential stored through the running binary.
async fn add_one(server: &ChildServer) {
    let add = common::add_request("acme", "prod", common::token_credential());
    server.client().await.add(add).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_in_the_data_dir_is_readable_by_others() {
    let root = tempfile::tempdir().unwrap();
    let data = child::data_dir(root.path());
    let mut server = ChildServer::start(&data);
    add_one(&server).await;
    assert_eq!(mode(&data), 0o700);
    assert_private(&data);
    server.kill9();

    // A data dir someone opened up (and files sled made with a 0644 umask) is tightened at start.
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(data.join("db"), fs::Permissions::from_mode(0o644)).unwrap();
    let server = ChildServer::start(&data);
    assert_private(&data);
    assert!(
        server.log().contains("tightened permissions"),
        "no log line says what was changed:\n{}",
        server.log()
    );
}

/// A kill between sled creating its files and the keyring reaching disk leaves sled's files and no
/// keyring. That store holds nothing: it is new, not damaged, and the next start must succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_the_first_start_does_not_brick_the_data_dir() {
    let root = tempfile::tempdir().unwrap();
    let data = child::data_dir(root.path());
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
    drop(SledStore::open(&data, 1 << 20).unwrap());
    assert!(data.join("db").exists() && data.join("conf").exists());

    let server = ChildServer::start(&data);
    add_one(&server).await;
}

/// Credentials without a keyring are damage (the keyring went missing), whatever the marker says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_a_keyring_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = child::data_dir(root.path());
    let mut server = ChildServer::start(&data);
    add_one(&server).await;
    server.sigterm();
    assert!(tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(15))).is_some());

    let store = SledStore::open(&data, 1 << 20).unwrap();
    store.tree().remove(b"meta/keyring").unwrap();
    store.tree().flush().unwrap();
    drop(store);
    fs::remove_file(data.join("credvault.initialized")).unwrap();
    let failure = ChildServer::try_start(&data).err().expect("must refuse");
    assert_eq!(failure.status.and_then(|s| s.code()), Some(1));
    assert!(
        failure.log.contains("keyring record is gone"),
        "{}",
        failure.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_data_dir_says_so_within_seconds() {
    let root = tempfile::tempdir().unwrap();
    let data = child::data_dir(root.path());
    let _first = ChildServer::start(&data);
    let started = Instant::now();
    let failure = ChildServer::try_start(&data)
        .err()
        .expect("the second instance must not start");
    let took = started.elapsed();
    assert_eq!(failure.status.and_then(|s| s.code()), Some(1));
    let expected = format!(
        "data dir {} is in use by another credvault process",
        data.display()
    );
    assert!(failure.log.contains(&expected), "{}", failure.log);
    assert!(!failure.log.contains("Os {"), "raw error: {}", failure.log);
    // sled's lock is waited for 3 s (a restart in place may race the previous holder).
    assert!(took < Duration::from_secs(20), "took {took:?}");
}
