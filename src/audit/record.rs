//! One audit line: who called what, for which owner and label, and how it ended. Never a
//! secret, a token or a test recipient's full number.

use std::time::{Duration, SystemTime};

use serde::Serialize;

/// What the gRPC edge knows of one finished RPC.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub request_id: String,
    pub caller: Option<String>,
    pub peer: Option<String>,
    /// `Resolve`, `Add`, ...
    pub method: &'static str,
    pub owner: String,
    pub label: String,
    /// The test SMS recipient, masked before it is written.
    pub test_recipient: Option<String>,
    /// The gRPC status code's name (`OK`, `NOT_FOUND`, ...).
    pub code: &'static str,
    pub duration: Duration,
}

/// The line as written, in field order; `prev`, last, chains it to the line before (it is
/// added by [`Event::finish_line`] under the chain lock).
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    request_id: &'a str,
    caller: Option<&'a str>,
    peer: Option<&'a str>,
    method: &'a str,
    owner: &'a str,
    label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_recipient: Option<String>,
    code: &'a str,
    duration_ms: f64,
}

/// Longest owner or label written: they are the request's text, before validation.
const MAX_FIELD: usize = 128;

impl Event {
    /// The JSON line (no newline) chained to the line whose hash is `prev`.
    pub fn to_line(&self, at: SystemTime, prev: &str) -> Vec<u8> {
        let mut line = self.unchained(at);
        finish_line(&mut line, prev);
        line
    }

    /// The line up to its `prev` value: everything that can be made outside the chain lock.
    pub fn unchained(&self, at: SystemTime) -> Vec<u8> {
        let line = Line {
            time: humantime::format_rfc3339_micros(at).to_string(),
            request_id: &self.request_id,
            caller: self.caller.as_deref(),
            peer: self.peer.as_deref(),
            method: self.method,
            owner: clip(&self.owner),
            label: clip(&self.label),
            test_recipient: self.test_recipient.as_deref().map(mask),
            code: self.code,
            duration_ms: (self.duration.as_secs_f64() * 1e6).round() / 1e3,
        };
        let mut json = serde_json::to_vec(&line).expect("an audit line serializes");
        // `{...}` -> `{...,"prev":"`: the hash goes in under the lock.
        json.pop();
        json.extend_from_slice(b",\"prev\":\"");
        json
    }
}

/// Completes an [`Event::unchained`] line with the hash of the line before.
pub fn finish_line(line: &mut Vec<u8>, prev: &str) {
    line.extend_from_slice(prev.as_bytes());
    line.extend_from_slice(b"\"}");
}

/// The canonical name of a gRPC code (`NOT_FOUND`), as gRPC documents and grpcurl prints it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(MAX_FIELD) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// "+6591234567" -> "+65******67": the country and the last two digits, enough to tell numbers
/// apart in an investigation, not enough to text one.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 5 {
        return "*".repeat(chars.len());
    }
    let (head, tail) = (3, 2);
    chars[..head]
        .iter()
        .chain(std::iter::repeat_n(&'*', chars.len() - head - tail))
        .chain(&chars[chars.len() - tail..])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_and_fields_clipped() {
        assert_eq!(mask("+6591234567"), "+65******67");
        assert_eq!(mask("+123"), "****");
        let e = Event {
            request_id: "r-1".into(),
            caller: Some("sender".into()),
            method: "Validate",
            owner: "o".repeat(500),
            label: "prod".into(),
            test_recipient: Some("+14155550123".into()),
            code: "OK",
            duration: Duration::from_micros(1500),
            ..Event::default()
        };
        let line = String::from_utf8(e.to_line(SystemTime::UNIX_EPOCH, "00")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["owner"].as_str().unwrap().len(), MAX_FIELD);
        assert_eq!(v["test_recipient"], "+14*******23");
        assert!(!line.contains("4155550123"));
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["time"], "1970-01-01T00:00:00.000000Z");
    }
}
