//! Shared test harness: a real credvault server on 127.0.0.1:0 over a tempdir, and sample data.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod bin;
pub mod log_capture;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use credvault::proto::v1 as pb;
use credvault::{Config, ServeError};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "f00dfeedcafe0123456789abcdef4242";
pub const API_KEY_SID: &str = "SK0123456789abcdef0123456789abcdef";
pub const API_KEY_SECRET: &str = "sEcReTkEy0123456789AbCdEfGhIjKlMn";
pub const MG_SID: &str = "MG0123456789abcdef0123456789abcdef";
pub const FROM_NUMBER: &str = "+14155550100";
/// The token of the `tests` caller that [`config`] declares: every scope, every owner.
pub const TEST_TOKEN: &str = "cvt_tests-caller-token-with-every-scope-00000";

/// A client as every test uses one: over real gRPC, with the `tests` caller's token.
pub type Client = credvault::client::VaultClient;

/// A client on `channel` that calls as the `tests` caller.
pub fn client_for(channel: Channel) -> Client {
    client_with(channel, TEST_TOKEN)
}

/// A client on `channel` that calls with `token`.
pub fn client_with(channel: Channel, token: &str) -> Client {
    credvault::client::vault_client(channel, credvault::client::Bearer::new(token).unwrap())
}

/// The `[[callers]]` entry for [`TEST_TOKEN`].
pub fn test_caller() -> credvault::auth::Caller {
    caller(
        "tests",
        TEST_TOKEN,
        &["list", "write", "validate", "resolve", "admin"],
        &["*"],
    )
}

/// A caller with these scopes and owners, known by `token`.
pub fn caller(
    name: &str,
    token: &str,
    scopes: &[&str],
    owners: &[&str],
) -> credvault::auth::Caller {
    credvault::auth::CallerSpec {
        name: name.into(),
        token_sha256: Some(credvault::auth::token::TokenHash::of(token).hex()),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        owners: owners.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
    .check()
    .unwrap()
}

/// A running server. Dropping it without `stop` aborts the server task.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl TestServer {
    /// Starts `credvault::serve` with `config` on an ephemeral loopback port.
    pub async fn start(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(credvault::serve(listener, config, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn channel(&self) -> Channel {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(5));
        tokio::time::timeout(Duration::from_secs(10), endpoint.connect())
            .await
            .expect("server did not accept in time")
            .expect("connect")
    }

    pub async fn client(&self) -> Client {
        client_for(self.channel().await)
    }

    /// Whether `serve` has returned (an error at start, say).
    pub fn finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Graceful shutdown; returns what `serve` returned.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        self.shutdown().await
    }

    /// `stop` in place (the server is gone afterwards; only dropping it is left).
    pub async fn shutdown(&mut self) -> Result<(), ServeError> {
        let _ = self.shutdown.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Defaults over `dir`, with a Twilio base that refuses connections unless a test sets its own.
pub fn config(dir: &Path) -> Config {
    let mut c = Config::with_data_dir(dir.join("data"));
    c.twilio.api_base = "http://127.0.0.1:9".into();
    c.twilio.messaging_base = "http://127.0.0.1:9".into();
    // Never the real Twilio, whatever Region a test's credential names.
    c.twilio.ie1_api_base = "http://127.0.0.1:9".into();
    c.twilio.ie1_messaging_base = "http://127.0.0.1:9".into();
    c.twilio.au1_api_base = "http://127.0.0.1:9".into();
    c.twilio.au1_messaging_base = "http://127.0.0.1:9".into();
    c.callers = vec![test_caller()];
    c
}

pub fn token_credential() -> pb::TwilioCredential {
    pb::TwilioCredential {
        account_sid: ACCOUNT_SID.into(),
        auth: Some(pb::twilio_credential::Auth::AuthToken(pb::AuthToken {
            auth_token: AUTH_TOKEN.into(),
        })),
        sender: Some(pb::twilio_credential::Sender::MessagingServiceSid(
            MG_SID.into(),
        )),
        ..Default::default()
    }
}

pub fn api_key_credential() -> pb::TwilioCredential {
    pb::TwilioCredential {
        account_sid: ACCOUNT_SID.into(),
        auth: Some(pb::twilio_credential::Auth::ApiKey(pb::ApiKey {
            api_key_sid: API_KEY_SID.into(),
            api_key_secret: API_KEY_SECRET.into(),
        })),
        sender: Some(pb::twilio_credential::Sender::FromNumber(
            FROM_NUMBER.into(),
        )),
        ..Default::default()
    }
}

pub fn add_request(owner: &str, label: &str, cred: pb::TwilioCredential) -> pb::AddRequest {
    pb::AddRequest {
        owner: owner.into(),
        label: label.into(),
        credential: Some(cred),
        ..Default::default()
    }
}

pub fn delete_request(owner: &str, label: &str) -> pb::DeleteRequest {
    pb::DeleteRequest {
        owner: owner.into(),
        label: label.into(),
    }
}

pub fn resolve_request(owner: &str, label: &str) -> pb::ResolveRequest {
    pb::ResolveRequest {
        owner: owner.into(),
        label: label.into(),
        require_valid: false,
    }
}

/// The field names of a status's google.rpc.BadRequest detail.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// An Admin client on `channel` that calls with `token`.
pub fn admin(channel: Channel, token: &str) -> credvault::client::AdminClient {
    credvault::client::admin_client(channel, credvault::client::Bearer::new(token).unwrap())
}

/// The keyring's status, as `keys status` shows it.
pub async fn key_status(a: &mut credvault::client::AdminClient) -> pb::KeyStatus {
    a.get_key_status(pb::GetKeyStatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// How many records data key `id` seals.
pub fn records_on(status: &pb::KeyStatus, id: u32) -> u64 {
    status
        .keys
        .iter()
        .find(|k| k.id == id)
        .map_or(0, |k| k.records)
}
