//! What survives a restart, and what the at-rest encryption refuses: a wrong or exposed master
//! key, a ciphertext moved onto another record, a tampered record, a deleted record.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use credvault::domain::{Label, Owner};
use credvault::store::SledStore;
use credvault::vault::record_key;
use credvault::ServeError;
use tonic::Code;

async fn add_some(server: &TestServer, n: usize) {
    let mut c = server.client().await;
    for i in 0..n {
        let cred = if i % 2 == 0 {
            token_credential()
        } else {
            api_key_credential()
        };
        c.add(add_request("acme", &format!("cred-{i:02}"), cred))
            .await
            .unwrap();
    }
}

/// Runs `edit` on the raw sled tree of a stopped server's data dir.
fn with_raw_tree(data_dir: &Path, edit: impl FnOnce(&sled::Tree)) {
    let store = SledStore::open(data_dir, 8 << 20).unwrap();
    edit(store.tree());
    store.tree().flush().unwrap();
}

fn key(owner: &str, label: &str) -> Vec<u8> {
    record_key(&Owner::parse(owner).unwrap(), &Label::parse(label).unwrap())
}

#[tokio::test]
async fn restart_on_same_data_dir_keeps_every_credential() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    add_some(&server, 20).await;
    server.stop().await.unwrap();

    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    for i in 0..20 {
        let r = c
            .resolve(resolve_request("acme", &format!("cred-{i:02}")))
            .await
            .unwrap()
            .into_inner();
        let expected = if i % 2 == 0 {
            AUTH_TOKEN
        } else {
            API_KEY_SECRET
        };
        assert_eq!(r.password, expected);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_root_key_refuses_to_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    add_some(&server, 1).await;
    server.stop().await.unwrap();

    let key_path = dir.path().join("data/master.key");
    fs::write(&key_path, [7u8; 32]).unwrap();
    let err = serve_once(config(dir.path())).await.unwrap_err();
    assert!(matches!(err, ServeError::WrongRootKey { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains(&key_path.display().to_string()), "{shown}");
    assert!(
        shown.contains("root key does not open this store's keyring"),
        "{shown}"
    );
}

#[tokio::test]
async fn master_key_file_rules_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("k");
    let mut cfg = config(dir.path());
    cfg.master_key_file = Some(key_path.clone());
    let err = serve_once(cfg.clone()).await.unwrap_err();
    assert!(
        err.to_string().contains("does not exist"),
        "an explicit key file is never invented: {err}"
    );

    fs::write(&key_path, [1u8; 32]).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = serve_once(cfg.clone()).await.unwrap_err();
    assert!(err.to_string().contains("must be 0600 or 0400"), "{err}");

    fs::write(&key_path, [1u8; 16]).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    let err = serve_once(cfg.clone()).await.unwrap_err();
    assert!(err.to_string().contains("exactly 32"), "{err}");

    // A symbolic link and a FIFO are refused, the FIFO without blocking startup (serve_once
    // gives up after 10 s).
    fs::write(&key_path, [1u8; 32]).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&key_path, &link).unwrap();
    let err = serve_once(credvault::Config {
        master_key_file: Some(link),
        ..cfg.clone()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let err = serve_once(credvault::Config {
        master_key_file: Some(fifo),
        ..cfg.clone()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");

    let server = TestServer::start(cfg).await;
    add_some(&server, 1).await;
    assert!(
        !dir.path().join("data/master.key").exists(),
        "default key not created"
    );
}

#[tokio::test]
async fn ciphertext_moved_or_altered_fails_to_open_and_is_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    c.add(add_request("acme", "a", token_credential()))
        .await
        .unwrap();
    c.add(add_request("acme", "b", api_key_credential()))
        .await
        .unwrap();
    c.add(add_request("acme", "c", api_key_credential()))
        .await
        .unwrap();
    c.add(add_request("evil", "a", api_key_credential()))
        .await
        .unwrap();
    server.stop().await.unwrap();

    with_raw_tree(&dir.path().join("data"), |tree| {
        let a = tree.get(key("acme", "a")).unwrap().unwrap();
        // Copy acme/a's record (its sealed credential) onto acme/b and onto another owner's key.
        tree.insert(key("acme", "b"), a.clone()).unwrap();
        tree.insert(key("evil", "a"), a).unwrap();
        // Flip the last byte of acme/c's sealed record: inside its tag.
        let mut c = tree.get(key("acme", "c")).unwrap().unwrap().to_vec();
        *c.last_mut().unwrap() ^= 0x01;
        tree.insert(key("acme", "c"), c).unwrap();
    });

    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    assert_eq!(
        c.resolve(resolve_request("acme", "a"))
            .await
            .unwrap()
            .into_inner()
            .password,
        AUTH_TOKEN
    );
    for (owner, label) in [("acme", "b"), ("evil", "a"), ("acme", "c")] {
        let err = c.resolve(resolve_request(owner, label)).await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::DataLoss,
            "{owner}/{label}: {}",
            err.message()
        );
        assert!(!err.message().contains(AUTH_TOKEN));
        assert!(
            err.message().contains("integrity check"),
            "{}",
            err.message()
        );
    }
}

#[tokio::test]
async fn delete_erases_the_record_and_its_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    c.add(add_request("acme", "gone", token_credential()))
        .await
        .unwrap();
    c.add(add_request("acme", "kept", api_key_credential()))
        .await
        .unwrap();
    server.stop().await.unwrap();
    let mut sealed = Vec::new();
    with_raw_tree(&dir.path().join("data"), |tree| {
        sealed = tree.get(key("acme", "gone")).unwrap().unwrap().to_vec();
    });

    let server = TestServer::start(config(dir.path())).await;
    server
        .client()
        .await
        .delete(credvault::proto::v1::DeleteRequest {
            owner: "acme".into(),
            label: "gone".into(),
        })
        .await
        .unwrap();
    server.stop().await.unwrap();

    with_raw_tree(&dir.path().join("data"), |tree| {
        assert!(tree.get(key("acme", "gone")).unwrap().is_none());
        let tail = &sealed[sealed.len() - 32..];
        for entry in tree.iter() {
            let (_, v) = entry.unwrap();
            assert!(
                !v.windows(tail.len()).any(|w| w == tail),
                "ciphertext still in the tree"
            );
        }
        assert!(tree.get(key("acme", "kept")).unwrap().is_some());
    });
}

/// Runs `serve` expecting it to fail at startup (it returns before serving).
async fn serve_once(cfg: credvault::Config) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        credvault::serve(listener, cfg, std::future::ready(())),
    )
    .await
    .expect("serve returns")
}
