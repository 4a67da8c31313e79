//! What the plaintext metadata (List, Add's reply) may say about a secret.

mod common;

use common::*;
use credvault::proto::v1 as pb;

fn with_secret(secret: &str) -> pb::TwilioCredential {
    let mut cred = api_key_credential();
    if let Some(pb::twilio_credential::Auth::ApiKey(k)) = &mut cred.auth {
        k.api_key_secret = secret.into();
    }
    cred
}

#[tokio::test]
async fn the_hint_shows_four_characters_of_long_secrets_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    for (label, secret, hint) in [
        ("four", "s3Cr", ""),
        ("fifteen", "abcdefghijklmno", ""),
        ("sixteen", "abcdefghijklmnop", "mnop"),
        (
            "long",
            API_KEY_SECRET,
            &API_KEY_SECRET[API_KEY_SECRET.len() - 4..],
        ),
    ] {
        let added = c
            .add(add_request("acme", label, with_secret(secret)))
            .await
            .unwrap()
            .into_inner()
            .credential
            .unwrap();
        assert_eq!(added.secret_hint, hint, "{label}");
    }
    let listed = c
        .list(pb::ListRequest {
            owner: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let four = listed
        .credentials
        .iter()
        .find(|m| m.label == "four")
        .unwrap();
    assert_eq!(four.secret_hint, "", "a 4-character secret is shown whole");
}
