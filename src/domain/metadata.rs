//! What the vault tells about a credential without opening it.

use std::fmt;
use std::time::SystemTime;

use super::{Label, Owner};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    AuthToken,
    ApiKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationState {
    Unvalidated,
    Valid,
    Invalid,
}

/// Shown by its public (proto) name, e.g. `VALIDATION_STATE_VALID`: error messages reach callers
/// in every language, who know the contract's names, not Rust's.
impl fmt::Display for ValidationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValidationState::Unvalidated => "VALIDATION_STATE_UNVALIDATED",
            ValidationState::Valid => "VALIDATION_STATE_VALID",
            ValidationState::Invalid => "VALIDATION_STATE_INVALID",
        })
    }
}

/// What an API key may do, as Validate found it (Twilio's three key types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// May manage keys and accounts (created only in the Console): more than sending needs.
    Main,
    /// May do everything but manage keys and accounts.
    Standard,
    /// Limited to a permission policy.
    Restricted,
    /// Auth worked, but Twilio's answers did not tell the type.
    Unknown,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Main => "main",
            KeyType::Standard => "standard",
            KeyType::Restricted => "restricted",
            KeyType::Unknown => "unknown",
        }
    }
}

/// The last recorded validation of a credential's current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationStatus {
    pub state: ValidationState,
    pub checked_at: Option<SystemTime>,
    pub twilio_error_code: i32,
    pub message: String,
    /// For API keys, once a validation told it.
    pub key_type: Option<KeyType>,
}

impl ValidationStatus {
    pub fn unvalidated() -> Self {
        Self {
            state: ValidationState::Unvalidated,
            checked_at: None,
            twilio_error_code: 0,
            message: String::new(),
            key_type: None,
        }
    }
}

/// The sender as shown in metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderInfo {
    MessagingServiceSid(String),
    FromNumber(String),
}

/// Names one write of a credential (an Add or a replace), never reused: 16 random bytes. A
/// validation result lands only on the write it checked. `version` cannot say that: a Delete
/// followed by an Add starts again at version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteId(pub [u8; 16]);

/// Everything about a stored credential except its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub owner: Owner,
    pub label: Label,
    pub account_sid: String,
    pub auth_kind: AuthKind,
    /// Set for `AuthKind::ApiKey`.
    pub api_key_sid: Option<String>,
    pub sender: SenderInfo,
    pub location: super::Location,
    pub secret_hint: String,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub version: u64,
    pub write_id: WriteId,
    pub validation: ValidationStatus,
}

impl Metadata {
    /// More power than sending SMS needs: an auth token (the account's master credential) or a
    /// Main API key. A Standard key is enough.
    pub fn over_privileged(&self) -> bool {
        self.auth_kind == AuthKind::AuthToken || self.validation.key_type == Some(KeyType::Main)
    }
}
