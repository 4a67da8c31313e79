//! Validated domain types. Everything that crosses the gRPC edge is parsed into these once; inside
//! the vault a `Label` is always a valid label and a secret is always a redacting, zeroizing type.

mod credential;
mod metadata;
mod names;
mod page_token;
mod phone;
mod region;
mod sid;

pub use credential::{Auth, Credential, Secret, Sender};
pub use metadata::{
    AuthKind, KeyType, Metadata, SenderInfo, ValidationState, ValidationStatus, WriteId,
};
pub use names::{Label, Owner};
pub use page_token::PageToken;
pub use phone::PhoneNumber;
pub use region::{Edge, Location, Region};
pub use sid::{AccountSid, ApiKeySid, MessageSid, MessagingServiceSid};

/// A time as whole microseconds since the Unix epoch, as every stored form keeps it (records,
/// the keyring, backups, the rewrap cursor): 0 before the epoch, saturating far after it.
pub(crate) fn unix_micros(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The time [`unix_micros`] stored.
pub(crate) fn from_unix_micros(m: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_micros(m)
}

/// A value broke a rule. The text states the rule and never contains the value, so it is safe to
/// return to callers and to log even when the value is a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}")]
pub struct Invalid {
    pub rule: String,
}

impl Invalid {
    pub(crate) fn new(rule: impl Into<String>) -> Self {
        Self { rule: rule.into() }
    }

    /// "must be {rule}", for a type's documented `RULE`.
    pub(crate) fn must_be(rule: &str) -> Self {
        Self::new(format!("must be {rule}"))
    }
}
