//! Callers over real gRPC: every CredentialVault RPC refuses a missing or unknown token
//! (UNAUTHENTICATED) and a caller without the scope or the owner (PERMISSION_DENIED), with the
//! same answer whether the label exists or not; health and reflection need no caller; a caller's
//! test_recipients bound its test SMS.

mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use common::*;
use credvault::proto::v1 as pb;
use tonic::Code;
use validate_env::*;

const READER: &str = "cvt_reader-token-list-and-resolve-acme-0000";
const WRITER: &str = "cvt_writer-token-write-gov-sg-prefix-000000";
const VALIDATOR: &str = "cvt_validator-token-validate-acme-only-0000";
const TEXTER: &str = "cvt_texter-token-validate-plus65-only-00000";

#[derive(Debug, Clone, Copy)]
enum Rpc {
    Add,
    Validate,
    List,
    Delete,
    Resolve,
}

const RPCS: [Rpc; 5] = [
    Rpc::Add,
    Rpc::Validate,
    Rpc::List,
    Rpc::Delete,
    Rpc::Resolve,
];

/// One call of `rpc` on `c` (a macro: the clients with and without a token differ in type).
macro_rules! call {
    ($c:expr, $rpc:expr, $owner:expr, $label:expr) => {{
        let (owner, label): (&str, &str) = ($owner, $label);
        match $rpc {
            Rpc::Add => {
                let mut req = add_request(owner, label, token_credential());
                req.replace = true;
                $c.add(req).await.map(drop)
            }
            Rpc::Validate => $c
                .validate(pb::ValidateRequest {
                    owner: owner.into(),
                    label: label.into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::List => $c
                .list(pb::ListRequest {
                    owner: owner.into(),
                    ..Default::default()
                })
                .await
                .map(drop),
            Rpc::Delete => $c
                .delete(pb::DeleteRequest {
                    owner: owner.into(),
                    label: label.into(),
                })
                .await
                .map(drop),
            Rpc::Resolve => $c.resolve(resolve_request(owner, label)).await.map(drop),
        }
    }};
}

async fn env_with_callers() -> Env {
    env_with(|c| {
        c.callers
            .push(caller("reader", READER, &["list", "resolve"], &["acme"]));
        c.callers
            .push(caller("writer", WRITER, &["write"], &["gov.sg:*"]));
        c.callers
            .push(caller("validator", VALIDATOR, &["validate"], &["acme"]));
        let mut texter = credvault::auth::CallerSpec {
            name: "texter".into(),
            token_sha256: Some(credvault::auth::token::TokenHash::of(TEXTER).hex()),
            scopes: vec!["validate".into(), "write".into()],
            owners: vec!["*".into()],
            ..Default::default()
        };
        texter.test_recipients = Some(vec!["+65*".into()]);
        c.callers.push(texter.check().unwrap());
    })
    .await
}

#[tokio::test]
async fn every_rpc_needs_a_known_caller_with_its_scope_and_owner() {
    let mut env = env_with_callers().await;
    // Existing credentials under the owners the callers are (not) allowed.
    for owner in ["acme", "gov.sg:moh", "other"] {
        env.client
            .add(add_request(owner, "exists", token_credential()))
            .await
            .unwrap();
    }
    let channel = env.server.channel().await;
    let mut nobody =
        credvault::proto::v1::credential_vault_client::CredentialVaultClient::new(channel.clone());
    let mut stranger = client_with(channel.clone(), "cvt_nobody-has-this-token-000000000000000");
    let mut reader = client_with(channel.clone(), READER);
    let mut writer = client_with(channel.clone(), WRITER);
    let mut validator = client_with(channel.clone(), VALIDATOR);

    for rpc in RPCS {
        for label in ["exists", "missing"] {
            let e: tonic::Status = call!(nobody, rpc, "acme", label).unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated, "{rpc:?} {label}: {e:?}");
            assert!(e.message().starts_with("no caller"), "{e:?}");
            let e: tonic::Status = call!(stranger, rpc, "acme", label).unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated, "{rpc:?} {label}: {e:?}");
            assert_eq!(e.message(), "unknown bearer token");
        }

        // The caller that lacks the scope, and the one that has it for other owners: the same
        // answer whether the label exists or not, so nothing is learnt about the store.
        let (without_scope, scoped_elsewhere, scoped_owner) = match rpc {
            Rpc::List | Rpc::Resolve => (&mut writer, &mut reader, "gov.sg:moh"),
            Rpc::Add | Rpc::Delete => (&mut reader, &mut writer, "acme"),
            Rpc::Validate => (&mut reader, &mut validator, "other"),
        };
        let mut answers = Vec::new();
        for label in ["exists", "missing"] {
            let e: tonic::Status = call!(without_scope, rpc, "acme", label).unwrap_err();
            assert_eq!(e.code(), Code::PermissionDenied, "{rpc:?} {label}: {e:?}");
            let e2: tonic::Status = call!(scoped_elsewhere, rpc, scoped_owner, label).unwrap_err();
            assert_eq!(e2.code(), Code::PermissionDenied, "{rpc:?} {label}: {e2:?}");
            answers.push((e.message().to_owned(), e2.message().to_owned()));
        }
        assert_eq!(
            answers[0], answers[1],
            "{rpc:?}: the answer depends on the label"
        );
    }

    // The right callers get through.
    call!(reader, Rpc::List, "acme", "").unwrap();
    call!(reader, Rpc::Resolve, "acme", "exists").unwrap();
    let e: tonic::Status = call!(reader, Rpc::Resolve, "acme", "missing").unwrap_err();
    assert_eq!(
        e.code(),
        Code::NotFound,
        "past the check, the store answers"
    );
    call!(writer, Rpc::Add, "gov.sg:mom", "new").unwrap();
    call!(writer, Rpc::Delete, "gov.sg:mom", "new").unwrap();
    // Add with `validate` needs the validate scope too.
    let mut validated = add_request("gov.sg:mom", "v", token_credential());
    validated.validate = true;
    let e = writer.add(validated).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("'validate'"), "{e:?}");
    env.fake.assert_clean();
}

#[tokio::test]
async fn health_and_reflection_need_no_caller() {
    let env = env_with_callers().await;
    let channel = env.server.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "credvault.v1.CredentialVault".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        reply.into_inner().status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    assert!(replies.message().await.unwrap().is_some());
}

#[tokio::test]
async fn test_recipients_bound_a_caller_s_test_sms() {
    let mut env = env_with_callers().await;
    env.add("prod", token_credential()).await;
    let mut texter = client_with(env.server.channel().await, TEXTER);
    let validate = |to: &str| pb::ValidateRequest {
        owner: OWNER.into(),
        label: "prod".into(),
        test_recipient: to.into(),
        ..Default::default()
    };
    let e = texter.validate(validate("+14155550123")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("test_recipients"), "{e:?}");
    assert!(
        !e.message().contains("4155550123"),
        "the number is echoed: {e:?}"
    );
    assert!(env.fake.sent().is_empty(), "an SMS went out");
    // Add with validate and a test recipient is held to the same list.
    let mut add = add_request(OWNER, "other", token_credential());
    add.validate = true;
    add.test_recipient = "+14155550123".into();
    let e = texter.add(add).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(env.fake.sent().is_empty(), "an SMS went out");

    let reply = texter.validate(validate("+6591234567")).await.unwrap();
    assert!(reply.into_inner().result.unwrap().valid);
    assert_eq!(env.fake.sent().len(), 1);
    // Without test_recipients (the tests caller), any number: the quotas still apply.
    let reply = env.validate("prod", "+14155550123", "").await.unwrap();
    assert!(reply.result.unwrap().valid);
}
