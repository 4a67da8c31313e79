//! Validation against the Twilio REST API: does the auth work, does the sender belong to the
//! account, and (optionally) does a test SMS go out.
//!
//! Base URLs come from config so tests and CI point them at a fake Twilio or a mock generated from
//! Twilio's OpenAPI spec. Secrets travel only in the basic-auth header (never in a URL), and
//! nothing here logs a request, a header or reqwest's own error text (which holds the URL).

mod checks;
mod client;
mod errors;
mod hosts;
mod key_type;

pub use errors::{BuildError, TwilioError};

/// Whether credvault knows Twilio error `code` (metrics label only those by number).
pub fn is_known_code(code: i32) -> bool {
    errors::explain(code).is_some()
}
pub use hosts::{BaseUrls, Hosts};

use crate::config::TwilioConfig;
use crate::domain::{Credential, KeyType, MessageSid, PhoneNumber};
use client::Http;

/// Text of the test SMS when the caller gives none.
pub const DEFAULT_TEST_BODY: &str = "Your Twilio credential has been validated.";
/// Longest test SMS body accepted (two concatenated GSM-7 segments, roughly).
pub const MAX_TEST_BODY_CHARS: usize = 320;

/// Which check decided an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Auth,
    Sender,
    /// The API key type probe (and, for a Restricted key, whether it may create messages).
    KeyType,
    TestMessage,
}

/// A test SMS to send once auth and sender check out.
#[derive(Debug, Clone)]
pub struct TestMessage {
    pub to: PhoneNumber,
    pub body: String,
}

/// What Twilio said about a credential. A rejection is an outcome too (`valid == false`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub valid: bool,
    /// The check that decided: the failing one, or the last one run when valid.
    pub step: Step,
    /// The HTTP status of the reply that decided.
    pub http_status: u16,
    /// Twilio's error code when Twilio rejected something, 0 otherwise.
    pub twilio_error_code: i32,
    /// Secret-free, human-readable reason.
    pub reason: String,
    /// The SID of the test SMS, when one was sent.
    pub message_sid: Option<MessageSid>,
    /// For an API key whose auth Twilio accepted: what it may do.
    pub key_type: Option<KeyType>,
}

/// The one Twilio client of the process: a shared connection pool.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    http: Http,
    hosts: Hosts,
}

impl TwilioClient {
    pub fn new(cfg: &TwilioConfig) -> Result<Self, BuildError> {
        Ok(Self {
            hosts: Hosts::new(cfg)?,
            http: Http::new(cfg)?,
        })
    }

    /// A client on the same connection pool that sends at most `per_second` requests a
    /// second, retries included (background re-validation's own budget).
    pub fn paced(&self, per_second: u32) -> Self {
        Self {
            http: self.http.paced(per_second),
            hosts: self.hosts.clone(),
        }
    }

    /// Where each Region's requests go (Resolve hands these to callers).
    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    /// The auth and sender checks, then for an API key the key type probe, stopping at the
    /// first rejection (`valid == false`). `Err`: no verdict; the caller must not record
    /// anything. Requests go to the credential's Region.
    pub async fn check(&self, cred: &Credential) -> Result<Outcome, TwilioError> {
        checks::run(self, cred).await
    }

    /// Sends the test SMS, once (never retried), for a credential whose checks passed.
    pub async fn send_test(
        &self,
        cred: &Credential,
        test: &TestMessage,
    ) -> Result<Outcome, TwilioError> {
        checks::test_message(self, cred, test).await
    }
}
