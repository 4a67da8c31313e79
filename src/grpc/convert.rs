//! Proto <-> domain. Parsing collects every bad field so one reply names them all.

use prost_types::Timestamp;
use tonic::Status;
use tonic_types::FieldViolation;

use super::status::invalid_argument;
use crate::domain::{
    AccountSid, ApiKeySid, Auth, AuthKind, Credential, Edge, Invalid, KeyType, Location,
    MessagingServiceSid, Metadata, PhoneNumber, Region, Secret, Sender, SenderInfo,
    ValidationState, ValidationStatus,
};
use crate::proto::v1 as pb;
use crate::twilio::{Hosts, Outcome, Step};
use crate::vault::Resolved;

/// Field violations found so far.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// The parsed value, or `None` with the violation recorded.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, Invalid>) -> Option<T> {
        parsed.map_err(|e| self.add(field, e.rule)).ok()
    }

    pub fn add(&mut self, field: &str, rule: impl Into<String>) {
        self.0.push(FieldViolation::new(field, rule.into()));
    }

    pub fn into_status(self) -> Status {
        invalid_argument(self.0)
    }
}

pub fn credential(v: &mut Violations, cred: Option<&pb::TwilioCredential>) -> Option<Credential> {
    let Some(cred) = cred else {
        v.add("credential", "is required");
        return None;
    };
    let account_sid = v.check(
        "credential.account_sid",
        AccountSid::parse(&cred.account_sid),
    );
    let auth = match &cred.auth {
        Some(pb::twilio_credential::Auth::AuthToken(t)) => v
            .check(
                "credential.auth_token.auth_token",
                Secret::parse_auth_token(&t.auth_token),
            )
            .map(Auth::AuthToken),
        Some(pb::twilio_credential::Auth::ApiKey(k)) => {
            let sid = v.check(
                "credential.api_key.api_key_sid",
                ApiKeySid::parse(&k.api_key_sid),
            );
            let secret = v.check(
                "credential.api_key.api_key_secret",
                Secret::parse_api_key_secret(&k.api_key_secret),
            );
            sid.zip(secret)
                .map(|(sid, secret)| Auth::ApiKey { sid, secret })
        }
        None => {
            v.add(
                "credential.auth",
                "exactly one of auth_token or api_key is required",
            );
            None
        }
    };
    let sender = match &cred.sender {
        Some(pb::twilio_credential::Sender::MessagingServiceSid(s)) => v
            .check(
                "credential.messaging_service_sid",
                MessagingServiceSid::parse(s),
            )
            .map(Sender::MessagingService),
        Some(pb::twilio_credential::Sender::FromNumber(n)) => v
            .check("credential.from_number", PhoneNumber::parse(n))
            .map(Sender::FromNumber),
        None => {
            v.add(
                "credential.sender",
                "exactly one of messaging_service_sid or from_number is required",
            );
            None
        }
    };
    let region = v.check("credential.region", Region::parse(&cred.region));
    let edge = v.check("credential.edge", Edge::parse(&cred.edge));
    Some(Credential {
        account_sid: account_sid?,
        auth: auth?,
        sender: sender?,
        location: Location {
            region: region?,
            edge: edge?,
        },
    })
}

/// Wipes the request's own copies of the secret once they are parsed into zeroizing domain
/// types. (tonic's receive buffer, and the reply a Resolve encodes, are freed without a wipe.)
pub fn wipe_secrets(cred: &mut Option<pb::TwilioCredential>) {
    use zeroize::Zeroize;
    match cred.as_mut().and_then(|c| c.auth.as_mut()) {
        Some(pb::twilio_credential::Auth::AuthToken(t)) => t.auth_token.zeroize(),
        Some(pb::twilio_credential::Auth::ApiKey(k)) => k.api_key_secret.zeroize(),
        None => {}
    }
}

pub fn metadata(m: Metadata) -> pb::CredentialMetadata {
    let over_privileged = m.over_privileged();
    pb::CredentialMetadata {
        region: m.location.region.as_str().to_owned(),
        edge: m.location.edge().map_or("", Edge::as_str).to_owned(),
        key_type: key_type(m.validation.key_type) as i32,
        over_privileged,
        owner: m.owner.as_str().to_owned(),
        label: m.label.as_str().to_owned(),
        account_sid: m.account_sid,
        auth_type: match m.auth_kind {
            AuthKind::AuthToken => pb::AuthType::AuthToken,
            AuthKind::ApiKey => pb::AuthType::ApiKey,
        } as i32,
        api_key_sid: m.api_key_sid.unwrap_or_default(),
        sender: Some(match m.sender {
            SenderInfo::MessagingServiceSid(s) => {
                pb::credential_metadata::Sender::MessagingServiceSid(s)
            }
            SenderInfo::FromNumber(n) => pb::credential_metadata::Sender::FromNumber(n),
        }),
        secret_hint: m.secret_hint,
        created_at: Some(Timestamp::from(m.created_at)),
        updated_at: Some(Timestamp::from(m.updated_at)),
        version: m.version,
        validation: Some(validation_status(m.validation)),
    }
}

pub fn validation_status(v: ValidationStatus) -> pb::ValidationStatus {
    pb::ValidationStatus {
        state: match v.state {
            ValidationState::Unvalidated => pb::ValidationState::Unvalidated,
            ValidationState::Valid => pb::ValidationState::Valid,
            ValidationState::Invalid => pb::ValidationState::Invalid,
        } as i32,
        checked_at: v.checked_at.map(Timestamp::from),
        twilio_error_code: v.twilio_error_code,
        message: v.message,
    }
}

fn key_type(k: Option<KeyType>) -> pb::KeyType {
    match k {
        None => pb::KeyType::Unspecified,
        Some(KeyType::Main) => pb::KeyType::Main,
        Some(KeyType::Standard) => pb::KeyType::Standard,
        Some(KeyType::Restricted) => pb::KeyType::Restricted,
        Some(KeyType::Unknown) => pb::KeyType::Unknown,
    }
}

pub fn resolved(r: &Resolved, hosts: &Hosts) -> pb::ResolveResponse {
    let c = &r.credential;
    let urls = hosts.for_location(c.location);
    pb::ResolveResponse {
        region: c.location.region.as_str().to_owned(),
        edge: c.location.edge().map_or("", Edge::as_str).to_owned(),
        api_base_url: urls.api,
        messaging_base_url: urls.messaging,
        account_sid: c.account_sid.as_str().to_owned(),
        auth: Some(match &c.auth {
            Auth::AuthToken(t) => pb::resolve_response::Auth::AuthToken(pb::AuthToken {
                auth_token: t.expose().to_owned(),
            }),
            Auth::ApiKey { sid, secret } => pb::resolve_response::Auth::ApiKey(pb::ApiKey {
                api_key_sid: sid.as_str().to_owned(),
                api_key_secret: secret.expose().to_owned(),
            }),
        }),
        sender: Some(match &c.sender {
            Sender::MessagingService(s) => {
                pb::resolve_response::Sender::MessagingServiceSid(s.as_str().to_owned())
            }
            Sender::FromNumber(n) => {
                pb::resolve_response::Sender::FromNumber(n.as_str().to_owned())
            }
        }),
        version: r.version,
        username: c.username().to_owned(),
        password: c.password().expose().to_owned(),
    }
}

pub fn validation_result(o: &Outcome) -> pb::ValidationResult {
    pb::ValidationResult {
        valid: o.valid,
        twilio_error_code: o.twilio_error_code,
        http_status: u32::from(o.http_status),
        reason: o.reason.clone(),
        message_sid: o
            .message_sid
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        step: match o.step {
            Step::Auth => pb::ValidationStep::Auth,
            Step::Sender => pb::ValidationStep::Sender,
            Step::KeyType => pb::ValidationStep::KeyType,
            Step::TestMessage => pb::ValidationStep::TestMessage,
        } as i32,
        key_type: key_type(o.key_type) as i32,
    }
}
