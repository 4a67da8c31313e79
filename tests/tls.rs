//! TLS and mTLS over real gRPC with certificates made here (rcgen): a client certificate's URI
//! SAN names its caller; an expired, untrusted or missing (when required) client certificate is
//! refused at the handshake; plaintext does not reach a TLS port; and plaintext off loopback is
//! refused at start.

mod common;
#[path = "common/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use credvault::config::ClientAuth;
use pki::{Ca, Pair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

const SENDER_ID: &str = "spiffe://campaigns/sender";

struct Pki {
    _dir: tempfile::TempDir,
    ca: Ca,
    server: Pair,
    sender: Pair,
    expired: Pair,
    stranger: Pair,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let other_ca = Ca::new(dir.path(), "other-ca");
    Pki {
        server: ca.issue(dir.path(), "server", &["localhost", "127.0.0.1"], false),
        sender: ca.issue(dir.path(), "sender", &[SENDER_ID], false),
        expired: ca.issue(dir.path(), "expired", &[SENDER_ID], true),
        stranger: other_ca.issue(dir.path(), "stranger", &[SENDER_ID], false),
        ca,
        _dir: dir,
    }
}

async fn server(pki: &Pki, dir: &Path, client_auth: ClientAuth) -> TestServer {
    let mut c = config(dir);
    c.tls.cert_file = Some(pki.server.cert_file.clone());
    c.tls.key_file = Some(pki.server.key_file.clone());
    c.tls.client_ca_file = Some(pki.ca.cert_file.clone());
    c.tls.client_auth = client_auth;
    let sender = credvault::auth::CallerSpec {
        name: "sender".into(),
        cert_identity: Some(SENDER_ID.into()),
        scopes: vec!["resolve".into()],
        owners: vec!["acme".into()],
        ..Default::default()
    };
    c.callers.push(sender.check().unwrap());
    TestServer::start(c).await
}

/// A TLS channel trusting the test CA, presenting `client` if given.
async fn tls_channel(
    addr: SocketAddr,
    ca_file: &Path,
    client: Option<&Pair>,
) -> Result<Channel, tonic::transport::Error> {
    let read = |p: &Path| std::fs::read(p).unwrap();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca_file)))
        .domain_name("localhost");
    if let Some(pair) = client {
        tls = tls.identity(Identity::from_pem(
            read(&pair.cert_file),
            read(&pair.key_file),
        ));
    }
    Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
        .unwrap()
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// Whether a Resolve as `client` over TLS gets an answer from the vault (any status but the
/// transport's own).
async fn answered(addr: SocketAddr, pki: &Pki, client: Option<&Pair>) -> Result<(), String> {
    let channel = tls_channel(addr, &pki.ca.cert_file, client)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut c = credvault::proto::v1::credential_vault_client::CredentialVaultClient::new(channel);
    match c.resolve(resolve_request("acme", "prod")).await {
        Ok(_) => Ok(()),
        Err(s) if matches!(s.code(), Code::Unavailable | Code::Unknown | Code::Internal) => {
            Err(format!("{s:?}"))
        }
        Err(s) => Err(format!("answered {:?}: {}", s.code(), s.message())),
    }
}

#[tokio::test]
async fn a_client_certificate_names_its_caller_and_bad_ones_are_refused() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let server = server(&pki, dir.path(), ClientAuth::Optional).await;
    // Stored over TLS by the token caller (optional mTLS: no client certificate needed).
    let channel = tls_channel(server.addr, &pki.ca.cert_file, None)
        .await
        .unwrap();
    client_for(channel)
        .add(add_request("acme", "prod", token_credential()))
        .await
        .unwrap();

    // The sender's certificate is its caller: Resolve of acme, nothing else.
    let channel = tls_channel(server.addr, &pki.ca.cert_file, Some(&pki.sender))
        .await
        .unwrap();
    let mut sender =
        credvault::proto::v1::credential_vault_client::CredentialVaultClient::new(channel);
    let resolved = sender
        .resolve(resolve_request("acme", "prod"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.password, AUTH_TOKEN);
    let e = sender
        .resolve(resolve_request("other", "prod"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = sender
        .list(credvault::proto::v1::ListRequest {
            owner: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // The CLI over mTLS: the certificate is the caller, no token file needed.
    let args: Vec<String> = [
        "resolve",
        "acme",
        "prod",
        "-o",
        "json",
        "--addr",
        &format!("https://localhost:{}", server.addr.port()),
        "--ca-file",
        pki.ca.cert_file.to_str().unwrap(),
        "--cert-file",
        pki.sender.cert_file.to_str().unwrap(),
        "--key-file",
        pki.sender.key_file.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_credvault"))
            .args(&args)
            .env_remove("CREDVAULT_TOKEN_FILE")
            .env("CREDVAULT_DATA_DIR", "/nonexistent")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(AUTH_TOKEN));

    // Without a certificate or a token: no caller.
    let err = answered(server.addr, &pki, None).await.unwrap_err();
    assert!(err.contains("Unauthenticated"), "{err}");
    // An expired certificate, or one from another CA: refused at the handshake.
    for bad in [&pki.expired, &pki.stranger] {
        let err = answered(server.addr, &pki, Some(bad)).await.unwrap_err();
        assert!(
            !err.starts_with("answered"),
            "a bad certificate got an answer: {err}"
        );
    }
    // Plaintext gRPC does not reach a TLS port.
    let plain = Endpoint::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(channel) = plain {
        let e = client_for(channel)
            .resolve(resolve_request("acme", "prod"))
            .await
            .unwrap_err();
        assert!(
            matches!(e.code(), Code::Unavailable | Code::Unknown | Code::Internal),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn required_mtls_refuses_a_client_without_a_certificate() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let server = server(&pki, dir.path(), ClientAuth::Required).await;
    let err = answered(server.addr, &pki, None).await.unwrap_err();
    assert!(
        !err.starts_with("answered"),
        "no certificate got an answer: {err}"
    );
    // With one, the vault answers (NOT_FOUND: nothing stored).
    let err = answered(server.addr, &pki, Some(&pki.sender))
        .await
        .unwrap_err();
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn plaintext_off_loopback_is_refused_unless_allowed() {
    let mut c = credvault::Config::with_data_dir("unused");
    c.listen = "0.0.0.0:50051".parse().unwrap();
    let e = c.check().unwrap_err();
    assert_eq!(e.place, "server.listen");
    assert!(e.reason.contains("TLS is off"), "{e}");
    assert!(e.reason.contains("allow_insecure_plaintext"), "{e}");
    c.allow_insecure_plaintext = true;
    c.check().unwrap();
    c.allow_insecure_plaintext = false;
    c.tls.cert_file = Some("cert.pem".into());
    c.tls.key_file = Some("key.pem".into());
    c.check().unwrap();
    c.tls.key_file = None;
    assert!(c.check().is_err(), "a certificate without its key");
}

#[tokio::test]
async fn a_reload_swaps_the_server_certificate_for_new_connections_only() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let other_ca = Ca::new(dir.path(), "next-ca");
    let next = other_ca.issue(dir.path(), "next", &["localhost"], false);
    let mut c = config(dir.path());
    c.tls.cert_file = Some(pki.server.cert_file.clone());
    c.tls.key_file = Some(pki.server.key_file.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reload, reloads) = tokio::sync::watch::channel(None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(credvault::serve_reloading(
        listener,
        c.clone(),
        async {
            let _ = stopped.await;
        },
        reloads,
    ));
    let health = |channel: Channel| async move {
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .map(drop)
    };
    let old = tls_channel(addr, &pki.ca.cert_file, None).await.unwrap();
    health(old.clone()).await.unwrap();

    c.tls.cert_file = Some(next.cert_file.clone());
    c.tls.key_file = Some(next.key_file.clone());
    reload.send(Some(c)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tls_channel(addr, &other_ca.cert_file, None).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        tls_channel(addr, &pki.ca.cert_file, None).await.is_err(),
        "a new connection still got the old certificate"
    );
    health(old)
        .await
        .expect("the established connection was dropped");
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
