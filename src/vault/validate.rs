//! Validation as the vault sees it: resolve, ask Twilio, record the outcome against the version
//! that was checked. The Twilio client does the asking; this only orders the steps.

use std::sync::Arc;
use std::time::SystemTime;

use super::{Vault, VaultError};
use crate::domain::{Credential, Label, Metadata, Owner, ValidationState, ValidationStatus};
use crate::twilio::{Outcome, TestMessage, TwilioClient, TwilioError};

/// Why a validation produced no answer, or (for Add) why nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Twilio could not be asked; nothing was recorded or stored.
    #[error("Twilio could not be asked: {0}")]
    Twilio(#[from] TwilioError),
    /// Add with `validate`: Twilio rejected the submitted credential, so it was not stored.
    #[error("Twilio rejected the credential: {}", .0.reason)]
    Rejected(Box<Outcome>),
}

/// A validation outcome and the credential's metadata after recording it.
#[derive(Debug)]
pub struct Validated {
    pub outcome: Outcome,
    pub metadata: Metadata,
}

/// Runs validations for the gRPC layer: the vault plus the process's one Twilio client.
pub struct Validator {
    vault: Arc<Vault>,
    twilio: TwilioClient,
}

impl Validator {
    pub fn new(vault: Arc<Vault>, twilio: TwilioClient) -> Self {
        Self { vault, twilio }
    }

    /// Validates the stored credential and records the outcome on the version that was checked.
    /// If the credential was replaced meanwhile, the stale outcome is dropped (the returned
    /// metadata is then the current one, which does not show it).
    pub async fn validate_stored(
        &self,
        owner: &Owner,
        label: &Label,
        test: Option<&TestMessage>,
    ) -> Result<Validated, ValidateError> {
        let resolved = self.vault.resolve(owner, label, false).await?;
        let (version, write_id) = (resolved.version, resolved.write_id);
        let outcome = self.twilio.validate(&resolved.credential, test).await?;
        drop(resolved);
        let status = status_of(&outcome);
        let recorded = self
            .vault
            .record_validation(owner, label, write_id, &status)
            .await?;
        tracing::info!(
            version,
            valid = outcome.valid,
            twilio_error_code = outcome.twilio_error_code,
            recorded = recorded.is_some(),
            "validation done"
        );
        let metadata = match recorded {
            Some(metadata) => metadata,
            // Replaced or deleted while Twilio was asked: the outcome is stale and was dropped.
            None => self.vault.describe(owner, label).await?,
        };
        Ok(Validated { outcome, metadata })
    }

    /// Add with `validate`: asks Twilio first and stores only a credential it accepts, recording
    /// VALID on the stored version.
    pub async fn add_validated(
        &self,
        owner: &Owner,
        label: &Label,
        cred: &Credential,
        replace: bool,
        test: Option<&TestMessage>,
    ) -> Result<Validated, ValidateError> {
        // A taken label fails before Twilio is asked (and before a test SMS goes out). `add`
        // still decides atomically below; this only spares a pointless round trip.
        if !replace {
            match self.vault.describe(owner, label).await {
                Ok(_) => return Err(self.vault.already_exists(owner, label).await.into()),
                Err(VaultError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let outcome = self.twilio.validate(cred, test).await?;
        if !outcome.valid {
            return Err(ValidateError::Rejected(Box::new(outcome)));
        }
        let stored = self.vault.add(owner, label, cred, replace).await?;
        let metadata = self
            .vault
            .record_validation(owner, label, stored.write_id, &status_of(&outcome))
            .await?
            // Replaced again between the two writes: the newer version keeps its own state.
            .unwrap_or(stored);
        Ok(Validated { outcome, metadata })
    }
}

/// What gets persisted: the state, when, Twilio's code and the reason.
fn status_of(outcome: &Outcome) -> ValidationStatus {
    ValidationStatus {
        state: if outcome.valid {
            ValidationState::Valid
        } else {
            ValidationState::Invalid
        },
        checked_at: Some(SystemTime::now()),
        twilio_error_code: outcome.twilio_error_code,
        message: outcome.reason.clone(),
    }
}
