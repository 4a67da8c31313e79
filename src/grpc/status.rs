//! The one place where errors become gRPC statuses. What the caller reads and what the log says are
//! separate: INTERNAL never shows internals, and no message ever contains a secret.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::twilio::Step;
use crate::vault::{ValidateError, VaultError};

/// google.rpc.ErrorInfo of an Add that Twilio rejected.
pub const TWILIO_REJECTED: &str = "TWILIO_REJECTED";
pub const TWILIO_DOMAIN: &str = "credvault.twilio";

/// INVALID_ARGUMENT naming every bad field and its rule, with a google.rpc.BadRequest detail.
pub fn invalid_argument(violations: Vec<FieldViolation>) -> Status {
    let summary = violations
        .iter()
        .map(|v| format!("{} {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {summary}"),
        ErrorDetails::with_bad_request(violations),
    )
}

impl From<VaultError> for Status {
    fn from(err: VaultError) -> Self {
        match &err {
            VaultError::AlreadyExists { .. } => Status::already_exists(err.to_string()),
            VaultError::NotFound { .. } => Status::not_found(err.to_string()),
            VaultError::NotValid { .. } => Status::failed_precondition(err.to_string()),
            VaultError::Contended { .. } => Status::aborted(err.to_string()),
            VaultError::Corrupt {
                owner,
                label,
                reason,
            } => {
                tracing::error!(%owner, %label, %reason, "stored credential is unreadable");
                Status::data_loss(format!(
                    "credential '{label}' of owner '{owner}' is unreadable: it failed its integrity check"
                ))
            }
            VaultError::Store(crate::store::StoreError::Closed) => {
                Status::unavailable("the vault is shutting down; retry")
            }
            // Logged once, with the cause, by the store.
            VaultError::Store(crate::store::StoreError::Failed(_)) => Status::unavailable(
                "the vault's store failed to make a write durable and takes no writes until                  credvault is restarted; retry against a healthy instance",
            ),
            VaultError::Store(_) | VaultError::Crypto(_) => {
                tracing::error!(error = %err, "internal error");
                Status::internal("internal error; see the server log")
            }
        }
    }
}

impl From<ValidateError> for Status {
    fn from(err: ValidateError) -> Self {
        match err {
            ValidateError::Vault(e) => e.into(),
            // Transient by nature (timeouts, 5xx, rate limits): the caller may retry; nothing was
            // recorded. The text names the check and the cause, never a URL or a secret.
            ValidateError::Twilio(e) => {
                tracing::warn!(error = %e, "Twilio could not be asked");
                Status::unavailable(format!("{e}; nothing was recorded, retry later"))
            }
            ValidateError::Rejected(outcome) => {
                let step = match outcome.step {
                    Step::Auth => "auth",
                    Step::Sender => "sender",
                    Step::TestMessage => "test_message",
                };
                let metadata: std::collections::HashMap<String, String> = [
                    ("twilio_error_code", outcome.twilio_error_code.to_string()),
                    ("http_status", outcome.http_status.to_string()),
                    ("step", step.to_owned()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!(
                        "Twilio rejected the credential ({step} check): {}; nothing was stored",
                        outcome.reason
                    ),
                    ErrorDetails::with_error_info(TWILIO_REJECTED, TWILIO_DOMAIN, metadata),
                )
            }
        }
    }
}
