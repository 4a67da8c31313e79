//! Twilio's error bodies and what credvault makes of them.
//!
//! Two kinds of failure, kept apart on purpose: a *rejection* is Twilio saying the credential is
//! no good (401/403/404 with a `{"code", "message", "more_info", "status"}` body, or an account or
//! sender that does not check out) and is a normal validation result, recorded as INVALID. A
//! [`TwilioError`] is every other ending: Twilio could not be asked, answered something its API
//! does not describe, refused the test recipient, or may have sent the test SMS without saying
//! so. Nothing is recorded then.

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

    /// Twilio's message, fit for a status or a log line: at most [`MAX_TWILIO_TEXT`] characters,
    /// control characters replaced.
    pub fn message_text(&self) -> Option<String> {
        let msg = self.message.as_deref().filter(|m| !m.is_empty())?;
        Some(bounded(msg))
    }
}

/// The most characters of Twilio's own text that reach a status, a record or a log line.
pub const MAX_TWILIO_TEXT: usize = 200;

/// `text` cut to [`MAX_TWILIO_TEXT`] characters, control characters (line breaks included)
/// replaced by spaces so one reply cannot forge log lines.
pub fn bounded(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_TWILIO_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(MAX_TWILIO_TEXT).is_some() {
        out.push('…');
    }
    out
}

/// Twilio error codes credvault explains itself.
pub const AUTHENTICATE: i32 = 20003;
pub const ACCOUNT_INACTIVE: i32 = 20005;
pub const NOT_FOUND: i32 = 20404;
pub const FORBIDDEN: i32 = 20403;
pub const TOO_MANY_REQUESTS: i32 = 20429;
pub const INVALID_TO: i32 = 21211;
pub const INVALID_FROM: i32 = 21606;
pub const TRIAL_UNVERIFIED_TO: i32 = 21608;
pub const INVALID_MESSAGING_SERVICE: i32 = 21705;
/// Returned for a Restricted API key that lacks the permission for the endpoint.
pub const KEY_LACKS_PERMISSION: i32 = 70051;

/// Codes of a message creation that describe the `To` number, not the credential (Twilio's error
/// dictionary): invalid (21211, 21217), unreachable (21214, 21612), a short code (21265), the
/// sender itself (21266), a region the account may not text (21408), unverified on a trial
/// account (21608), unsubscribed (21610), not a mobile number or a landline (21614, 21635).
pub const RECIPIENT_CODES: &[i32] = &[
    INVALID_TO,
    21214,
    21217,
    21265,
    21266,
    21408,
    TRIAL_UNVERIFIED_TO,
    21610,
    21612,
    21614,
    21635,
];

/// Codes of a message creation that say the credential's sender is no good for this account:
/// an invalid or foreign From number (21212, 21606, 21659, 21660), a Messaging Service that is
/// invalid or has no number to send from (21703, 21704, 21705).
pub const SENDER_CODES: &[i32] = &[
    21212,
    INVALID_FROM,
    21659,
    21660,
    21703,
    21704,
    INVALID_MESSAGING_SERVICE,
];

/// A clear, secret-free explanation of a Twilio error code, when credvault knows one.
pub fn explain(code: i32) -> Option<&'static str> {
    Some(match code {
        AUTHENTICATE => {
            "authentication failed: wrong SID or secret, a deleted key, or a suspended or closed account"
        }
        ACCOUNT_INACTIVE => "the account is not active (suspended or closed)",
        NOT_FOUND => "the resource was not found in this account",
        FORBIDDEN | KEY_LACKS_PERMISSION => "the credential lacks the permission for this request",
        TOO_MANY_REQUESTS => "Twilio's rate limit was reached",
        INVALID_TO => "the test recipient is not a valid phone number",
        INVALID_FROM => "the from number is not a valid SMS-capable sender of this account",
        TRIAL_UNVERIFIED_TO => {
            "the test recipient is not verified: a trial account may only send to verified numbers"
        }
        INVALID_MESSAGING_SERVICE => "the messaging service is invalid or not in this account",
        21214 | 21612 => "the test recipient cannot be reached by SMS",
        21217 => "the test recipient does not look like a valid phone number",
        21265 => "the test recipient is a short code",
        21266 => "the test recipient is the sender itself",
        21408 => "the account may not send SMS to the test recipient's region (geo permissions)",
        21610 => "the test recipient has opted out (replied STOP) of messages from this sender",
        21614 => "the test recipient is not a mobile number",
        21635 => "the test recipient is a landline",
        21212 => "the from number is not a valid phone number",
        21659 | 21660 => "the from number does not belong to this account",
        21703 | 21704 => "the messaging service has no phone number to send from",
        _ => return None,
    })
}

/// Validation ended without a verdict on the credential. Never contains a secret, a URL or more
/// than [`MAX_TWILIO_TEXT`] characters of Twilio's text.
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
    RateLimited {
        call: &'static str,
        attempts: u32,
        /// The last reply's Retry-After, as Twilio sent it (uncapped): background work waits
        /// this long before asking again.
        retry_after: Option<std::time::Duration>,
    },
    /// A reply that Twilio's API does not describe (a proxy's page, a redirect, a JSON shape off
    /// the spec). Not transient: retrying gets the same.
    #[error("{call}: unexpected reply (HTTP {status}): {detail}")]
    Unexpected {
        call: &'static str,
        status: u16,
        detail: String,
    },
    /// Twilio refused to text the test recipient: a fact about the number, not the credential.
    #[error("Twilio refused the test recipient (code {code}): {reason}")]
    RecipientRejected { code: i32, reason: String },
    /// The test SMS POST went out and no clear answer came back: it may have been sent.
    #[error("the test SMS may have been sent: {detail}; the outcome is unknown and nothing was recorded. Check the account's message log before sending another")]
    MaybeSent { timed_out: bool, detail: String },
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
        for code in [20003, 20005, 20429, 70051]
            .iter()
            .chain(RECIPIENT_CODES)
            .chain(SENDER_CODES)
        {
            assert!(explain(*code).is_some(), "{code}");
        }
        assert!(explain(12345).is_none());
    }

    #[test]
    fn twilio_text_is_bounded_and_single_line() {
        let long = format!("line one\nline two {}", "x".repeat(500));
        let shown = bounded(&long);
        assert_eq!(shown.chars().count(), MAX_TWILIO_TEXT + 1);
        assert!(!shown.contains('\n') && shown.ends_with('…'));
        assert_eq!(bounded("short"), "short");
    }
}
