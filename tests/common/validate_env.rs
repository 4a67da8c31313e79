//! The Validate test bench: a real server on 127.0.0.1:0 with both Twilio bases pointed at a
//! fake Twilio (`fake_twilio`), logs of every crate captured at TRACE, and helpers for the RPCs.
//! Used by the tests/validate_*.rs binaries, next to `mod common` and `mod fake_twilio`.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credvault::proto::v1 as pb;
use credvault::Config;

use super::common::*;
use super::fake_twilio::*;

pub const OWNER: &str = "team-a";
pub const FOREIGN_MG: &str = "MGffffffffffffffffffffffffffffffff";
pub const DEFAULT_BODY: &str = "Your Twilio credential has been validated.";

pub fn account() -> Account {
    Account {
        sid: ACCOUNT_SID.into(),
        auth_token: AUTH_TOKEN.into(),
        status: "active",
        api_key_sid: API_KEY_SID.into(),
        api_key_secret: API_KEY_SECRET.into(),
        key_restricted: None,
        key_kind: KeyKind::Standard,
        services: HashMap::from([
            (MG_SID.to_owned(), ACCOUNT_SID.to_owned()),
            (FOREIGN_MG.to_owned(), FOREIGN_ACCOUNT.to_owned()),
        ]),
        numbers: HashSet::from([FROM_NUMBER.to_owned()]),
    }
}

pub struct Env {
    pub fake: FakeTwilio,
    pub client: Client,
    pub server: TestServer,
    /// What the server was started with (`restart` starts it again with the same).
    pub config: Config,
    _dir: tempfile::TempDir,
}

pub async fn env() -> Env {
    env_with(|_| {}).await
}

/// Every test of this binary logs at TRACE (every crate: reqwest, hyper, axum, tonic) into one
/// buffer, which `secrets_never_reach_the_logs` searches.
pub fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    log_capture::captured("trace")
}

pub async fn env_with(tweak: impl FnOnce(&mut Config)) -> Env {
    logs();
    let fake = FakeTwilio::start(account()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.twilio.api_base = fake.base.clone();
    config.twilio.messaging_base = fake.base.clone();
    for base in [
        &mut config.twilio.ie1_api_base,
        &mut config.twilio.ie1_messaging_base,
        &mut config.twilio.au1_api_base,
        &mut config.twilio.au1_messaging_base,
    ] {
        *base = "http://127.0.0.1:9".into();
    }
    config.twilio.connect_timeout = Duration::from_secs(1);
    config.twilio.request_timeout = Duration::from_secs(3);
    config.twilio.max_retries = 2;
    tweak(&mut config);
    let server = TestServer::start(config.clone()).await;
    let client = server.client().await;
    Env {
        fake,
        client,
        server,
        config,
        _dir: dir,
    }
}

impl Env {
    /// Stops the server (gracefully) and starts it again on the same data dir, after `pause`.
    pub async fn restart(&mut self, pause: Duration) {
        self.server.shutdown().await.unwrap();
        tokio::time::sleep(pause).await;
        self.server = TestServer::start(self.config.clone()).await;
        self.client = self.server.client().await;
    }

    pub async fn add(&mut self, label: &str, cred: pb::TwilioCredential) -> pb::CredentialMetadata {
        let reply = self
            .client
            .add(add_request(OWNER, label, cred))
            .await
            .unwrap();
        reply.into_inner().credential.unwrap()
    }

    pub async fn delete(&mut self, label: &str) {
        let req = pb::DeleteRequest {
            owner: OWNER.into(),
            label: label.into(),
        };
        self.client.delete(req).await.unwrap();
    }

    pub async fn validate(
        &mut self,
        label: &str,
        to: &str,
        body: &str,
    ) -> Result<pb::ValidateResponse, tonic::Status> {
        self.client
            .validate(pb::ValidateRequest {
                owner: OWNER.into(),
                label: label.into(),
                test_recipient: to.into(),
                test_message_body: body.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// The metadata List shows for `label`.
    pub async fn metadata(&mut self, label: &str) -> pb::CredentialMetadata {
        let list = self
            .client
            .list(pb::ListRequest {
                owner: OWNER.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        list.credentials
            .into_iter()
            .find(|m| m.label == label)
            .expect("listed")
    }

    /// The validation status List shows for `label`.
    pub async fn listed(&mut self, label: &str) -> (u64, pb::ValidationStatus) {
        let m = self.metadata(label).await;
        (m.version, m.validation.unwrap())
    }

    pub async fn resolve_valid(
        &mut self,
        label: &str,
    ) -> Result<pb::ResolveResponse, tonic::Status> {
        self.resolve(label, true).await
    }

    pub async fn resolve(
        &mut self,
        label: &str,
        require_valid: bool,
    ) -> Result<pb::ResolveResponse, tonic::Status> {
        let req = pb::ResolveRequest {
            owner: OWNER.into(),
            label: label.into(),
            require_valid,
        };
        self.client.resolve(req).await.map(|r| r.into_inner())
    }

    pub fn count(&self, request: &str) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| *r == request)
            .count()
    }
}

pub fn account_path() -> String {
    format!("GET /2010-04-01/Accounts/{ACCOUNT_SID}.json")
}

pub fn no_secret(text: &str) {
    for secret in [AUTH_TOKEN, API_KEY_SECRET] {
        assert!(!text.contains(secret), "secret leaked in {text:?}");
    }
}

pub fn rejected(
    r: &pb::ValidationResult,
    step: pb::ValidationStep,
    http: u32,
    code: i32,
    reason: &str,
) {
    assert!(!r.valid, "{r:?}");
    assert_eq!(r.step(), step, "{r:?}");
    assert_eq!((r.http_status, r.twilio_error_code), (http, code), "{r:?}");
    assert!(
        r.reason.contains(reason),
        "reason {:?} lacks {reason:?}",
        r.reason
    );
    assert!(r.message_sid.is_empty());
    no_secret(&r.reason);
}

pub fn with_sender(
    mut cred: pb::TwilioCredential,
    sender: pb::twilio_credential::Sender,
) -> pb::TwilioCredential {
    cred.sender = Some(sender);
    cred
}

pub fn add_validated(label: &str, cred: pb::TwilioCredential, to: &str) -> pb::AddRequest {
    pb::AddRequest {
        validate: true,
        test_recipient: to.into(),
        ..add_request(OWNER, label, cred)
    }
}

/// Everything this test binary logged so far.
pub fn logs_text() -> String {
    log_capture::text(logs())
}

/// The google.rpc.ErrorInfo reason of a status, if it has one.
pub fn error_reason(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt;
    status.get_details_error_info().map(|i| i.reason)
}

pub fn validate_request(label: &str, to: &str) -> pb::ValidateRequest {
    pb::ValidateRequest {
        owner: OWNER.into(),
        label: label.into(),
        test_recipient: to.into(),
        test_message_body: String::new(),
    }
}
