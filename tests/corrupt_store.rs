//! A damaged store: a record whose bytes do not decode (DATA_LOSS for that record, the others
//! fine), and damaged sled files (a clear startup error, or a server that serves what it can and
//! says DATA_LOSS; never a panic, never a wrong answer).

#[path = "common/child.rs"]
mod child;
mod common;
#[path = "common/workload.rs"]
mod workload;

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use child::ChildServer;
use common::TestServer;
use credvault::domain::{Label, Owner};
use credvault::proto::v1 as pb;
use credvault::store::SledStore;
use credvault::vault::record_key;
use tonic::Code;

const OWNER: &str = "corrupt";

/// Writes raw bytes under `label`'s key while the server is stopped.
fn put_raw(data_dir: &Path, label: &str, bytes: Vec<u8>) {
    let store = SledStore::open(data_dir, 8 << 20).unwrap();
    let key = record_key(&Owner::parse(OWNER).unwrap(), &Label::parse(label).unwrap());
    store.tree().insert(key, bytes).unwrap();
    store.tree().flush().unwrap();
}

fn get_raw(data_dir: &Path, label: &str) -> Vec<u8> {
    let store = SledStore::open(data_dir, 8 << 20).unwrap();
    let key = record_key(&Owner::parse(OWNER).unwrap(), &Label::parse(label).unwrap());
    store.tree().get(key).unwrap().unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_records_are_data_loss_and_the_rest_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(dir.path());
    let data_dir = config.data_dir.clone();
    let server = TestServer::start(config.clone()).await;
    let mut client = server.client().await;
    for label in ["a-good", "b-garbage", "c-tampered", "d-good"] {
        let add = common::add_request(OWNER, label, common::token_credential());
        client.add(add).await.unwrap();
    }
    drop(client);
    server.stop().await.unwrap();

    // b: bytes that are not a record at all. c: a record whose ciphertext has one bit flipped.
    put_raw(
        &data_dir,
        "b-garbage",
        b"\xff\xfe not a record \x00\x01".to_vec(),
    );
    let mut rec = get_raw(&data_dir, "c-tampered");
    *rec.last_mut().unwrap() ^= 1;
    put_raw(&data_dir, "c-tampered", rec);

    let server = TestServer::start(config).await;
    let mut client = server.client().await;
    for label in ["a-good", "d-good"] {
        let got = client
            .resolve(common::resolve_request(OWNER, label))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.password, common::AUTH_TOKEN);
    }
    for label in ["b-garbage", "c-tampered"] {
        let err = client
            .resolve(common::resolve_request(OWNER, label))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DataLoss, "{label}: {err:?}");
        assert!(
            err.message().contains(label) && err.message().contains("unreadable"),
            "{label}: unclear message {:?}",
            err.message()
        );
        assert!(
            !err.message().contains("decode"),
            "internals leak: {}",
            err.message()
        );
    }

    // List opens every record (its metadata is sealed with its secret): a page holding an
    // unreadable record fails with DATA_LOSS naming it, so the operator knows which label to
    // delete or restore.
    let list = || pb::ListRequest {
        owner: OWNER.into(),
        ..Default::default()
    };
    let err = client.list(list()).await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    assert!(err.message().contains("b-garbage"), "{}", err.message());
    // The unreadable record can be deleted, and then the next one is named.
    let deleted = client
        .delete(pb::DeleteRequest {
            owner: OWNER.into(),
            label: "b-garbage".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        deleted.into_inner().version,
        0,
        "version of an unreadable record"
    );
    let err = client.list(list()).await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    assert!(err.message().contains("c-tampered"), "{}", err.message());
    // A replace overwrites a tampered record (its version restarts at 1: the old one is
    // unknowable): recovery without a delete.
    let mut add = common::add_request(OWNER, "c-tampered", common::api_key_credential());
    add.replace = true;
    let meta = client
        .add(add)
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert_eq!(meta.version, 1);
    let got = client
        .resolve(common::resolve_request(OWNER, "c-tampered"))
        .await
        .unwrap();
    assert_eq!(got.into_inner().password, common::API_KEY_SECRET);
    let labels: Vec<_> = client
        .list(list())
        .await
        .unwrap()
        .into_inner()
        .credentials
        .into_iter()
        .map(|m| m.label)
        .collect();
    assert_eq!(labels, ["a-good", "c-tampered", "d-good"]);
    server.stop().await.unwrap();
}

/// How the sled files get damaged while the server is stopped.
#[derive(Debug, Clone, Copy)]
enum Damage {
    TruncateDbHalf,
    TruncateDbEmpty,
    OverwriteDbMiddle,
    OverwriteDbStart,
    GarbageConf,
    RemoveConf,
}

fn damage(data_dir: &Path, how: Damage) {
    let db = data_dir.join("db");
    let conf = data_dir.join("conf");
    let len = fs::metadata(&db).unwrap().len();
    match how {
        Damage::TruncateDbHalf => OpenOptions::new()
            .write(true)
            .open(&db)
            .unwrap()
            .set_len(len / 2)
            .unwrap(),
        Damage::TruncateDbEmpty => OpenOptions::new()
            .write(true)
            .open(&db)
            .unwrap()
            .set_len(0)
            .unwrap(),
        Damage::OverwriteDbMiddle => {
            let mut f = OpenOptions::new().write(true).open(&db).unwrap();
            f.seek(SeekFrom::Start(len / 3)).unwrap();
            let noise: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
                .collect();
            f.write_all(&noise).unwrap();
        }
        Damage::OverwriteDbStart => {
            let mut f = OpenOptions::new().write(true).open(&db).unwrap();
            f.write_all(&[0xa5; 4096]).unwrap();
        }
        Damage::GarbageConf => fs::write(&conf, b"segment_size: banana\x00\xff").unwrap(),
        Damage::RemoveConf => fs::remove_file(&conf).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_sled_files_give_a_clear_error_or_honest_answers_never_a_panic() {
    const LABELS: usize = 40;
    for how in [
        Damage::TruncateDbHalf,
        Damage::TruncateDbEmpty,
        Damage::OverwriteDbMiddle,
        Damage::OverwriteDbStart,
        Damage::GarbageConf,
        Damage::RemoveConf,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let data = child::data_dir(dir.path());
        let mut server = ChildServer::start(&data);
        let mut client = server.client().await;
        for i in 0..LABELS {
            let add = pb::AddRequest {
                owner: OWNER.into(),
                label: format!("label-{i:03}"),
                credential: Some(workload::credential(i, i as u64 + 1)),
                ..Default::default()
            };
            client.add(add).await.unwrap();
        }
        drop(client);
        server.sigterm();
        let exited = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(15)));
        assert!(
            exited.is_some_and(|s| s.success()),
            "clean stop before damage"
        );

        damage(&data, how);
        match ChildServer::try_start(&data) {
            Err(failure) => {
                // Refused to start: exit code 1 with a message naming the store, not a panic.
                let log = failure.log;
                assert!(
                    !log.contains("panicked"),
                    "{how:?}: panic at startup:\n{log}"
                );
                assert_eq!(
                    failure.status.and_then(|s| s.code()),
                    Some(1),
                    "{how:?}: unclean exit:\n{log}"
                );
                assert!(
                    log.contains("store"),
                    "{how:?}: unclear startup error:\n{log}"
                );
                let reason = log.lines().last().unwrap_or_default().to_owned();
                println!("{how:?}: refuses to start: {reason}");
            }
            Ok(server) => {
                // An emptied or headless log must not come up as an empty vault.
                assert!(
                    !matches!(
                        how,
                        Damage::TruncateDbEmpty | Damage::OverwriteDbStart | Damage::GarbageConf
                    ),
                    "{how:?}: started as if nothing happened:\n{}",
                    server.log()
                );
                // Serving: every answer is the truth or an honest error.
                let mut client = server.client().await;
                let (mut intact, mut missing, mut lost) = (0, 0, 0);
                for i in 0..LABELS {
                    let label = format!("label-{i:03}");
                    match client.resolve(common::resolve_request(OWNER, &label)).await {
                        Ok(got) => {
                            let want = workload::expected_resolve(i, i as u64 + 1, 1);
                            assert_eq!(got.into_inner(), want, "{how:?}: wrong answer");
                            intact += 1;
                        }
                        Err(s) if s.code() == Code::NotFound => missing += 1,
                        Err(s) if s.code() == Code::DataLoss => lost += 1,
                        Err(s) => panic!("{how:?}: {label}: {s:?}"),
                    }
                }
                let listed = client
                    .list(pb::ListRequest {
                        owner: OWNER.into(),
                        page_size: 500,
                        page_token: String::new(),
                    })
                    .await;
                let listed = match listed {
                    Ok(page) => format!("{} listed", page.into_inner().credentials.len()),
                    Err(s) => {
                        assert_eq!(s.code(), Code::DataLoss, "{how:?}: List {s:?}");
                        "List DATA_LOSS".into()
                    }
                };
                let log = server.log();
                assert!(
                    !log.contains("panicked"),
                    "{how:?}: server panicked:\n{log}"
                );
                if matches!(how, Damage::RemoveConf) {
                    assert_eq!(intact, LABELS, "sled rebuilds its conf file");
                }
                println!(
                    "{how:?}: serves: {intact} intact, {missing} NOT_FOUND, {lost} DATA_LOSS, {listed}"
                );
            }
        }
    }
}
