//! The one place where errors become gRPC statuses. What the caller reads and what the log says are
//! separate: INTERNAL never shows internals, and no message ever contains a secret.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, QuotaViolation, StatusExt};

use crate::auth::AuthError;
use crate::twilio::{Step, TwilioError};
use crate::vault::{ValidateError, VaultError};

/// google.rpc.ErrorInfo reasons, in domain `credvault.twilio`: an Add that Twilio rejected; a
/// reply Twilio's API does not describe; a test SMS that may or may not have been sent.
pub const TWILIO_REJECTED: &str = "TWILIO_REJECTED";
pub const TWILIO_UNEXPECTED_REPLY: &str = "TWILIO_UNEXPECTED_REPLY";
pub const TEST_MESSAGE_OUTCOME_UNKNOWN: &str = "TEST_MESSAGE_OUTCOME_UNKNOWN";
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

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing | AuthError::UnknownToken | AuthError::UnknownCertificate => {
                Status::unauthenticated(err.to_string())
            }
            AuthError::Scope { .. } | AuthError::Owner { .. } | AuthError::Recipient { .. } => {
                Status::permission_denied(err.to_string())
            }
        }
    }
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
            VaultError::Store(crate::store::StoreError::Unavailable(reason)) => {
                Status::unavailable(format!(
                    "the vault's store (etcd) is unreachable ({reason}); credvault keeps trying: retry"
                ))
            }
            VaultError::Store(crate::store::StoreError::Closed) => {
                Status::unavailable("the vault is shutting down; retry")
            }
            // Logged once, with the cause, by the store.
            VaultError::Store(crate::store::StoreError::Failed(_)) => Status::unavailable(
                "the vault's store failed to make a write durable and takes no writes until \
                 credvault is restarted; retry against a healthy instance",
            ),
            VaultError::NoSuchKey(_) => Status::not_found(err.to_string()),
            VaultError::BadRootKey(_) => Status::invalid_argument(err.to_string()),
            VaultError::KeyInUse { .. } | VaultError::SameRootKey => {
                Status::failed_precondition(err.to_string())
            }
            VaultError::Store(_) | VaultError::Crypto(_) | VaultError::Keyring(_) => {
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
            ValidateError::Twilio(e) => twilio_status(e),
            ValidateError::Rejected(outcome) => {
                let step = step_name(outcome.step);
                let metadata = info([
                    ("twilio_error_code", outcome.twilio_error_code.to_string()),
                    ("http_status", outcome.http_status.to_string()),
                    ("step", step.to_owned()),
                ]);
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!(
                        "Twilio rejected the credential ({step} check): {}; nothing was stored",
                        outcome.reason
                    ),
                    ErrorDetails::with_error_info(TWILIO_REJECTED, TWILIO_DOMAIN, metadata),
                )
            }
            ValidateError::Quota(exceeded) => {
                let mut details = ErrorDetails::with_quota_failure(
                    exceeded
                        .violations
                        .iter()
                        .map(|(subject, description)| {
                            QuotaViolation::new(subject.clone(), description.clone())
                        })
                        .collect::<Vec<_>>(),
                );
                details.set_retry_info(Some(Duration::from_secs(exceeded.retry_secs())));
                Status::with_error_details(Code::ResourceExhausted, exceeded.to_string(), details)
            }
            ValidateError::QueueFull(_) => {
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(Duration::from_secs(1)));
                Status::with_error_details(Code::ResourceExhausted, err.to_string(), details)
            }
            ValidateError::OutOfTime(_) => Status::unavailable(err.to_string()),
        }
    }
}

/// Validation without a verdict. Only the first kind is safe to retry (UNAVAILABLE); a reply off
/// Twilio's spec is not transient (UNKNOWN), a refused recipient is the caller's input
/// (INVALID_ARGUMENT), and a test SMS that may have gone out must never look retryable.
fn twilio_status(e: TwilioError) -> Status {
    match e {
        TwilioError::Timeout { .. }
        | TwilioError::Unreachable { .. }
        | TwilioError::ServerError { .. }
        | TwilioError::RateLimited { .. } => {
            tracing::warn!(error = %e, "Twilio could not be asked");
            Status::unavailable(format!("{e}; nothing was recorded, retry later"))
        }
        TwilioError::Unexpected { call, status, .. } => {
            tracing::warn!(error = %e, "unexpected reply from Twilio");
            let metadata = info([
                ("call", call.to_owned()),
                ("http_status", status.to_string()),
            ]);
            Status::with_error_details(
                Code::Unknown,
                format!("{e}; nothing was recorded"),
                ErrorDetails::with_error_info(TWILIO_UNEXPECTED_REPLY, TWILIO_DOMAIN, metadata),
            )
        }
        TwilioError::RecipientRejected { code, ref reason } => {
            tracing::info!(
                twilio_error_code = code,
                "Twilio refused the test recipient"
            );
            invalid_argument(vec![FieldViolation::new(
                "test_recipient",
                format!("was refused by Twilio (code {code}): {reason}; the credential's recorded state is unchanged"),
            )])
        }
        TwilioError::MaybeSent { timed_out, .. } => {
            tracing::warn!(error = %e, "test SMS outcome unknown");
            let code = if timed_out {
                Code::DeadlineExceeded
            } else {
                Code::Unknown
            };
            let metadata = info([("step", "test_message".to_owned())]);
            Status::with_error_details(
                code,
                e.to_string(),
                ErrorDetails::with_error_info(
                    TEST_MESSAGE_OUTCOME_UNKNOWN,
                    TWILIO_DOMAIN,
                    metadata,
                ),
            )
        }
    }
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::Auth => "auth",
        Step::Sender => "sender",
        Step::KeyType => "key_type",
        Step::TestMessage => "test_message",
    }
}

fn info<const N: usize>(pairs: [(&str, String); N]) -> HashMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
