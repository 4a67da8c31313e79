//! Twilio's error bodies and what credvault makes of them.
//!
//! Two kinds of failure, kept apart on purpose: a *rejection* is Twilio answering "no" (4xx with a
//! `{"code", "message", "more_info", "status"}` body) and is a normal validation result; a
//! [`TwilioError`] means Twilio could not be asked (unreachable, timed out, 5xx or rate limited
//! after retries) and nothing may be recorded.

use serde::Deserialize;

/// Twilio's REST error body, e.g. `{"code": 20003, "message": "Authenticate", "more_info":
/// "https://www.twilio.com/docs/errors/20003", "status": 401}`.
#[derive(Debug, Default, Deserialize)]
pub struct ApiErrorBody {
    #[serde(default)]
    pub code: Option<i32>,
    #[serde(default)]
    pub message: Option<String>,
}

impl ApiErrorBody {
    /// Parses an error body; anything else (HTML from a proxy, empty) gives an empty body.
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// Twilio error codes credvault explains itself.
pub const AUTHENTICATE: i32 = 20003;
pub const NOT_FOUND: i32 = 20404;
pub const FORBIDDEN: i32 = 20403;
pub const TOO_MANY_REQUESTS: i32 = 20429;
pub const INVALID_TO: i32 = 21211;
pub const INVALID_FROM: i32 = 21606;
pub const TRIAL_UNVERIFIED_TO: i32 = 21608;
pub const INVALID_MESSAGING_SERVICE: i32 = 21705;
/// Returned for a Restricted API key that lacks the permission for the endpoint.
pub const KEY_LACKS_PERMISSION: i32 = 70051;

/// A clear, secret-free explanation of a Twilio error code, when credvault knows one.
pub fn explain(code: i32) -> Option<&'static str> {
    Some(match code {
        AUTHENTICATE => {
            "authentication failed: wrong SID or secret, a deleted key, or a suspended or closed account"
        }
        NOT_FOUND => "the resource was not found in this account",
        FORBIDDEN | KEY_LACKS_PERMISSION => "the credential lacks the permission for this request",
        TOO_MANY_REQUESTS => "Twilio's rate limit was reached",
        INVALID_TO => "the test recipient is not a valid phone number",
        INVALID_FROM => "the from number is not a valid SMS-capable sender of this account",
        TRIAL_UNVERIFIED_TO => {
            "the test recipient is not verified: a trial account may only send to verified numbers"
        }
        INVALID_MESSAGING_SERVICE => "the messaging service is invalid or not in this account",
        21610 => "the test recipient has opted out (replied STOP) of messages from this sender",
        21614 => "the test recipient is not a mobile number",
        _ => return None,
    })
}

/// Twilio could not be asked. Never contains a secret or a URL.
#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    #[error("{call}: no reply from Twilio within the timeout")]
    Timeout { call: &'static str },
    #[error("{call}: cannot reach Twilio ({detail})")]
    Unreachable { call: &'static str, detail: String },
    #[error("{call}: Twilio answered HTTP {status} after {attempts} attempts")]
    ServerError {
        call: &'static str,
        status: u16,
        attempts: u32,
    },
    #[error("{call}: rate limited by Twilio (HTTP 429, code 20429) after {attempts} attempts; retry later")]
    RateLimited { call: &'static str, attempts: u32 },
    #[error("{call}: unexpected reply from Twilio (HTTP {status}): {detail}")]
    Unexpected {
        call: &'static str,
        status: u16,
        detail: String,
    },
}

/// The Twilio client cannot be set up: a bad base URL, or the HTTP client failed to build.
#[derive(Debug, thiserror::Error)]
#[error("Twilio client: {0}")]
pub struct BuildError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_twilio_error_bodies_and_tolerates_junk() {
        let b = ApiErrorBody::parse(
            br#"{"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}"#,
        );
        assert_eq!(b.code, Some(20003));
        assert_eq!(b.message.as_deref(), Some("Authenticate"));
        let junk = ApiErrorBody::parse(b"<html>bad gateway</html>");
        assert!(junk.code.is_none() && junk.message.is_none());
    }

    #[test]
    fn known_codes_are_explained() {
        for code in [20003, 21211, 21606, 21608, 21705, 20429, 70051] {
            assert!(explain(code).is_some(), "{code}");
        }
        assert!(explain(12345).is_none());
    }
}
