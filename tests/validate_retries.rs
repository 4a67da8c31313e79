//! Validate when Twilio is slow, down or rate limited: bounded retries for reads, UNAVAILABLE
//! with nothing recorded, and no secret in any log line of any crate.

mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use std::time::{Duration, Instant};

use common::*;
use credvault::proto::v1 as pb;
use fake_twilio::*;
use tonic::Code;
use validate_env::*;

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
async fn secrets_never_reach_the_logs() {
    let mut env = env_with(|c| {
        c.twilio.request_timeout = Duration::from_millis(300);
        c.twilio.max_retries = 1;
    })
    .await;
    env.add("tok", token_credential()).await;
    env.add("key", api_key_credential()).await;
    env.validate("tok", RECIPIENT, "").await.unwrap();
    env.validate("key", recipient_with(21211), "")
        .await
        .unwrap_err();
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

    let logs = logs_text();
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
