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

/// Records are sealed whole: the data dir shows owner and label names and nothing else of a
/// credential (no SID, sender or secret), and after a Delete only ciphertext is left in
/// sled's log.
#[tokio::test]
async fn the_data_dir_holds_no_sid_sender_or_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    let cred = api_key_credential();
    c.add(add_request("acme", "kept", cred.clone()))
        .await
        .unwrap();
    c.add(add_request("acme", "erased", token_credential()))
        .await
        .unwrap();
    c.delete(pb::DeleteRequest {
        owner: "acme".into(),
        label: "erased".into(),
    })
    .await
    .unwrap();
    let listed = c
        .list(pb::ListRequest {
            owner: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let shown = &listed.credentials[0];
    drop(c);
    server.stop().await.unwrap();

    let mut bytes = Vec::new();
    let mut dirs = vec![dir.path().join("data")];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().unwrap() != "master.key" {
                bytes.extend(std::fs::read(&path).unwrap());
            }
        }
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        contains("acme") && contains("kept"),
        "owner and label are keys"
    );
    let mut secrets = vec![
        API_KEY_SECRET,
        AUTH_TOKEN,
        shown.account_sid.as_str(),
        shown.api_key_sid.as_str(),
    ];
    if let Some(pb::credential_metadata::Sender::MessagingServiceSid(mg)) = &shown.sender {
        secrets.push(mg);
    }
    for needle in secrets {
        // (The 4-character hint is a part of the secret; alone it could match ciphertext.)
        assert!(needle.len() >= 16, "{needle:?}");
        assert!(
            !contains(needle),
            "{needle} is in the data dir in the clear"
        );
    }
}
