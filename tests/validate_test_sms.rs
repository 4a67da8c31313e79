//! The test SMS: sent once and never retried, refused recipients are the caller's input (not
//! the credential's fault), a maybe-sent SMS never looks retryable, and quotas cap how many go out.

mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use std::time::Duration;

use common::*;
use credvault::proto::v1 as pb;
use fake_twilio::*;
use tonic::Code;
use tonic_types::StatusExt;
use validate_env::*;

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
    // The stored reason (plaintext metadata) never names the recipient.
    let (_, status) = env.listed("mg").await;
    assert!(!status.message.contains(RECIPIENT), "{status:?}");
    assert!(!r.reason.contains(RECIPIENT), "{r:?}");
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

/// Enough quota for tests that send many test SMS on purpose.
fn roomy(c: &mut credvault::Config) {
    c.limits.test_sms_per_credential_per_hour = 1000;
    c.limits.test_sms_per_recipient_per_hour = 1000;
}

#[tokio::test]
async fn recipient_errors_are_invalid_argument_and_leave_the_credential_as_it_was() {
    let mut env = env_with(roomy).await;
    env.add("mg", token_credential()).await;
    env.validate("mg", "", "").await.unwrap();
    let before = env.listed("mg").await;
    assert_eq!(before.1.state(), pb::ValidationState::Valid);
    for (number, code, _) in RECIPIENT_ERRORS {
        let err = env.validate("mg", number, "").await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{code}: {err:?}");
        assert_eq!(violated_fields(&err), ["test_recipient"], "{err:?}");
        let violation = &err.get_details_bad_request().unwrap().field_violations[0];
        assert!(
            violation.description.contains(&code.to_string()),
            "the violation does not name Twilio's code: {violation:?}"
        );
        assert!(!err.message().contains(number), "{err:?}");
        no_secret(err.message());
        // One working credential stays usable: Resolve{require_valid} still answers.
        assert_eq!(env.listed("mg").await, before, "{code} changed the record");
        env.resolve_valid("mg").await.unwrap();
    }
    assert!(env.fake.sent().is_empty());
    env.fake.assert_clean();
}

#[tokio::test]
async fn a_sender_refused_by_the_post_is_invalid_and_the_record_never_names_the_recipient() {
    let mut env = env_with(roomy).await;
    env.add("key", api_key_credential()).await;
    let body = format!(
        r#"{{"code": 21606, "message": "The 'From' phone number {FROM_NUMBER} is not a valid, SMS-capable inbound phone number or short code for your account (To: {RECIPIENT})", "more_info": "https://www.twilio.com/docs/errors/21606", "status": 400}}"#
    );
    env.fake.reply_raw(
        &format!("POST /2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"),
        Raw::Body(400, "application/json", body.into_bytes()),
    );
    let r = env
        .validate("key", RECIPIENT, "")
        .await
        .unwrap()
        .result
        .unwrap();
    rejected(
        &r,
        pb::ValidationStep::TestMessage,
        400,
        21606,
        "from number",
    );
    assert!(!r.reason.contains(RECIPIENT), "{r:?}");
    let (_, status) = env.listed("key").await;
    assert_eq!(
        (status.state(), status.twilio_error_code),
        (pb::ValidationState::Invalid, 21606)
    );
    assert!(!status.message.contains(RECIPIENT), "{status:?}");
}

#[tokio::test]
async fn the_test_sms_is_never_retried_and_maybe_sent_is_never_unavailable() {
    let mut env = env_with(|c| {
        roomy(c);
        c.twilio.request_timeout = Duration::from_millis(500);
    })
    .await;
    env.add("mg", token_credential()).await;
    let post = format!("POST /2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json");
    let mut posts = 0;
    // 5xx: the SMS may have gone out. UNAVAILABLE would invite a retry that texts twice.
    for status in [500, 503] {
        env.fake.fail_sms_with(Some((status, 20500)));
        let err = env.validate("mg", RECIPIENT, "").await.unwrap_err();
        posts += 1;
        assert_eq!(err.code(), Code::Unknown, "{status}: {err:?}");
        assert_eq!(
            error_reason(&err).as_deref(),
            Some("TEST_MESSAGE_OUTCOME_UNKNOWN")
        );
        assert!(err.message().contains("may have been sent"), "{err:?}");
        assert_eq!(
            env.count(&post),
            posts,
            "the POST was retried after {status}"
        );
    }
    env.fake.fail_sms_with(None);

    // A 2xx without a message SID: maybe sent, too.
    env.fake.reply_raw(
        &post,
        Raw::Body(201, "application/json", br#"{"status": "queued"}"#.to_vec()),
    );
    let err = env.validate("mg", RECIPIENT, "").await.unwrap_err();
    posts += 1;
    assert_eq!(err.code(), Code::Unknown, "{err:?}");
    assert_eq!(
        error_reason(&err).as_deref(),
        Some("TEST_MESSAGE_OUTCOME_UNKNOWN")
    );
    env.fake.clear_raw();

    // Accepted, then no reply within the timeout: DEADLINE_EXCEEDED, maybe sent, no retry.
    env.fake.delay_sms(Some(Duration::from_secs(3)));
    let err = env.validate("mg", RECIPIENT, "").await.unwrap_err();
    posts += 1;
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert_eq!(
        error_reason(&err).as_deref(),
        Some("TEST_MESSAGE_OUTCOME_UNKNOWN")
    );
    assert_eq!(env.count(&post), posts);
    env.fake.delay_sms(None);

    // 429: Twilio certainly did not send it. UNAVAILABLE, and still not retried here.
    env.fake.fail_sms_with(Some((429, 20429)));
    let err = env.validate("mg", RECIPIENT, "").await.unwrap_err();
    posts += 1;
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(env.count(&post), posts);

    assert_eq!(
        env.listed("mg").await.1.state(),
        pb::ValidationState::Unvalidated,
        "an unknown outcome was recorded"
    );
    env.fake.assert_clean();
}

fn quota_failure(err: &tonic::Status) -> (Vec<String>, Duration) {
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let details = err.get_error_details();
    let subjects = details
        .quota_failure()
        .expect("QuotaFailure detail")
        .violations
        .iter()
        .map(|v| v.subject.clone())
        .collect();
    let retry = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo detail");
    (subjects, retry)
}

#[tokio::test]
async fn test_sms_quotas_per_credential_and_per_recipient() {
    let mut env = env().await;
    env.add("mg", token_credential()).await;
    // 3 per recipient per hour.
    for _ in 0..3 {
        assert!(
            env.validate("mg", RECIPIENT, "")
                .await
                .unwrap()
                .result
                .unwrap()
                .valid
        );
    }
    let err = env.validate("mg", RECIPIENT, "").await.unwrap_err();
    let (subjects, retry) = quota_failure(&err);
    assert_eq!(subjects, ["recipient:test_recipient"]);
    assert!(
        retry > Duration::from_secs(3500) && retry <= Duration::from_secs(3601),
        "{retry:?}"
    );
    assert!(err.message().contains("nothing was sent"), "{err:?}");
    assert!(!err.message().contains(RECIPIENT), "{err:?}");
    assert_eq!(env.fake.sent().len(), 3);

    // 5 per credential per hour: two more numbers, then the credential is used up.
    for to in ["+6590000001", "+6590000002"] {
        assert!(
            env.validate("mg", to, "")
                .await
                .unwrap()
                .result
                .unwrap()
                .valid
        );
    }
    let err = env.validate("mg", "+6590000003", "").await.unwrap_err();
    assert_eq!(quota_failure(&err).0, ["credential:team-a/mg"]);
    // Add with validate and a test SMS draws on the same quota of that label.
    let mut add = add_validated("mg", api_key_credential(), "+6590000004");
    add.replace = true;
    let err = env.client.add(add).await.unwrap_err();
    assert_eq!(quota_failure(&err).0, ["credential:team-a/mg"]);
    // Validation without an SMS is not limited by it.
    assert!(
        env.validate("mg", "", "")
            .await
            .unwrap()
            .result
            .unwrap()
            .valid
    );

    // An SMS pump: 100 calls with fresh numbers on another credential send at most its quota.
    env.add("pump", token_credential()).await;
    let before = env.fake.sent().len();
    let mut refused = 0;
    for i in 0..100 {
        match env.validate("pump", &format!("+4470000{i:05}"), "").await {
            Ok(_) => {}
            Err(e) if e.code() == Code::ResourceExhausted => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(env.fake.sent().len() - before, 5);
    assert_eq!(refused, 95);
    env.fake.assert_clean();
}
