//! The etcd store over a secured etcd (real etcd processes on loopback): TLS with client
//! certificates (`--client-cert-auth`), and etcd's own username/password auth, whose token is
//! renewed by itself when etcd no longer knows it.

mod common;
#[path = "common/etcd.rs"]
mod etcd;
#[path = "common/pki.rs"]
mod pki;

use std::time::Duration;

use common::*;
use credvault::config::EtcdConfig;
use credvault::store::{EtcdStore, Store};

fn serve_on(dir: &std::path::Path, etcd: EtcdConfig) -> credvault::config::Config {
    let mut c = config(&dir.join("data"));
    c.backend = credvault::config::Backend::Etcd;
    c.etcd = etcd;
    c
}

async fn add_then_resolve(server: &TestServer) {
    let mut client = server.client().await;
    client
        .add(add_request("acme", "sms", token_credential()))
        .await
        .unwrap();
    let got = client
        .resolve(resolve_request("acme", "sms"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.password, AUTH_TOKEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new(dir.path(), "etcd-ca");
    let server = ca.issue(
        dir.path(),
        "etcd-server",
        &["127.0.0.1", "localhost"],
        false,
    );
    let client = ca.issue(dir.path(), "credvault-client", &["credvault"], false);
    let Some(etcd) = etcd::Etcd::start_tls(
        &dir.path().join("etcd"),
        &server.cert_file,
        &server.key_file,
        &ca.cert_file,
    ) else {
        return;
    };
    assert!(etcd.endpoint.starts_with("https://"));
    let tls = EtcdConfig {
        ca_file: Some(ca.cert_file.clone()),
        cert_file: Some(client.cert_file.clone()),
        key_file: Some(client.key_file.clone()),
        ..etcd::store_config(std::slice::from_ref(&etcd.endpoint), "/credvault/")
    };
    let srv = TestServer::start(serve_on(dir.path(), tls.clone())).await;
    add_then_resolve(&srv).await;

    // Without the client certificate etcd refuses the connection: the store says so.
    let bare = EtcdStore::connect(&EtcdConfig {
        cert_file: None,
        key_file: None,
        request_timeout: Duration::from_millis(500),
        ..tls.clone()
    })
    .await
    .unwrap();
    assert!(bare.get(b"x").await.is_err());
    // Nor does a CA that did not sign etcd's certificate get through.
    let other = pki::Ca::new(dir.path(), "other-ca");
    let wrong = EtcdStore::connect(&EtcdConfig {
        ca_file: Some(other.cert_file.clone()),
        request_timeout: Duration::from_millis(500),
        ..tls
    })
    .await
    .unwrap();
    assert!(wrong.get(b"x").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etcd_auth_a_token_etcd_no_longer_knows_is_renewed() {
    let logs = common::log_capture::captured("trace");
    let dir = tempfile::tempdir().unwrap();
    let Some(mut etcd) = etcd::Etcd::start_with_auth(&dir.path().join("etcd"), "etcd-pw-4242", 1)
    else {
        return;
    };
    let password_file = dir.path().join("etcd.password");
    std::fs::write(&password_file, "etcd-pw-4242\n").unwrap();
    let auth = EtcdConfig {
        username: "root".into(),
        password_file: Some(password_file),
        ..etcd::store_config(std::slice::from_ref(&etcd.endpoint), "/credvault/")
    };
    let srv = TestServer::start(serve_on(dir.path(), auth.clone())).await;
    add_then_resolve(&srv).await;
    // etcd's tokens live in its memory: a restarted etcd refuses the one held. The next calls
    // renew it and succeed.
    etcd.kill();
    etcd.restart();
    let got = srv
        .client()
        .await
        .resolve(resolve_request("acme", "sms"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.password, AUTH_TOKEN);
    let store = EtcdStore::connect(&auth).await.unwrap();
    assert!(store.put_if_absent(b"k", b"v".to_vec()).await.unwrap());
    etcd.kill();
    etcd.restart();
    assert_eq!(store.get(b"k").await.unwrap().as_deref(), Some(&b"v"[..]));

    // A wrong password is refused at connect, naming the user, never the password.
    let wrong_file = dir.path().join("wrong.password");
    std::fs::write(&wrong_file, "not-the-password\n").unwrap();
    let e = EtcdStore::connect(&EtcdConfig {
        password_file: Some(wrong_file),
        ..auth.clone()
    })
    .await
    .err()
    .expect("a wrong password is refused")
    .to_string();
    assert!(e.contains("refused the login of user `root`"), "{e}");
    assert!(!e.contains("not-the-password"), "{e}");

    // No login against an etcd with auth: a clear refusal, not a retry loop.
    let anonymous = EtcdStore::connect(&EtcdConfig {
        username: String::new(),
        password_file: None,
        ..auth
    })
    .await
    .unwrap();
    let e = anonymous.get(b"k").await.unwrap_err().to_string();
    assert!(e.contains("user name is empty"), "{e}");

    // Every crate's TRACE output of all this (logins, renewals, h2 frames) holds no password.
    let text = common::log_capture::text(logs);
    assert!(text.contains("etcd"), "the capture caught nothing");
    assert!(
        !text.contains("etcd-pw-4242"),
        "the etcd password reached the logs"
    );
}
