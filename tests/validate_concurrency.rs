//! Validations racing writes and each other: results land only on the write they checked,
//! and the number running and waiting is bounded.

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
use validate_env::*;

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
    let spawn = |label: &'static str, mut client: Client| {
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
async fn a_result_never_lands_on_a_credential_added_after_a_delete() {
    let mut env = env().await;
    env.add("prod", token_credential()).await;
    let (arrived, release) = env.fake.hold_next();
    let mut client = env.client.clone();
    let validation =
        tokio::spawn(async move { client.validate(validate_request("prod", "")).await });
    // Version 1 is being checked at Twilio: delete it and add another credential under the
    // label. The newcomer is version 1 too, and Twilio never saw it.
    arrived.notified().await;
    env.delete("prod").await;
    let newcomer = env.add("prod", api_key_credential()).await;
    assert_eq!(newcomer.version, 1);
    release.notify_one();

    let reply = validation.await.unwrap().unwrap().into_inner();
    assert!(
        reply.result.unwrap().valid,
        "the deleted credential was valid"
    );
    assert_eq!(
        reply.credential.unwrap().validation.unwrap().state(),
        pb::ValidationState::Unvalidated
    );
    let err = env.resolve_valid("prod").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        env.listed("prod").await.1.state(),
        pb::ValidationState::Unvalidated
    );
}

#[tokio::test]
async fn past_the_queue_validations_are_refused_at_once_and_waiting_ones_hold_no_secret() {
    let mut env = env_with(|c| {
        c.twilio.max_concurrent = 1;
        c.limits.validate_queue = 1;
    })
    .await;
    for label in ["a", "b", "c"] {
        env.add(label, token_credential()).await;
    }
    let (arrived, release) = env.fake.hold_next();
    let spawn = |label: &'static str, mut client: Client| {
        tokio::spawn(async move { client.validate(validate_request(label, "")).await })
    };
    let running = spawn("a", env.client.clone());
    arrived.notified().await;
    let waiting = spawn("b", env.client.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // One running, one waiting: the third is refused at once.
    let started = std::time::Instant::now();
    let err = env.validate("c", "", "").await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(err.message().contains("1 running and 1 waiting"), "{err:?}");

    // The waiting validation has not read its credential yet: deleted now, it is NOT_FOUND
    // when its turn comes, and never reaches Twilio.
    env.delete("b").await;
    release.notify_one();
    assert!(
        running
            .await
            .unwrap()
            .unwrap()
            .into_inner()
            .result
            .unwrap()
            .valid
    );
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(
        env.fake.requests().len(),
        2,
        "the waiting validation asked Twilio about a credential it read before its turn"
    );
}

#[tokio::test]
async fn a_validation_that_runs_out_of_time_records_and_sends_nothing() {
    let mut env = env_with(|c| c.twilio.validate_timeout = Duration::from_millis(400)).await;
    env.add("prod", token_credential()).await;
    env.fake.delay(Some(Duration::from_secs(2)));
    let err = env.validate("prod", RECIPIENT, "").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("did not finish within"), "{err:?}");
    assert_eq!(
        env.listed("prod").await.1.state(),
        pb::ValidationState::Unvalidated
    );
    assert!(env.fake.sent().is_empty());
}
