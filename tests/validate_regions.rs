//! Twilio Regions and API key types, over real gRPC against fake Twilios: one fake stands for
//! us1, another for ie1 (each with its own account, as Twilio's Regions keep their own
//! credentials), and every request is checked by the fake that gets it.

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

/// The ie1 account: another SID and other secrets than the us1 one.
const IE1_ACCOUNT: &str = "AC1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e";
const IE1_TOKEN: &str = "1e1a1e1a1e1a1e1a1e1a1e1a1e1a1e1a";

fn ie1_account() -> Account {
    let mut a = account();
    a.sid = IE1_ACCOUNT.into();
    a.auth_token = IE1_TOKEN.into();
    a.services = [(MG_SID.to_owned(), IE1_ACCOUNT.to_owned())].into();
    a
}

fn in_region(mut cred: pb::TwilioCredential, region: &str, edge: &str) -> pb::TwilioCredential {
    cred.region = region.into();
    cred.edge = edge.into();
    cred
}

fn ie1_token_credential() -> pb::TwilioCredential {
    let mut cred = in_region(token_credential(), "ie1", "");
    cred.account_sid = IE1_ACCOUNT.into();
    cred.auth = Some(pb::twilio_credential::Auth::AuthToken(pb::AuthToken {
        auth_token: IE1_TOKEN.into(),
    }));
    cred
}

/// `env` serves us1; the returned fake serves ie1.
async fn two_regions() -> (Env, FakeTwilio) {
    let ie1 = FakeTwilio::start(ie1_account()).await;
    let base = ie1.base.clone();
    let env = env_with(|c| {
        c.twilio.ie1_api_base = base.clone();
        c.twilio.ie1_messaging_base = base;
    })
    .await;
    (env, ie1)
}

#[tokio::test]
async fn each_region_is_asked_at_its_own_hosts() {
    let (mut env, ie1) = two_regions().await;
    env.add("eu", ie1_token_credential()).await;
    env.add("us", token_credential()).await;

    let r = env.validate("eu", "", "").await.unwrap().result.unwrap();
    assert!(r.valid, "{r:?}");
    assert_eq!(
        ie1.requests(),
        [
            format!("GET /2010-04-01/Accounts/{IE1_ACCOUNT}.json"),
            format!("GET /v1/Services/{MG_SID}"),
        ]
    );
    assert!(env.fake.requests().is_empty(), "{:?}", env.fake.requests());

    let r = env.validate("us", "", "").await.unwrap().result.unwrap();
    assert!(r.valid, "{r:?}");
    assert_eq!(ie1.requests().len(), 2, "us1 went to ie1's hosts");
    assert_eq!(env.fake.requests().len(), 2);

    // Resolve tells callers where to go: the Region, its default edge, and the bases.
    let eu = env.resolve("eu", false).await.unwrap();
    assert_eq!((eu.region.as_str(), eu.edge.as_str()), ("ie1", "dublin"));
    assert_eq!(
        (eu.api_base_url.as_str(), eu.messaging_base_url.as_str()),
        (ie1.base.as_str(), ie1.base.as_str())
    );
    let us = env.resolve("us", false).await.unwrap();
    assert_eq!((us.region.as_str(), us.edge.as_str()), ("us1", ""));
    assert_eq!(us.api_base_url, env.fake.base);
    let meta = env.metadata("eu").await;
    assert_eq!(
        (meta.region.as_str(), meta.edge.as_str()),
        ("ie1", "dublin")
    );
    ie1.assert_clean();
    env.fake.assert_clean();
}

#[tokio::test]
async fn a_credential_of_another_region_is_invalid_and_says_so() {
    let (mut env, ie1) = two_regions().await;
    // The ie1 account's token, stored as us1 (the default): us1 does not know it.
    let mut wrong = ie1_token_credential();
    wrong.region = String::new();
    env.add("eu", wrong).await;
    let r = env.validate("eu", "", "").await.unwrap().result.unwrap();
    rejected(
        &r,
        pb::ValidationStep::Auth,
        401,
        20003,
        "another Twilio Region",
    );
    assert!(
        r.reason.contains("than us1") && r.reason.contains("ie1"),
        "{}",
        r.reason
    );
    assert!(ie1.requests().is_empty());

    // Stored again with its Region, the same auth is valid there.
    let mut req = add_request(OWNER, "eu", ie1_token_credential());
    req.replace = true;
    env.client.add(req).await.unwrap();
    let r = env.validate("eu", "", "").await.unwrap().result.unwrap();
    assert!(r.valid, "{r:?}");
    assert_eq!(
        env.metadata("eu").await.validation.unwrap().state(),
        pb::ValidationState::Valid
    );
}

#[tokio::test]
async fn an_edge_is_kept_and_a_bad_region_or_edge_names_the_allowed_values() {
    let (mut env, _ie1) = two_regions().await;
    env.add("fra", in_region(ie1_token_credential(), "ie1", "frankfurt"))
        .await;
    let r = env.resolve("fra", false).await.unwrap();
    assert_eq!((r.region.as_str(), r.edge.as_str()), ("ie1", "frankfurt"));

    for (region, edge, field, allowed) in [
        ("jp1", "", "credential.region", "\"au1\""),
        ("IE1", "", "credential.region", "\"ie1\""),
        ("ie1", "paris", "credential.edge", "\"sao-paulo\""),
    ] {
        let req = add_request(OWNER, "bad", in_region(token_credential(), region, edge));
        let status = env.client.add(req).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        use tonic_types::StatusExt;
        let bad = status.get_details_bad_request().expect("BadRequest");
        let v = &bad.field_violations[0];
        assert_eq!(v.field, field);
        assert!(v.description.contains(allowed), "{}", v.description);
    }
}

#[tokio::test]
async fn an_old_client_and_an_old_record_are_us1() {
    let mut env = env().await;
    // An old client sends no region: the fields' defaults.
    env.add("old", token_credential()).await;
    let meta = env.metadata("old").await;
    assert_eq!((meta.region.as_str(), meta.edge.as_str()), ("us1", ""));
    assert!(
        meta.over_privileged,
        "an auth token is more than sending needs"
    );
    assert_eq!(meta.key_type(), pb::KeyType::Unspecified);
}

async fn key_of(kind: KeyKind) -> (Env, pb::ValidationResult) {
    let mut env = env().await;
    env.fake.update(|a| a.key_kind = kind);
    env.add("key", api_key_credential()).await;
    let r = env.validate("key", "", "").await.unwrap().result.unwrap();
    (env, r)
}

#[tokio::test]
async fn each_key_type_is_detected_and_listed() {
    for (kind, want, over_privileged) in [
        (KeyKind::Main, pb::KeyType::Main, true),
        (KeyKind::Standard, pb::KeyType::Standard, false),
        (
            KeyKind::Restricted { create: true },
            pb::KeyType::Restricted,
            false,
        ),
    ] {
        let (mut env, r) = key_of(kind).await;
        assert!(r.valid, "{kind:?}: {r:?}");
        assert_eq!(r.key_type(), want, "{kind:?}");
        let meta = env.metadata("key").await;
        assert_eq!(meta.key_type(), want, "{kind:?}");
        assert_eq!(meta.over_privileged, over_privileged, "{kind:?}");
        // Only a Restricted key is asked whether it may create messages.
        let probes = u32::from(matches!(kind, KeyKind::Restricted { .. }));
        assert_eq!(env.fake.create_probes(), probes, "{kind:?}");
        assert!(env.fake.sent().is_empty(), "a probe sent an SMS");
        env.fake.assert_clean();
    }
}

#[tokio::test]
async fn the_key_type_is_kept_when_a_test_sms_decides() {
    let mut env = env().await;
    env.fake.update(|a| a.key_kind = KeyKind::Standard);
    env.add("key", api_key_credential()).await;
    let r = env
        .validate("key", RECIPIENT, "")
        .await
        .unwrap()
        .result
        .unwrap();
    assert!(
        r.valid && r.step() == pb::ValidationStep::TestMessage,
        "{r:?}"
    );
    assert_eq!(r.key_type(), pb::KeyType::Standard);
    assert_eq!(env.metadata("key").await.key_type(), pb::KeyType::Standard);
}

#[tokio::test]
async fn a_restricted_key_that_may_not_create_messages_is_invalid() {
    let (mut env, r) = key_of(KeyKind::Restricted { create: false }).await;
    rejected(
        &r,
        pb::ValidationStep::KeyType,
        403,
        70051,
        "lacks Messages create",
    );
    assert_eq!(r.key_type(), pb::KeyType::Restricted);
    let meta = env.metadata("key").await;
    let status = meta.validation.as_ref().unwrap();
    assert_eq!(status.state(), pb::ValidationState::Invalid);
    assert!(
        status.message.contains("cannot send SMS"),
        "{}",
        status.message
    );
    assert_eq!(meta.key_type(), pb::KeyType::Restricted);
    assert!(env.fake.sent().is_empty());
    env.fake.assert_clean();
}

#[tokio::test]
async fn a_main_key_is_flagged_in_the_log_without_its_secret() {
    let (_env, r) = key_of(KeyKind::Main).await;
    assert_eq!(r.key_type(), pb::KeyType::Main);
    let logs = logs_text();
    assert!(
        logs.contains("over-privileged") && logs.contains("main"),
        "no over-privileged warning in the log"
    );
    no_secret(&logs);
}

#[tokio::test]
async fn a_replaced_key_forgets_the_old_type() {
    let (mut env, _) = key_of(KeyKind::Main).await;
    let mut req = add_request(OWNER, "key", api_key_credential());
    req.replace = true;
    env.client.add(req).await.unwrap();
    let meta = env.metadata("key").await;
    assert_eq!(meta.key_type(), pb::KeyType::Unspecified);
    assert!(!meta.over_privileged, "not known until validated");
}
