//! A Rust client of credvault, with this crate's generated types: Add, Validate, Resolve, List
//! and Delete, each printed as it goes (never a secret). Against a running server:
//!
//!   cargo run --example rust_client
//!
//! `CREDVAULT_ADDR` (default `http://127.0.0.1:50051`) and `CREDVAULT_TOKEN_FILE` (default
//! `credvault-data/admin.token`, the bootstrap token of a first start) say where and as whom.
//! Validate sends a test SMS, so point the server at a Twilio mock first (README, "Try Validate
//! on your machine"): the credential below is made of the SIDs of Twilio's spec examples, which
//! the Prism mock accepts. CI runs this against such a server (.ci/suites/60-clients.sh).

use credvault::client::{vault_client, Bearer};
use credvault::proto::v1 as pb;
use pb::twilio_credential::{Auth, Sender};

const OWNER: &str = "example-rust";
const LABEL: &str = "prod-sender";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("CREDVAULT_ADDR").unwrap_or_else(|_| "http://127.0.0.1:50051".into());
    let token_file = std::env::var("CREDVAULT_TOKEN_FILE")
        .unwrap_or_else(|_| "credvault-data/admin.token".into());
    let token = std::fs::read_to_string(&token_file)
        .map_err(|e| format!("reading the token from {token_file}: {e}"))?;
    let bearer = Bearer::new(&token).ok_or("the token file holds no token")?;
    let channel = tonic::transport::Endpoint::from_shared(addr.clone())?
        .connect()
        .await?;
    let mut vault = vault_client(channel, bearer);
    println!("connected to {addr}");

    let added = vault
        .add(pb::AddRequest {
            owner: OWNER.into(),
            label: LABEL.into(),
            credential: Some(pb::TwilioCredential {
                account_sid: "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
                auth: Some(Auth::AuthToken(pb::AuthToken {
                    auth_token: "0123456789abcdef0123456789abcdef".into(),
                })),
                sender: Some(Sender::MessagingServiceSid(
                    "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
                )),
                ..Default::default()
            }),
            replace: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .credential
        .ok_or("Add answered no metadata")?;
    println!(
        "added {OWNER}/{LABEL}: version {}, secret hint ...{}",
        added.version, added.secret_hint
    );

    let validated = vault
        .validate(pb::ValidateRequest {
            owner: OWNER.into(),
            label: LABEL.into(),
            test_recipient: "+6591234567".into(),
            test_message_body: String::new(),
        })
        .await?
        .into_inner()
        .result
        .ok_or("Validate answered no result")?;
    println!(
        "validated: valid={} step={} reason={:?}",
        validated.valid,
        validated.step().as_str_name(),
        validated.reason
    );
    if !validated.valid {
        return Err("Twilio (the mock) rejected the credential".into());
    }

    let resolved = vault
        .resolve(pb::ResolveRequest {
            owner: OWNER.into(),
            label: LABEL.into(),
            require_valid: true,
        })
        .await?
        .into_inner();
    // What a sender would hand its Twilio client: basic auth and the Region's base URL. The
    // password is the secret: used, never printed.
    println!(
        "resolved: username {} (password: {} characters), api base {}",
        resolved.username,
        resolved.password.len(),
        resolved.api_base_url
    );

    let listed = vault
        .list(pb::ListRequest {
            owner: OWNER.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    for m in &listed.credentials {
        let state = m
            .validation
            .as_ref()
            .map_or("-", |v| v.state().as_str_name());
        println!("listed: {} (version {}, {state})", m.label, m.version);
    }

    let deleted = vault
        .delete(pb::DeleteRequest {
            owner: OWNER.into(),
            label: LABEL.into(),
        })
        .await?
        .into_inner();
    println!("deleted {OWNER}/{LABEL} (version {})", deleted.version);
    Ok(())
}
