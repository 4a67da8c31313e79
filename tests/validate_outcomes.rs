//! Validate's verdicts over real gRPC against a fake Twilio that checks every request: what
//! is VALID, what is INVALID and recorded, and (fail closed) replies that are neither.

mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use common::*;
use credvault::proto::v1 as pb;
use fake_twilio::*;
use tonic::Code;
use validate_env::*;

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
            format!("GET /2010-04-01/Accounts/{ACCOUNT_SID}/Keys.json"),
        ]
    );
    assert_eq!(r.key_type(), pb::KeyType::Standard);
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

/// Validates `label` and expects the off-spec ending: UNKNOWN with ErrorInfo
/// TWILIO_UNEXPECTED_REPLY, a short message, and the recorded state left as `before`.
async fn unknown_outcome(
    env: &mut Env,
    label: &str,
    before: &(u64, pb::ValidationStatus),
) -> String {
    let err = env.validate(label, "", "").await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown, "{err:?}");
    assert_eq!(
        error_reason(&err).as_deref(),
        Some("TWILIO_UNEXPECTED_REPLY"),
        "{err:?}"
    );
    assert!(err.message().len() < 400, "{}", err.message());
    assert!(
        !err.message().contains('<'),
        "the reply body leaked: {err:?}"
    );
    assert_eq!(
        &env.listed(label).await,
        before,
        "an unknown outcome was recorded"
    );
    err.message().to_owned()
}

#[tokio::test]
async fn a_messaging_service_whose_account_is_not_shown_is_not_valid() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    env.fake.reply_raw(
        &format!("GET /v1/Services/{MG_SID}"),
        Raw::Body(
            200,
            "application/json",
            format!(r#"{{"sid": "{MG_SID}", "friendly_name": "no owner"}}"#).into_bytes(),
        ),
    );
    let before = env.listed("prod").await;
    let message = unknown_outcome(&mut env, "prod", &before).await;
    assert!(message.contains("account_sid"), "{message}");
    assert_ne!(before.1.state(), pb::ValidationState::Valid);
    assert_eq!(
        env.resolve_valid("prod").await.unwrap_err().code(),
        Code::FailedPrecondition
    );
}

#[tokio::test]
async fn replies_off_twilios_spec_are_neither_valid_nor_invalid() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    env.validate("prod", "", "").await.unwrap();
    let before = env.listed("prod").await;
    assert_eq!(before.1.state(), pb::ValidationState::Valid);
    let auth = account_path();
    let cases: Vec<Raw> = vec![
        // A redirect, a conflict and a proxy's own 403 page: not Twilio judging the credential.
        Raw::Body(
            302,
            "text/html",
            b"<a href=\"https://elsewhere\">moved</a>".to_vec(),
        ),
        Raw::Body(
            409,
            "application/json",
            br#"{"code": 20409, "message": "Conflict", "status": 409}"#.to_vec(),
        ),
        Raw::Body(
            403,
            "text/html",
            b"<html><body>Forbidden by proxy</body></html>".to_vec(),
        ),
        // Twilio's error body, but about the request, not the credential.
        Raw::Body(
            400,
            "application/json",
            br#"{"code": 20001, "message": "Invalid parameter", "status": 400}"#.to_vec(),
        ),
        // 200s the spec does not describe: no status, a status it does not list, not JSON.
        Raw::Body(
            200,
            "application/json",
            format!(r#"{{"sid": "{ACCOUNT_SID}"}}"#).into_bytes(),
        ),
        Raw::Body(200, "application/json", br#"{"status": "paused"}"#.to_vec()),
        Raw::Body(200, "application/json", br#"{"status": 7}"#.to_vec()),
        Raw::Body(200, "text/html", b"<html>maintenance</html>".to_vec()),
    ];
    for raw in cases {
        env.fake.clear_raw();
        env.fake.reply_raw(&auth, raw);
        unknown_outcome(&mut env, "prod", &before).await;
        env.resolve_valid("prod").await.unwrap();
    }
    // A 408 is transient: retried, then UNAVAILABLE, still nothing recorded.
    env.fake.clear_raw();
    env.fake
        .reply_raw(&auth, Raw::Body(408, "text/plain", b"timeout".to_vec()));
    let asked = env.count(&auth);
    let err = env.validate("prod", "", "").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(env.count(&auth) - asked, 3);
    assert_eq!(env.listed("prod").await, before);
}

#[tokio::test]
async fn replies_are_read_to_one_mib_at_most() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    let before = env.listed("prod").await;
    let auth = account_path();
    let padded = format!(
        r#"{{"status": "active", "pad": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    // Declared too long (Content-Length), declared and stalled, and chunked without end.
    for raw in [
        Raw::Body(200, "application/json", padded.into_bytes()),
        Raw::Stalled {
            status: 200,
            declared: 100 << 20,
            sent: 16,
        },
        Raw::Endless(200),
    ] {
        env.fake.clear_raw();
        env.fake.reply_raw(&auth, raw);
        let started = std::time::Instant::now();
        let message = unknown_outcome(&mut env, "prod", &before).await;
        assert!(message.contains("longer than 1024 KiB"), "{message}");
        // Refused as soon as it is too long, not after the 3 s request timeout.
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}

#[tokio::test]
async fn twilio_text_in_a_reason_is_bounded_to_one_line() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    let message = format!(
        "Authenticate\nFAKE LOG LINE level=error {}",
        "y".repeat(5000)
    );
    let body = serde_json::json!({"code": 20003, "message": message, "status": 401});
    env.fake.reply_raw(
        &account_path(),
        Raw::Body(401, "application/json", body.to_string().into_bytes()),
    );
    let r = env.validate("prod", "", "").await.unwrap().result.unwrap();
    rejected(&r, pb::ValidationStep::Auth, 401, 20003, "Auth Token");
    assert!(!r.reason.contains('\n'), "{:?}", r.reason);
    // Our explanation (with the other-Region hint) and at most 200 characters of Twilio's.
    assert!(r.reason.chars().count() < 500, "{}", r.reason.len());
    let (_, status) = env.listed("prod").await;
    assert_eq!(status.message, r.reason);
}
