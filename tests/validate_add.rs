//! Add with `validate`: only what Twilio accepts is stored.

mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use tonic_types::StatusExt;

use common::*;
use credvault::proto::v1 as pb;
use fake_twilio::*;
use tonic::Code;
use validate_env::*;

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

    // A refused test recipient fails the Add (INVALID_ARGUMENT on test_recipient: the
    // credential is not to blame), and the stored version 2 stays.
    let mut req = add_validated("prod", api_key_credential(), recipient_with(21608));
    req.replace = true;
    let err = env.client.add(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violated_fields(&err), ["test_recipient"]);
    assert_eq!(env.listed("prod").await.0, 2);
    assert_eq!(
        env.client
            .resolve(resolve_request(OWNER, "prod"))
            .await
            .unwrap()
            .into_inner()
            .password,
        AUTH_TOKEN,
        "the refused credential replaced the stored one"
    );

    // A sender refused at the POST is Twilio rejecting the credential: TWILIO_REJECTED.
    env.fake.fail_sms_with(Some((400, 21705)));
    let mut req = add_validated("prod", token_credential(), RECIPIENT);
    req.replace = true;
    let err = env.client.add(req).await.unwrap_err();
    let info = err.get_details_error_info().unwrap();
    assert_eq!(
        (
            info.reason.as_str(),
            info.metadata["twilio_error_code"].as_str(),
            info.metadata["step"].as_str()
        ),
        ("TWILIO_REJECTED", "21705", "test_message")
    );
    assert_eq!(env.listed("prod").await.0, 2);
    env.fake.fail_sms_with(None);

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
