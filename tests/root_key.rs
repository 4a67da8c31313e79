//! `keys rotate-root`: the keyring resealed under a new root key in one compare-and-swap. Every
//! record stays readable; a start with the old key is refused naming both keys; and SIGKILL at
//! any moment of a rotation leaves a store that starts with exactly one of the two keys.

#[path = "common/child.rs"]
mod child;
mod common;
#[path = "common/workload.rs"]
mod workload;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use child::{ChildServer, Launch};
use common::*;
use credvault::client::{admin_client, Bearer};
use credvault::proto::v1 as pb;
use tonic::Code;

fn write_key(path: &Path, byte: u8) -> Vec<u8> {
    let key = vec![byte; 32];
    std::fs::write(path, &key).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    key
}

fn rotate(key: &[u8]) -> pb::RotateRootKeyRequest {
    pb::RotateRootKeyRequest {
        new_root_key: key.to_vec(),
    }
}

#[tokio::test]
async fn rotate_root_reseals_the_keyring_and_the_old_key_no_longer_opens_it() {
    let logs = common::log_capture::captured("trace");
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.key"), dir.path().join("new.key"));
    write_key(&old, 0x01);
    // A key whose every form is easy to search the logs for.
    let new_bytes: Vec<u8> = (0xa0..0xc0).collect();
    std::fs::write(&new, &new_bytes).unwrap();
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = config(dir.path());
    config.master_key_file = Some(old.clone());
    let server = TestServer::start(config.clone()).await;
    let mut c = server.client().await;
    let mut a = admin_client(server.channel().await, Bearer::new(TEST_TOKEN).unwrap());
    c.add(add_request("acme", "kept", token_credential()))
        .await
        .unwrap();
    let before = a
        .get_key_status(pb::GetKeyStatusRequest {})
        .await
        .unwrap()
        .into_inner();

    let e = a.rotate_root_key(rotate(&[9; 31])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = a.rotate_root_key(rotate(&[0x01; 32])).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "the key in use: {e:?}");

    let reply = a
        .rotate_root_key(rotate(&new_bytes))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.previous_root_key_fingerprint,
        before.root_key_fingerprint
    );
    assert_ne!(reply.root_key_fingerprint, before.root_key_fingerprint);
    assert!(reply.keyring_version > before.keyring_version);
    // The server goes on with the new key: reads, and writes that change the keyring.
    c.resolve(resolve_request("acme", "kept")).await.unwrap();
    a.rotate_data_key(pb::RotateDataKeyRequest {})
        .await
        .unwrap();
    c.add(add_request("acme", "after", api_key_credential()))
        .await
        .unwrap();
    let now = a
        .get_key_status(pb::GetKeyStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.root_key_fingerprint, reply.root_key_fingerprint);
    server.stop().await.unwrap();

    // The old key no longer opens the store; the message names both keys.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = credvault::serve(listener, config.clone(), async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("old.key"), "{err}");
    assert!(err.contains("does not open this store's keyring"), "{err}");
    assert!(err.contains(&reply.root_key_fingerprint), "{err}");
    assert!(err.contains(&before.root_key_fingerprint), "{err}");

    config.master_key_file = Some(new);
    let server = TestServer::start(config).await;
    let mut c = server.client().await;
    for label in ["kept", "after"] {
        c.resolve(resolve_request("acme", label)).await.unwrap();
    }
    server.stop().await.unwrap();

    // The root key sent over gRPC reached no log line, in any form.
    use base64::Engine as _;
    let text = common::log_capture::text(logs);
    assert!(text.contains("RotateRootKey"), "the capture works");
    let hex: String = new_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&new_bytes);
    let debug = format!("{:?}", &new_bytes[..8]);
    let escaped: String = new_bytes[..6]
        .iter()
        .map(|b| format!("\\x{b:02x}"))
        .collect();
    for needle in [&hex[..24], &b64[..24], &debug[..debug.len() - 1], &escaped] {
        assert!(
            !text.contains(needle),
            "the root key reached the logs as {needle}"
        );
    }
}

fn launch(key: &Path) -> Launch {
    Launch {
        env: vec![(
            "CREDVAULT_MASTER_KEY_FILE".into(),
            key.display().to_string(),
        )],
        ..Launch::default()
    }
}

/// SIGKILL at a random moment of a root-key rotation, round after round: each time the store
/// starts with exactly one of the two keys (never neither, never both), and every credential
/// resolves field for field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_rotate_root_leaves_a_store_that_starts_with_one_of_the_two_keys() {
    const ROUNDS: u64 = 10;
    let dir = tempfile::tempdir().unwrap();
    let data = child::data_dir(dir.path());
    let key_path = |i: u64| -> PathBuf { dir.path().join(format!("root-{i}.key")) };
    write_key(&key_path(0), 0x10);
    let mut current = 0;
    let mut server = ChildServer::start_with(&data, &launch(&key_path(current)));
    let token = server.admin_token();
    let mut c = server.client().await;
    for i in 0..20 {
        let req = add_request("acme", &format!("c{i:02}"), workload::credential(i, 1));
        c.add(req).await.unwrap();
    }
    let mut rng = workload::Rng::from_os();
    let (mut landed, mut not_landed) = (0, 0);
    for round in 1..=ROUNDS {
        let next = round;
        let bytes = write_key(&key_path(next), 0x10 + next as u8);
        let mut a = admin_client(server.channel().await, Bearer::new(&token).unwrap());
        let call = tokio::spawn(async move { a.rotate_root_key(rotate(&bytes)).await });
        tokio::time::sleep(Duration::from_micros(rng.below(800))).await;
        server.kill9();
        let _ = call.await;

        let with_old = ChildServer::try_start_with(&data, &launch(&key_path(current)));
        let old_ok = with_old.is_ok();
        drop(with_old);
        let with_new = ChildServer::try_start_with(&data, &launch(&key_path(next)));
        let new_ok = with_new.is_ok();
        if let Err(failure) = &with_new {
            assert!(
                failure.log.contains("does not open this store's keyring"),
                "round {round}: the new key failed for another reason:\n{}",
                failure.log
            );
        }
        assert!(
            old_ok != new_ok,
            "round {round}: old key starts: {old_ok}, new key starts: {new_ok}"
        );
        server = match with_new {
            Ok(s) => {
                landed += 1;
                current = next;
                s
            }
            Err(_) => {
                not_landed += 1;
                ChildServer::start_with(&data, &launch(&key_path(current)))
            }
        };
        let mut c = server.client().await;
        for i in 0..20 {
            let reply = c
                .resolve(resolve_request("acme", &format!("c{i:02}")))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(reply, workload::expected_resolve(i, 1, 1), "round {round}");
        }
    }
    println!("{ROUNDS} rounds: the rotation had landed in {landed}, not in {not_landed}");
}
