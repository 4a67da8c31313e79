//! No secret ever reaches a log line (captured at TRACE for every crate, tonic/h2/hyper included),
//! an error message, or a Debug string. Its own test binary: it installs the global subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use credvault::proto::v1 as pb;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

const SECRETS: [&str; 5] = [
    AUTH_TOKEN,
    API_KEY_SECRET,
    "not-hex-but-secret-zzzzzzzzzzzzz",
    TEST_TOKEN,
    // A caller's token that no caller has.
    "cvt_an-unknown-callers-token-zzzzzzzzzzzzzz",
];

#[tokio::test]
async fn secrets_never_reach_logs_errors_or_debug() {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(logs.clone())
        .with_ansi(false)
        .init();

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    let mut errors = Vec::new();

    c.add(add_request("acme", "tok", token_credential()))
        .await
        .unwrap();
    c.add(add_request("acme", "key", api_key_credential()))
        .await
        .unwrap();
    let mut replace = add_request("acme", "key", api_key_credential());
    replace.replace = true;
    c.add(replace).await.unwrap();
    errors.push(
        c.add(add_request("acme", "tok", token_credential()))
            .await
            .unwrap_err(),
    );
    let mut bad = token_credential();
    bad.auth = Some(pb::twilio_credential::Auth::AuthToken(pb::AuthToken {
        auth_token: SECRETS[2].into(),
    }));
    errors.push(c.add(add_request("acme", "bad", bad)).await.unwrap_err());
    let mut bad = api_key_credential();
    bad.account_sid = "AC-nope".into();
    errors.push(c.add(add_request("acme", "bad", bad)).await.unwrap_err());
    c.list(pb::ListRequest {
        owner: "acme".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let resolved = c
        .resolve(resolve_request("acme", "tok"))
        .await
        .unwrap()
        .into_inner();
    let resolved_key = c
        .resolve(resolve_request("acme", "key"))
        .await
        .unwrap()
        .into_inner();
    let mut require_valid = resolve_request("acme", "tok");
    require_valid.require_valid = true;
    errors.push(c.resolve(require_valid).await.unwrap_err());
    c.delete(pb::DeleteRequest {
        owner: "acme".into(),
        label: "tok".into(),
    })
    .await
    .unwrap();
    // Refused callers: an unknown token, and the bootstrap-style header without a scheme.
    let mut stranger = client_with(server.channel().await, SECRETS[4]);
    errors.push(
        stranger
            .resolve(resolve_request("acme", "key"))
            .await
            .unwrap_err(),
    );
    let mut raw = tonic::Request::new(resolve_request("acme", "key"));
    raw.metadata_mut()
        .insert("authorization", SECRETS[4].parse().unwrap());
    let mut plain = credvault::proto::v1::credential_vault_client::CredentialVaultClient::new(
        server.channel().await,
    );
    errors.push(plain.resolve(raw).await.unwrap_err());
    server.stop().await.unwrap();

    let debug = format!(
        "{:?} {:?} {:?} {:?} {:?}",
        resolved,
        resolved_key,
        credvault::client::Bearer::new(TEST_TOKEN).unwrap(),
        add_request("acme", "x", token_credential()),
        add_request("acme", "x", api_key_credential())
    );
    let audit = std::fs::read_to_string(dir.path().join("data/audit.log")).unwrap();
    assert!(
        audit.lines().count() >= 10,
        "the audit log is incomplete:\n{audit}"
    );
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // The capture works: the server's own events and the transport's TRACE events are in it.
    assert!(
        logs.contains("credential stored"),
        "capture is empty or incomplete"
    );
    assert!(logs.contains("TRACE"), "TRACE events were not captured");
    assert!(debug.contains("[REDACTED]") || debug.contains(".."));
    for secret in SECRETS {
        assert!(!logs.contains(secret), "secret in logs");
        assert!(!audit.contains(secret), "secret in the audit log");
        assert!(!debug.contains(secret), "secret in Debug output: {debug}");
        for e in &errors {
            assert!(
                !format!("{e:?} {}", e.message()).contains(secret),
                "secret in error {e:?}"
            );
        }
    }
}
