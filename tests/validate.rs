//! Validate and Add(validate) over real gRPC against a fake Twilio that checks every request.

mod common;
#[path = "common/fake_twilio.rs"]
mod fake_twilio;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use credvault::proto::v1::{self as pb, credential_vault_client::CredentialVaultClient};
use credvault::Config;
use fake_twilio::*;
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

const OWNER: &str = "team-a";
const FOREIGN_MG: &str = "MGffffffffffffffffffffffffffffffff";
const DEFAULT_BODY: &str = "Your Twilio credential has been validated.";

fn account() -> Account {
    Account {
        sid: ACCOUNT_SID.into(),
        auth_token: AUTH_TOKEN.into(),
        status: "active",
        api_key_sid: API_KEY_SID.into(),
        api_key_secret: API_KEY_SECRET.into(),
        key_restricted: None,
        services: HashMap::from([
            (MG_SID.to_owned(), ACCOUNT_SID.to_owned()),
            (FOREIGN_MG.to_owned(), FOREIGN_ACCOUNT.to_owned()),
        ]),
        numbers: HashSet::from([FROM_NUMBER.to_owned()]),
    }
}

struct Env {
    fake: FakeTwilio,
    client: CredentialVaultClient<Channel>,
    _server: TestServer,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    env_with(|_| {}).await
}

/// Every test of this binary logs at TRACE (every crate: reqwest, hyper, axum, tonic) into one
/// buffer, which `secrets_never_reach_the_logs` searches.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .init();
        logs
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn env_with(tweak: impl FnOnce(&mut Config)) -> Env {
    logs();
    let fake = FakeTwilio::start(account()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.twilio.api_base = fake.base.clone();
    config.twilio.messaging_base = fake.base.clone();
    config.twilio.connect_timeout = Duration::from_secs(1);
    config.twilio.request_timeout = Duration::from_secs(3);
    config.twilio.max_retries = 2;
    tweak(&mut config);
    let server = TestServer::start(config).await;
    let client = server.client().await;
    Env {
        fake,
        client,
        _server: server,
        _dir: dir,
    }
}

impl Env {
    async fn add(&mut self, label: &str, cred: pb::TwilioCredential) -> pb::CredentialMetadata {
        let reply = self
            .client
            .add(add_request(OWNER, label, cred))
            .await
            .unwrap();
        reply.into_inner().credential.unwrap()
    }

    async fn validate(
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

    /// The validation status List shows for `label`.
    async fn listed(&mut self, label: &str) -> (u64, pb::ValidationStatus) {
        let list = self
            .client
            .list(pb::ListRequest {
                owner: OWNER.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let m = list
            .credentials
            .into_iter()
            .find(|m| m.label == label)
            .expect("listed");
        (m.version, m.validation.unwrap())
    }

    async fn resolve_valid(&mut self, label: &str) -> Result<pb::ResolveResponse, tonic::Status> {
        let req = pb::ResolveRequest {
            owner: OWNER.into(),
            label: label.into(),
            require_valid: true,
        };
        self.client.resolve(req).await.map(|r| r.into_inner())
    }

    fn count(&self, request: &str) -> usize {
        self.fake
            .requests()
            .iter()
            .filter(|r| *r == request)
            .count()
    }
}

fn account_path() -> String {
    format!("GET /2010-04-01/Accounts/{ACCOUNT_SID}.json")
}

fn no_secret(text: &str) {
    for secret in [AUTH_TOKEN, API_KEY_SECRET] {
        assert!(!text.contains(secret), "secret leaked in {text:?}");
    }
}

fn rejected(
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

fn with_sender(
    mut cred: pb::TwilioCredential,
    sender: pb::twilio_credential::Sender,
) -> pb::TwilioCredential {
    cred.sender = Some(sender);
    cred
}

#[tokio::test]
async fn valid_auth_token_and_messaging_service_is_recorded_and_unlocks_resolve() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    let err = env.resolve_valid("prod").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    let reply = env.validate("prod", "", "").await.unwrap();
    let r = reply.result.unwrap();
    assert!(r.valid, "{r:?}");
    assert_eq!(
        (r.step(), r.http_status, r.twilio_error_code),
        (pb::ValidationStep::Sender, 200, 0)
    );
    let meta = reply.credential.unwrap();
    assert_eq!(meta.version, 1);
    assert_eq!(
        meta.validation.as_ref().unwrap().state(),
        pb::ValidationState::Valid
    );

    let (version, status) = env.listed("prod").await;
    assert_eq!((version, status.state()), (1, pb::ValidationState::Valid));
    assert!(status.checked_at.is_some() && status.twilio_error_code == 0);
    let resolved = env.resolve_valid("prod").await.unwrap();
    assert_eq!(resolved.version, 1);

    assert_eq!(
        env.fake.requests(),
        [account_path(), format!("GET /v1/Services/{MG_SID}")]
    );
    env.fake.assert_clean();
}

#[tokio::test]
async fn wrong_auth_token_is_invalid_with_20003() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    env.fake
        .update(|a| a.auth_token = "0000000000000000000000000000ffff".into());
    let r = env.validate("prod", "", "").await.unwrap().result.unwrap();
    rejected(&r, pb::ValidationStep::Auth, 401, 20003, "Auth Token");

    let (_, status) = env.listed("prod").await;
    assert_eq!(
        (status.state(), status.twilio_error_code),
        (pb::ValidationState::Invalid, 20003)
    );
    assert_eq!(status.message, r.reason);
    let err = env.resolve_valid("prod").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // The sender is not checked once the auth failed.
    assert_eq!(env.fake.requests(), [account_path()]);
    env.fake.assert_clean();
}

#[tokio::test]
async fn suspended_and_closed_accounts_are_invalid_and_say_which() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    for state in ["suspended", "closed"] {
        env.fake.update(|a| a.status = state);
        let r = env.validate("prod", "", "").await.unwrap().result.unwrap();
        rejected(
            &r,
            pb::ValidationStep::Auth,
            200,
            0,
            &format!("account {ACCOUNT_SID} is {state}"),
        );
        let (_, status) = env.listed("prod").await;
        assert_eq!(status.state(), pb::ValidationState::Invalid);
        assert!(status.message.contains(state));
    }
    env.fake.assert_clean();
}

#[tokio::test]
async fn valid_api_key_with_owned_from_number() {
    let mut env = env().await;
    env.add("key", api_key_credential()).await;
    let r = env.validate("key", "", "").await.unwrap().result.unwrap();
    assert!(r.valid && r.step() == pb::ValidationStep::Sender, "{r:?}");
    // A Standard key may be refused on /Accounts/{Sid}.json: it must not be used there.
    assert_eq!(
        env.fake.requests(),
        [
            format!("GET /2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"),
            format!("GET /2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json"),
        ]
    );
    assert_eq!(
        env.listed("key").await.1.state(),
        pb::ValidationState::Valid
    );
    env.fake.assert_clean();
}

#[tokio::test]
async fn restricted_key_without_permission_is_reported_clearly() {
    let mut env = env().await;
    env.add("key", api_key_credential()).await;
    for (http, code) in [(403, 20403), (401, 70051)] {
        env.fake.update(|a| a.key_restricted = Some((http, code)));
        let r = env.validate("key", "", "").await.unwrap().result.unwrap();
        rejected(
            &r,
            pb::ValidationStep::Auth,
            http as u32,
            code,
            "lacks permission",
        );
        assert!(r.reason.contains("Restricted"), "{r:?}");
    }
    // A wrong secret is a different story.
    env.fake.update(|a| {
        a.key_restricted = None;
        a.api_key_secret = "another-secret".into();
    });
    let r = env.validate("key", "", "").await.unwrap().result.unwrap();
    rejected(&r, pb::ValidationStep::Auth, 401, 20003, "refused API key");
    env.fake.assert_clean();
}

#[tokio::test]
async fn foreign_messaging_service_is_invalid_sender() {
    let mut env = env().await;
    let cred = with_sender(
        token_credential(),
        pb::twilio_credential::Sender::MessagingServiceSid(FOREIGN_MG.into()),
    );
    env.add("foreign", cred).await;
    let r = env
        .validate("foreign", "", "")
        .await
        .unwrap()
        .result
        .unwrap();
    rejected(
        &r,
        pb::ValidationStep::Sender,
        404,
        20404,
        &format!("messaging service {FOREIGN_MG} does not exist in account {ACCOUNT_SID}"),
    );
    assert_eq!(
        env.listed("foreign").await.1.state(),
        pb::ValidationState::Invalid
    );
    env.fake.assert_clean();
}

#[tokio::test]
async fn foreign_from_number_is_invalid_sender() {
    let mut env = env().await;
    for cred in [api_key_credential(), token_credential()] {
        let cred = with_sender(
            cred,
            pb::twilio_credential::Sender::FromNumber("+14155550199".into()),
        );
        let label = if matches!(cred.auth, Some(pb::twilio_credential::Auth::ApiKey(_))) {
            "key"
        } else {
            "token"
        };
        env.add(label, cred).await;
        let r = env.validate(label, "", "").await.unwrap().result.unwrap();
        rejected(
            &r,
            pb::ValidationStep::Sender,
            200,
            0,
            &format!("from number +14155550199 is not a phone number of account {ACCOUNT_SID}"),
        );
    }
    env.fake.assert_clean();
}

#[tokio::test]
async fn rate_limited_call_is_retried_after_retry_after() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    env.fake.fail_next_with_429(1);
    let started = Instant::now();
    let r = env.validate("prod", "", "").await.unwrap().result.unwrap();
    assert!(r.valid, "{r:?}");
    assert_eq!(env.count(&account_path()), 2, "{:?}", env.fake.requests());
    // The fake said Retry-After: 1.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    env.fake.assert_clean();
}

#[tokio::test]
async fn rate_limit_that_never_ends_is_unavailable() {
    let mut env = env_with(|c| c.twilio.max_retries = 1).await;
    env.add("prod", token_credential()).await;
    env.fake.fail_next_with_429(100);
    let err = env.validate("prod", "", "").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("20429"), "{err:?}");
    assert_eq!(env.count(&account_path()), 2);
    assert_eq!(
        env.listed("prod").await.1.state(),
        pb::ValidationState::Unvalidated
    );
}

#[tokio::test]
async fn server_errors_after_retries_are_unavailable_and_keep_the_recorded_state() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    env.validate("prod", "", "").await.unwrap();
    let before = env.listed("prod").await;
    assert_eq!(before.1.state(), pb::ValidationState::Valid);

    env.fake.always_500(true);
    let err = env.validate("prod", "", "").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("HTTP 500") && err.message().contains("nothing was recorded"),
        "{err:?}"
    );
    no_secret(err.message());
    // 1 + max_retries (2) attempts at the auth check, after the first validation's one.
    assert_eq!(env.count(&account_path()), 1 + 3);
    assert_eq!(env.listed("prod").await, before, "state changed");
    let resolved = env.resolve_valid("prod").await.unwrap();
    assert_eq!(resolved.version, 1);
    env.fake.assert_clean();
}

#[tokio::test]
async fn slow_twilio_times_out_as_unavailable() {
    let mut env = env_with(|c| {
        c.twilio.request_timeout = Duration::from_millis(300);
        c.twilio.max_retries = 1;
    })
    .await;
    env.add("prod", token_credential()).await;
    env.fake.delay(Some(Duration::from_secs(5)));
    let started = Instant::now();
    let err = env.validate("prod", "", "").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("timeout"), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(env.count(&account_path()), 2);
    assert_eq!(
        env.listed("prod").await.1.state(),
        pb::ValidationState::Unvalidated
    );
}

#[tokio::test]
async fn test_sms_is_sent_and_its_sid_returned() {
    let mut env = env().await;
    env.add("mg", token_credential()).await;
    let r = env
        .validate("mg", RECIPIENT, "hello from credvault")
        .await
        .unwrap()
        .result
        .unwrap();
    assert!(r.valid, "{r:?}");
    assert_eq!(
        (r.step(), r.http_status),
        (pb::ValidationStep::TestMessage, 201)
    );
    let sent = env.fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(r.message_sid, sent[0].sid);
    assert!(r.message_sid.starts_with("SM"));
    assert_eq!(
        (
            sent[0].to.as_str(),
            sent[0].body.as_str(),
            sent[0].messaging_service_sid.as_deref(),
            sent[0].from.as_deref()
        ),
        (RECIPIENT, "hello from credvault", Some(MG_SID), None)
    );

    // From-number sender, API key auth, default body.
    env.add("key", api_key_credential()).await;
    let r = env
        .validate("key", RECIPIENT, "")
        .await
        .unwrap()
        .result
        .unwrap();
    assert!(r.valid && !r.message_sid.is_empty(), "{r:?}");
    let last = env.fake.sent().pop().unwrap();
    assert_eq!(
        (
            last.body.as_str(),
            last.from.as_deref(),
            last.messaging_service_sid
        ),
        (DEFAULT_BODY, Some(FROM_NUMBER), None)
    );
    assert_eq!(
        env.listed("key").await.1.state(),
        pb::ValidationState::Valid
    );
    env.fake.assert_clean();
}

#[tokio::test]
async fn test_sms_rejections_21211_and_21608() {
    let mut env = env().await;
    env.add("mg", token_credential()).await;
    let r = env
        .validate("mg", INVALID_RECIPIENT, "")
        .await
        .unwrap()
        .result
        .unwrap();
    rejected(
        &r,
        pb::ValidationStep::TestMessage,
        400,
        21211,
        "not a valid phone number",
    );
    let r = env
        .validate("mg", UNVERIFIED_RECIPIENT, "")
        .await
        .unwrap()
        .result
        .unwrap();
    rejected(
        &r,
        pb::ValidationStep::TestMessage,
        400,
        21608,
        "not verified",
    );
    let (_, status) = env.listed("mg").await;
    assert_eq!(
        (status.state(), status.twilio_error_code),
        (pb::ValidationState::Invalid, 21608)
    );
    assert!(env.fake.sent().is_empty());
    env.fake.assert_clean();
}

#[tokio::test]
async fn bad_validate_requests_are_invalid_argument_and_never_reach_twilio() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    let cases = [
        ("prod", "0065912345", "", "test_recipient"),
        ("prod", RECIPIENT, &"x".repeat(321), "test_message_body"),
        (
            "prod",
            "",
            "a body without a recipient",
            "test_message_body",
        ),
        ("Not A Label", "", "", "label"),
    ];
    for (label, to, body, field) in cases {
        let err = env.validate(label, to, body).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(violated_fields(&err), [field], "{err:?}");
    }
    // 320 characters (not bytes) is fine.
    let r = env
        .validate("prod", RECIPIENT, &"é".repeat(320))
        .await
        .unwrap()
        .result
        .unwrap();
    assert!(r.valid, "{r:?}");
    let err = env.validate("missing", "", "").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(
        env.fake.requests().len(),
        3,
        "only the one valid request reached Twilio"
    );
    env.fake.assert_clean();
}

fn add_validated(label: &str, cred: pb::TwilioCredential, to: &str) -> pb::AddRequest {
    pb::AddRequest {
        validate: true,
        test_recipient: to.into(),
        ..add_request(OWNER, label, cred)
    }
}

#[tokio::test]
async fn add_with_validate_stores_only_what_twilio_accepts() {
    let mut env = env().await;
    // Rejected: INVALID_ARGUMENT with ErrorInfo TWILIO_REJECTED, nothing stored.
    env.fake
        .update(|a| a.auth_token = "0000000000000000000000000000ffff".into());
    let err = env
        .client
        .add(add_validated("prod", token_credential(), ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    no_secret(err.message());
    let info = err.get_details_error_info().expect("ErrorInfo detail");
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("TWILIO_REJECTED", "credvault.twilio")
    );
    assert_eq!(info.metadata["twilio_error_code"], "20003");
    assert_eq!(info.metadata["http_status"], "401");
    assert_eq!(info.metadata["step"], "auth");
    let err = env
        .client
        .resolve(resolve_request(OWNER, "prod"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "rejected credential was stored");

    // Accepted: stored with VALID recorded on version 1.
    env.fake.update(|a| a.auth_token = AUTH_TOKEN.into());
    let reply = env
        .client
        .add(add_validated("prod", token_credential(), ""))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.validation.unwrap().valid);
    let meta = reply.credential.unwrap();
    assert_eq!(
        (meta.version, meta.validation.unwrap().state()),
        (1, pb::ValidationState::Valid)
    );
    assert_eq!(env.resolve_valid("prod").await.unwrap().version, 1);

    // A taken label is ALREADY_EXISTS before Twilio is asked.
    let asked = env.fake.requests().len();
    let err = env
        .client
        .add(add_validated("prod", token_credential(), RECIPIENT))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert_eq!(env.fake.requests().len(), asked);

    // With a test SMS, replacing: the message SID comes back, version 2 is VALID.
    let mut req = add_validated("prod", token_credential(), RECIPIENT);
    req.replace = true;
    let reply = env.client.add(req).await.unwrap().into_inner();
    let v = reply.validation.unwrap();
    assert_eq!(v.message_sid, env.fake.sent()[0].sid);
    let meta = reply.credential.unwrap();
    assert_eq!(
        (meta.version, meta.validation.unwrap().state()),
        (2, pb::ValidationState::Valid)
    );

    // A failing test SMS rejects the Add, and the stored version 2 stays.
    let mut req = add_validated("prod", token_credential(), UNVERIFIED_RECIPIENT);
    req.replace = true;
    let err = env.client.add(req).await.unwrap_err();
    let info = err.get_details_error_info().unwrap();
    assert_eq!(
        (
            info.metadata["twilio_error_code"].as_str(),
            info.metadata["step"].as_str()
        ),
        ("21608", "test_message")
    );
    assert_eq!(env.listed("prod").await.0, 2);

    // Twilio down: UNAVAILABLE, nothing stored.
    env.fake.always_500(true);
    let err = env
        .client
        .add(add_validated("other", api_key_credential(), ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let err = env
        .client
        .resolve(resolve_request(OWNER, "other"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // test_recipient only makes sense with validate.
    let mut req = add_request(OWNER, "x", token_credential());
    req.test_recipient = RECIPIENT.into();
    let err = env.client.add(req).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["test_recipient"]);
    env.fake.assert_clean();
}

#[tokio::test]
async fn result_for_a_replaced_version_is_dropped() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    let (arrived, release) = env.fake.hold_next();
    let mut client = env.client.clone();
    let validation = tokio::spawn(async move {
        client
            .validate(pb::ValidateRequest {
                owner: OWNER.into(),
                label: "prod".into(),
                ..Default::default()
            })
            .await
    });
    // Validation of version 1 is in flight at Twilio: replace the credential meanwhile.
    arrived.notified().await;
    let mut replace = add_request(OWNER, "prod", api_key_credential());
    replace.replace = true;
    let v2 = env
        .client
        .add(replace)
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert_eq!(v2.version, 2);
    release.notify_one();

    let reply = validation.await.unwrap().unwrap().into_inner();
    assert!(reply.result.unwrap().valid, "version 1 was valid");
    let meta = reply.credential.unwrap();
    assert_eq!(
        (meta.version, meta.validation.unwrap().state()),
        (2, pb::ValidationState::Unvalidated)
    );
    let (version, status) = env.listed("prod").await;
    assert_eq!(
        (version, status.state()),
        (2, pb::ValidationState::Unvalidated),
        "stale result written"
    );
    env.fake.assert_clean();
}

#[tokio::test]
async fn outbound_validations_are_capped_by_max_concurrent() {
    let mut env = env_with(|c| c.twilio.max_concurrent = 1).await;
    env.add("a", token_credential()).await;
    env.add("b", token_credential()).await;
    let (arrived, release) = env.fake.hold_next();
    let spawn = |label: &'static str, mut client: CredentialVaultClient<Channel>| {
        tokio::spawn(async move {
            client
                .validate(pb::ValidateRequest {
                    owner: OWNER.into(),
                    label: label.into(),
                    ..Default::default()
                })
                .await
        })
    };
    let first = spawn("a", env.client.clone());
    arrived.notified().await;
    let second = spawn("b", env.client.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        env.fake.requests().len(),
        1,
        "second validation went out while the first held the only slot"
    );
    release.notify_one();
    assert!(
        first
            .await
            .unwrap()
            .unwrap()
            .into_inner()
            .result
            .unwrap()
            .valid
    );
    assert!(
        second
            .await
            .unwrap()
            .unwrap()
            .into_inner()
            .result
            .unwrap()
            .valid
    );
    assert_eq!(env.fake.requests().len(), 4);
    env.fake.assert_clean();
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let mut env = env_with(|c| {
        c.twilio.request_timeout = Duration::from_millis(300);
        c.twilio.max_retries = 1;
    })
    .await;
    env.add("tok", token_credential()).await;
    env.add("key", api_key_credential()).await;
    env.validate("tok", RECIPIENT, "").await.unwrap();
    env.validate("key", INVALID_RECIPIENT, "").await.unwrap();
    env.fake
        .update(|a| a.auth_token = "0000000000000000000000000000ffff".into());
    env.validate("tok", "", "").await.unwrap();
    env.fake.fail_next_with_429(1);
    env.validate("key", "", "").await.unwrap();
    env.fake.delay(Some(Duration::from_secs(2)));
    assert_eq!(
        env.validate("key", "", "").await.unwrap_err().code(),
        Code::Unavailable
    );
    env.fake.delay(None);
    env.fake.always_500(true);
    let err = env
        .client
        .add(add_validated("new", token_credential(), RECIPIENT))
        .await
        .unwrap_err();
    no_secret(err.message());

    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    assert!(
        logs.contains("Twilio call not answered; retrying"),
        "logs not captured"
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    for (user, secret) in [(ACCOUNT_SID, AUTH_TOKEN), (API_KEY_SID, API_KEY_SECRET)] {
        for needle in [secret.to_owned(), b64.encode(format!("{user}:{secret}"))] {
            assert!(!logs.contains(&needle), "{needle} in the logs");
        }
    }
}

#[tokio::test]
async fn test_sms_is_retried_only_when_twilio_certainly_did_not_send_it() {
    let mut env = env().await;
    env.add("mg", token_credential()).await;
    let post = format!("POST /2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json");
    // 503: Twilio did not act on it, so retrying cannot text the recipient twice.
    env.fake.fail_sms_with(Some(503));
    let err = env.validate("mg", RECIPIENT, "").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(env.count(&post), 3);
    // 500: the SMS may have gone out; one attempt only.
    env.fake.fail_sms_with(Some(500));
    let err = env.validate("mg", RECIPIENT, "").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("test SMS"), "{err:?}");
    assert_eq!(env.count(&post), 3 + 1);
    assert_eq!(
        env.listed("mg").await.1.state(),
        pb::ValidationState::Unvalidated
    );
    env.fake.assert_clean();
}
