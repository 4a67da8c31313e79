//! Validation against the Twilio REST API: does the auth work, does the sender belong to the
//! account, and (optionally) does a test SMS go out.
//!
//! Base URLs come from config so tests and CI point them at a fake Twilio or a mock generated from
//! Twilio's OpenAPI spec. Secrets travel only in the basic-auth header (never in a URL), and
//! nothing here logs a request, a header or reqwest's own error text (which holds the URL).

mod checks;
mod client;
mod errors;

pub use errors::{BuildError, TwilioError};

use crate::config::TwilioConfig;
use crate::domain::{Credential, MessageSid, PhoneNumber};
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
}

/// The one Twilio client of the process: a shared connection pool.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    http: Http,
    api_base: String,
    messaging_base: String,
}

impl TwilioClient {
    pub fn new(cfg: &TwilioConfig) -> Result<Self, BuildError> {
        for (var, base) in [
            ("twilio.api_base (CREDVAULT_TWILIO_API_BASE)", &cfg.api_base),
            (
                "twilio.messaging_base (CREDVAULT_TWILIO_MESSAGING_BASE)",
                &cfg.messaging_base,
            ),
        ] {
            check_base(var, base)?;
        }
        Ok(Self {
            http: Http::new(cfg)?,
            api_base: cfg.api_base.trim_end_matches('/').to_owned(),
            messaging_base: cfg.messaging_base.trim_end_matches('/').to_owned(),
        })
    }

    /// The auth and sender checks, in that order, stopping at the first rejection (`valid ==
    /// false`). `Err`: no verdict; the caller must not record anything.
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

/// A base URL must be https, or http to this machine only (a fake or a mock in tests): basic
/// auth carries the secret and must not travel in clear. A typo stops startup instead of failing
/// every validation later.
fn check_base(var: &str, base: &str) -> Result<(), BuildError> {
    let url = reqwest::Url::parse(base)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    let Some(url) = url.filter(|u| u.has_host()) else {
        return Err(BuildError(format!(
            "{var} must be an https URL, got {base:?}"
        )));
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() == "http" && !loopback {
        return Err(BuildError(format!(
            "{var} is plaintext http to a remote host ({base:?}): the auth token would travel in \
             clear; use https (http is accepted for 127.0.0.1, ::1 and localhost only)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_base_urls_are_refused_at_startup() {
        let mut cfg = crate::Config::with_data_dir("unused").twilio;
        assert!(TwilioClient::new(&cfg).is_ok());
        cfg.messaging_base = "messaging.twilio.com".into();
        let err = TwilioClient::new(&cfg).unwrap_err().to_string();
        assert!(err.contains("CREDVAULT_TWILIO_MESSAGING_BASE"), "{err}");
    }

    #[test]
    fn plaintext_http_is_for_loopback_only() {
        for ok in [
            "https://api.twilio.com",
            "http://127.0.0.1:4010",
            "http://127.1.2.3",
            "http://[::1]:9",
            "http://localhost:4010/",
        ] {
            assert!(check_base("V", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.twilio.com",
            "http://10.0.0.1",
            "http://localhost.evil.example",
            "ftp://127.0.0.1",
        ] {
            assert!(check_base("V", bad).is_err(), "{bad}");
        }
        let err = check_base("V", "http://api.twilio.com")
            .unwrap_err()
            .to_string();
        assert!(err.contains("clear"), "{err}");
    }
}
