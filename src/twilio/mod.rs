//! Validation against the Twilio REST API: does the auth work, does the sender belong to the
//! account, and (optionally) does a test SMS go out.
//!
//! Base URLs come from config so tests and CI point them at a fake Twilio or a mock generated from
//! Twilio's OpenAPI spec. Secrets travel only in the basic-auth header (never in a URL), and
//! nothing here logs a request, a header or reqwest's own error text (which holds the URL).

mod checks;
mod client;
mod errors;

use std::sync::Arc;

use tokio::sync::Semaphore;

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

/// The one Twilio client of the process: a shared connection pool and a cap on validations in
/// flight, so a burst of Validate calls cannot open unbounded connections to Twilio.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    http: Http,
    api_base: String,
    messaging_base: String,
    in_flight: Arc<Semaphore>,
}

impl TwilioClient {
    pub fn new(cfg: &TwilioConfig) -> Result<Self, BuildError> {
        // A typo in a base URL should stop startup, not fail every validation later.
        for (var, base) in [
            ("CREDVAULT_TWILIO_API_BASE", &cfg.api_base),
            ("CREDVAULT_TWILIO_MESSAGING_BASE", &cfg.messaging_base),
        ] {
            let ok = reqwest::Url::parse(base)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                return Err(BuildError(format!(
                    "{var} must be an http(s) URL, got {base:?}"
                )));
            }
        }
        Ok(Self {
            http: Http::new(cfg)?,
            api_base: cfg.api_base.trim_end_matches('/').to_owned(),
            messaging_base: cfg.messaging_base.trim_end_matches('/').to_owned(),
            in_flight: Arc::new(Semaphore::new(cfg.max_concurrent.max(1))),
        })
    }

    /// Runs the checks in order (auth, sender, optional test SMS), stopping at the first rejection.
    /// `Err` means Twilio could not be asked; the caller must not record anything then.
    pub async fn validate(
        &self,
        cred: &Credential,
        test: Option<&TestMessage>,
    ) -> Result<Outcome, TwilioError> {
        // The semaphore is never closed, so acquire cannot fail.
        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("validation semaphore is never closed");
        checks::run(self, cred, test).await
    }
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
}
