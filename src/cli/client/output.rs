//! What the client subcommands print: aligned tables for people, the proto3 JSON mapping (as
//! grpcurl prints it) for scripts, and failed statuses with their rich details.

use std::fmt::Write as _;
use std::sync::OnceLock;

use credvault::audit::code_name;
use credvault::proto::v1::{CredentialMetadata, ValidationResult, ValidationState, ValidationStep};
use credvault::proto::FILE_DESCRIPTOR_SET;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use tonic_types::StatusExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// One message (`name` in package credvault.v1) as one line of JSON: the proto3 mapping
/// (lowerCamelCase names, enum names, RFC 3339 timestamps, 64-bit integers as strings), every
/// field present.
pub fn json(message: &impl Message, name: &str) -> String {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("the build's own descriptors decode")
    });
    let desc = pool
        .get_message_by_name(&format!("credvault.v1.{name}"))
        .expect("a message of the contract");
    let dynamic = DynamicMessage::decode(desc, message.encode_to_vec().as_slice())
        .expect("a message re-decodes with its own descriptor");
    let mut out = serde_json::Serializer::new(Vec::new());
    dynamic
        .serialize_with_options(
            &mut out,
            &SerializeOptions::new().skip_default_fields(false),
        )
        .expect("JSON into memory cannot fail");
    String::from_utf8(out.into_inner()).expect("serde_json writes UTF-8")
}

/// Rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// `key: value` lines, for one object.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (key, value) in pairs {
        let _ = writeln!(out, "{:<width$} {value}", format!("{key}:"));
    }
    out
}

pub const METADATA_HEADER: &[&str] = &[
    "LABEL", "ACCOUNT", "REGION", "AUTH", "SENDER", "HINT", "VERSION", "STATE", "CHECKED",
];

/// One credential as a row under [`METADATA_HEADER`].
pub fn metadata_row(m: &CredentialMetadata) -> Vec<String> {
    use credvault::proto::v1::credential_metadata::Sender;
    use credvault::proto::v1::KeyType;
    let mut auth = match m.key_type() {
        _ if m.api_key_sid.is_empty() => "auth-token".to_string(),
        KeyType::Unspecified => format!("api-key {}", m.api_key_sid),
        kind => format!("api-key {} ({})", m.api_key_sid, key_type(kind)),
    };
    if m.over_privileged {
        auth.push_str(" [over-privileged]");
    }
    let region = match m.edge.as_str() {
        "" => m.region.clone(),
        edge => format!("{} ({edge})", m.region),
    };
    let sender = match &m.sender {
        Some(Sender::MessagingServiceSid(sid)) => sid.clone(),
        Some(Sender::FromNumber(number)) => number.clone(),
        None => String::new(),
    };
    let validation = m.validation.clone().unwrap_or_default();
    vec![
        m.label.clone(),
        m.account_sid.clone(),
        region,
        auth,
        sender,
        m.secret_hint.clone(),
        m.version.to_string(),
        state(validation.state()).to_string(),
        validation
            .checked_at
            .map_or_else(|| "-".into(), |t| t.to_string()),
    ]
}

fn key_type(kind: credvault::proto::v1::KeyType) -> &'static str {
    use credvault::proto::v1::KeyType;
    match kind {
        KeyType::Main => "main",
        KeyType::Standard => "standard",
        KeyType::Restricted => "restricted",
        KeyType::Unknown | KeyType::Unspecified => "unknown",
    }
}

fn state(state: ValidationState) -> &'static str {
    match state {
        ValidationState::Valid => "valid",
        ValidationState::Invalid => "invalid",
        ValidationState::Unvalidated => "unvalidated",
        ValidationState::Unspecified => "unknown",
    }
}

/// A validation outcome as `key: value` pairs.
pub fn validation_fields(r: &ValidationResult) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("valid", if r.valid { "yes" } else { "no" }.to_string()),
        ("step", step_name(r.step())),
        ("reason", r.reason.clone()),
        ("http status", r.http_status.to_string()),
    ];
    if r.twilio_error_code != 0 {
        pairs.push(("twilio code", r.twilio_error_code.to_string()));
    }
    if !r.message_sid.is_empty() {
        pairs.push(("message sid", r.message_sid.clone()));
    }
    if r.key_type() != credvault::proto::v1::KeyType::Unspecified {
        pairs.push(("key type", key_type(r.key_type()).to_string()));
    }
    pairs
}

/// "error: NOT_FOUND: ..." and one line per rich detail: BadRequest field violations, ErrorInfo,
/// QuotaFailure, RetryInfo, and the request id to find the server's log lines by.
pub fn status_report(status: &tonic::Status) -> String {
    let mut out = format!(
        "error: {}: {}\n",
        code_name(status.code()),
        status.message()
    );
    let details = status.get_error_details();
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            let _ = writeln!(out, "  field {}: {}", v.field, v.description);
        }
    }
    if let Some(info) = details.error_info() {
        let mut meta: Vec<_> = info.metadata.iter().collect();
        meta.sort();
        let meta: Vec<String> = meta.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        let _ = writeln!(
            out,
            "  reason: {} ({}){}",
            info.reason,
            info.domain,
            meta.concat()
        );
    }
    if let Some(quota) = details.quota_failure() {
        for v in &quota.violations {
            let _ = writeln!(out, "  quota {}: {}", v.subject, v.description);
        }
    }
    if let Some(delay) = details.retry_info().and_then(|r| r.retry_delay) {
        let _ = writeln!(out, "  retry after: {}", humantime::format_duration(delay));
    }
    if let Some(id) = status
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        let _ = writeln!(out, "  request id: {id}");
    }
    out
}

/// "test_message" for `VALIDATION_STEP_TEST_MESSAGE`: the proto name, without its prefix.
fn step_name(step: ValidationStep) -> String {
    let name = step.as_str_name();
    name.strip_prefix("VALIDATION_STEP_")
        .unwrap_or(name)
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_show_their_proto_name() {
        assert_eq!(step_name(ValidationStep::TestMessage), "test_message");
        assert_eq!(step_name(ValidationStep::KeyType), "key_type");
    }

    #[test]
    fn code_names_are_canonical() {
        assert_eq!(code_name(tonic::Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(
            code_name(tonic::Code::ResourceExhausted),
            "RESOURCE_EXHAUSTED"
        );
    }

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     BB\nlong  x\n");
    }
}
