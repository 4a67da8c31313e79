//! Every RPC of the vault core over real gRPC: happy paths, each INVALID_ARGUMENT rule,
//! ALREADY_EXISTS, NOT_FOUND, replace and pagination.

mod common;

use common::*;
use credvault::proto::v1::{self as pb};
use prost::Message;
use tonic::Code;

#[tokio::test]
async fn add_list_resolve_delete_auth_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;

    let added = c
        .add(add_request("acme", "prod", token_credential()))
        .await
        .unwrap()
        .into_inner();
    let meta = added.credential.unwrap();
    assert_eq!(
        (meta.owner.as_str(), meta.label.as_str(), meta.version),
        ("acme", "prod", 1)
    );
    assert_eq!(meta.account_sid, ACCOUNT_SID);
    assert_eq!(meta.auth_type(), pb::AuthType::AuthToken);
    assert_eq!(meta.secret_hint, &AUTH_TOKEN[28..]);
    assert_eq!(
        meta.sender,
        Some(pb::credential_metadata::Sender::MessagingServiceSid(
            MG_SID.into()
        ))
    );
    assert_eq!(meta.created_at, meta.updated_at);
    let validation = meta.validation.unwrap();
    assert_eq!(validation.state(), pb::ValidationState::Unvalidated);
    assert!(validation.checked_at.is_none());

    let list = c
        .list(list_request("acme", 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.credentials.len(), 1);
    assert!(list.next_page_token.is_empty());
    assert!(
        !contains(&list.encode_to_vec(), AUTH_TOKEN),
        "List must never carry a secret"
    );

    let r = c
        .resolve(resolve_request("acme", "prod"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.account_sid, ACCOUNT_SID);
    assert_eq!(
        (r.username.as_str(), r.password.as_str()),
        (ACCOUNT_SID, AUTH_TOKEN)
    );
    assert_eq!(r.version, 1);
    assert!(
        matches!(r.auth, Some(pb::resolve_response::Auth::AuthToken(ref t)) if t.auth_token == AUTH_TOKEN)
    );
    assert_eq!(
        r.sender,
        Some(pb::resolve_response::Sender::MessagingServiceSid(
            MG_SID.into()
        ))
    );

    let del = c
        .delete(delete_request("acme", "prod"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(del.version, 1);
    let gone = c
        .resolve(resolve_request("acme", "prod"))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(
        gone.message(),
        "no credential with label 'prod' for owner 'acme'"
    );
    assert_eq!(
        c.delete(delete_request("acme", "prod"))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert!(c
        .list(list_request("acme", 0, ""))
        .await
        .unwrap()
        .into_inner()
        .credentials
        .is_empty());
}

#[tokio::test]
async fn api_key_resolves_with_key_sid_as_username() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    let meta = c
        .add(add_request("team@example.com", "k1", api_key_credential()))
        .await
        .unwrap();
    let meta = meta.into_inner().credential.unwrap();
    assert_eq!(meta.auth_type(), pb::AuthType::ApiKey);
    assert_eq!(meta.api_key_sid, API_KEY_SID);
    assert_eq!(
        meta.sender,
        Some(pb::credential_metadata::Sender::FromNumber(
            FROM_NUMBER.into()
        ))
    );

    let r = c
        .resolve(resolve_request("team@example.com", "k1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.username.as_str(), r.password.as_str()),
        (API_KEY_SID, API_KEY_SECRET)
    );
    assert!(
        matches!(r.auth, Some(pb::resolve_response::Auth::ApiKey(ref k))
        if k.api_key_sid == API_KEY_SID && k.api_key_secret == API_KEY_SECRET)
    );
    assert_eq!(
        r.sender,
        Some(pb::resolve_response::Sender::FromNumber(FROM_NUMBER.into()))
    );
}

#[tokio::test]
async fn duplicate_label_is_already_exists_and_replace_bumps_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    let first = c
        .add(add_request("acme", "prod", token_credential()))
        .await
        .unwrap();
    let first = first.into_inner().credential.unwrap();

    let dup = c
        .add(add_request("acme", "prod", api_key_credential()))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    assert_eq!(
        dup.message(),
        "credential with label 'prod' already exists for owner 'acme'"
    );
    // The same label under another owner is a different credential.
    c.add(add_request("other", "prod", api_key_credential()))
        .await
        .unwrap();

    let mut replace = add_request("acme", "prod", api_key_credential());
    replace.replace = true;
    let second = c
        .add(replace.clone())
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(second.created_at, first.created_at);
    assert_ne!(second.updated_at, first.updated_at);
    assert_eq!(second.auth_type(), pb::AuthType::ApiKey);
    let third = c
        .add(replace)
        .await
        .unwrap()
        .into_inner()
        .credential
        .unwrap();
    assert_eq!(third.version, 3);

    let r = c
        .resolve(resolve_request("acme", "prod"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.version, r.password.as_str()), (3, API_KEY_SECRET));
    // replace on a free label simply creates version 1.
    let mut fresh = add_request("acme", "new", token_credential());
    fresh.replace = true;
    assert_eq!(
        c.add(fresh)
            .await
            .unwrap()
            .into_inner()
            .credential
            .unwrap()
            .version,
        1
    );
}

#[tokio::test]
async fn every_bad_field_is_invalid_argument_naming_field_and_rule_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    let bad_secret = "this-is-a-bad-but-secret-token-value";

    let cases: Vec<(pb::AddRequest, &str, &str)> = vec![
        (
            add_request("", "prod", token_credential()),
            "owner",
            "1-128 characters",
        ),
        (
            add_request("a b", "prod", token_credential()),
            "owner",
            "[A-Za-z0-9._@:-]",
        ),
        (
            add_request(&"o".repeat(129), "prod", token_credential()),
            "owner",
            "1-128",
        ),
        (
            add_request("acme", "", token_credential()),
            "label",
            "1-50 characters of [a-z0-9-]",
        ),
        (
            add_request("acme", "Prod", token_credential()),
            "label",
            "[a-z0-9-]",
        ),
        (
            add_request("acme", &"l".repeat(51), token_credential()),
            "label",
            "1-50",
        ),
        (
            pb::AddRequest {
                owner: "acme".into(),
                label: "x".into(),
                ..Default::default()
            },
            "credential",
            "required",
        ),
        (
            with(|c| c.account_sid = "AC123".into()),
            "credential.account_sid",
            "\"AC\" followed by 32",
        ),
        (
            with(|c| c.auth = None),
            "credential.auth",
            "exactly one of auth_token or api_key",
        ),
        (
            with(|c| {
                c.auth = Some(pb::twilio_credential::Auth::AuthToken(pb::AuthToken {
                    auth_token: bad_secret.into(),
                }))
            }),
            "credential.auth_token.auth_token",
            "32 hex digits",
        ),
        (
            with(|c| {
                c.auth = Some(pb::twilio_credential::Auth::ApiKey(pb::ApiKey {
                    api_key_sid: "SKnope".into(),
                    api_key_secret: "ok".into(),
                }))
            }),
            "credential.api_key.api_key_sid",
            "\"SK\" followed by 32",
        ),
        (
            with(|c| {
                c.auth = Some(pb::twilio_credential::Auth::ApiKey(pb::ApiKey {
                    api_key_sid: API_KEY_SID.into(),
                    api_key_secret: format!("{bad_secret} with spaces"),
                }))
            }),
            "credential.api_key.api_key_secret",
            "printable ASCII",
        ),
        (
            with(|c| c.sender = None),
            "credential.sender",
            "exactly one of messaging_service_sid or from_number",
        ),
        (
            with(|c| {
                c.sender = Some(pb::twilio_credential::Sender::MessagingServiceSid(
                    "MG1".into(),
                ))
            }),
            "credential.messaging_service_sid",
            "\"MG\" followed by 32",
        ),
        (
            with(|c| {
                c.sender = Some(pb::twilio_credential::Sender::FromNumber(
                    "4155550100".into(),
                ))
            }),
            "credential.from_number",
            "E.164",
        ),
    ];
    for (req, field, rule) in cases {
        let err = c.add(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}");
        assert_eq!(
            violated_fields(&err),
            vec![field.to_string()],
            "{}",
            err.message()
        );
        assert!(
            err.message().contains(field) && err.message().contains(rule),
            "{field}: {}",
            err.message()
        );
        assert!(
            !err.message().contains("bad-but-secret"),
            "secret echoed: {}",
            err.message()
        );
    }

    // Several bad fields are all reported at once.
    let err = c
        .add(add_request(
            "a b",
            "Bad",
            with(|c| c.account_sid.clear()).credential.unwrap(),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&err),
        ["owner", "label", "credential.account_sid"]
    );

    for err in [
        c.resolve(resolve_request("acme", "no/slash"))
            .await
            .unwrap_err(),
        c.delete(delete_request("", "prod")).await.unwrap_err(),
        c.list(list_request("acme", -1, "")).await.unwrap_err(),
        c.list(list_request("acme", 10, "forged"))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert_eq!(violated_fields(&err).len(), 1);
    }
    assert!(c
        .list(list_request("", 0, ""))
        .await
        .unwrap_err()
        .message()
        .contains("owner"));
}

#[tokio::test]
async fn list_pages_through_everything_in_label_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    let mut labels: Vec<String> = (0..120)
        .map(|i| format!("l-{:03}", (i * 37) % 120))
        .collect();
    for label in &labels {
        c.add(add_request("acme", label, token_credential()))
            .await
            .unwrap();
    }
    // A neighbouring owner whose name extends "acme" must not leak into acme's listing.
    c.add(add_request("acme.eu", "l-000", token_credential()))
        .await
        .unwrap();
    c.add(add_request("acmf", "l-000", token_credential()))
        .await
        .unwrap();
    labels.sort();

    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = c
            .list(list_request("acme", 0, &token))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.credentials.len() <= 50);
        assert!(page.credentials.iter().all(|m| m.owner == "acme"));
        seen.extend(page.credentials.into_iter().map(|m| m.label));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!((pages, &seen), (3, &labels));

    let page = c
        .list(list_request("acme", 7, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.credentials.len(), 7);
    let all = c
        .list(list_request("acme", 100_000, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        all.credentials.len(),
        120,
        "page_size above 500 is capped, not refused"
    );
    assert!(all.next_page_token.is_empty());
    let exact = c
        .list(list_request("acme", 120, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(exact.next_page_token.is_empty(), "no empty trailing page");
}

#[tokio::test]
async fn require_valid_refuses_unvalidated_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    c.add(add_request("acme", "prod", token_credential()))
        .await
        .unwrap();
    let mut req = resolve_request("acme", "prod");
    req.require_valid = true;
    let err = c.resolve(req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // The contract's enum names, not Rust's Debug names.
    assert!(
        err.message().contains("is VALIDATION_STATE_UNVALIDATED")
            && err.message().contains("needs VALIDATION_STATE_VALID")
            && !err.message().contains("Unvalidated"),
        "{}",
        err.message()
    );
}

fn with(edit: impl FnOnce(&mut pb::TwilioCredential)) -> pb::AddRequest {
    let mut cred = token_credential();
    edit(&mut cred);
    add_request("acme", "prod", cred)
}

fn list_request(owner: &str, page_size: i32, page_token: &str) -> pb::ListRequest {
    pb::ListRequest {
        owner: owner.into(),
        page_size,
        page_token: page_token.into(),
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
