//! Validation as the vault sees it: take a test SMS from the quotas, wait for a turn, only then
//! decrypt, ask Twilio, and record the outcome on the write that was checked. The Twilio client
//! does the asking; this orders the steps.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::{timeout_at, Instant};

use super::admission::{Admission, QueueFull, Turn};
use super::quota::{QuotaExceeded, Reservation, TestSmsQuota};
use super::{Vault, VaultError};
use crate::config::Config;
use crate::domain::{Credential, Label, Metadata, Owner, ValidationState, ValidationStatus};
use crate::twilio::{Outcome, TestMessage, TwilioClient, TwilioError};

/// Why a validation produced no answer, or (for Add) why nothing was stored. Nothing is recorded
/// in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// No verdict from Twilio (unreachable, off-spec reply, recipient refused, maybe sent).
    #[error(transparent)]
    Twilio(#[from] TwilioError),
    /// Add with `validate`: Twilio rejected the submitted credential, so it was not stored.
    #[error("Twilio rejected the credential: {}", .0.reason)]
    Rejected(Box<Outcome>),
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    #[error("too many validations: {} running and {} waiting; retry later", .0.running, .0.queued)]
    QueueFull(QueueFull),
    #[error("validation did not finish within {} s (waiting for a turn, then the auth and sender checks); nothing was sent or recorded, retry later", .0.as_secs())]
    OutOfTime(Duration),
}

/// A validation outcome and the credential's metadata after recording it.
#[derive(Debug)]
pub struct Validated {
    pub outcome: Outcome,
    pub metadata: Metadata,
}

/// Runs validations for the gRPC layer: the vault, the process's one Twilio client, and the
/// limits on how many run, wait, and text.
pub struct Validator {
    vault: Arc<Vault>,
    twilio: TwilioClient,
    admission: Admission,
    quota: TestSmsQuota,
    budget: Duration,
}

impl Validator {
    pub fn new(vault: Arc<Vault>, twilio: TwilioClient, config: &Config) -> Self {
        let l = &config.limits;
        Self {
            vault,
            twilio,
            admission: Admission::new(config.twilio.max_concurrent, l.validate_queue),
            quota: TestSmsQuota::new(
                l.test_sms_per_credential_per_hour,
                l.test_sms_per_recipient_per_hour,
            ),
            budget: config.twilio.validate_timeout,
        }
    }

    /// A validator for background work: at most `at_once` validations, none waiting (the
    /// caller runs no more than that), on a Twilio client of its own.
    pub fn background(
        vault: Arc<Vault>,
        twilio: TwilioClient,
        config: &Config,
        at_once: usize,
    ) -> Self {
        Self {
            admission: Admission::new(at_once, 0),
            ..Self::new(vault, twilio, config)
        }
    }

    /// Where each Region's requests go.
    pub fn hosts(&self) -> &crate::twilio::Hosts {
        self.twilio.hosts()
    }

    /// Validates the stored credential and records the outcome on the write that was checked.
    /// If the credential was replaced or deleted meanwhile, the stale outcome is dropped (the
    /// returned metadata is then the current one, which does not show it).
    pub async fn validate_stored(
        &self,
        owner: &Owner,
        label: &Label,
        test: Option<&TestMessage>,
    ) -> Result<Validated, ValidateError> {
        let deadline = Instant::now() + self.budget;
        let reserved = self.reserve(owner, label, test)?;
        let turn = self.turn(deadline).await?;
        // Decrypted only once it is this call's turn: a waiting call holds no secret.
        let resolved = self.vault.resolve(owner, label, false).await?;
        let (version, write_id) = (resolved.version, resolved.write_id);
        let outcome = self
            .ask(&resolved.credential, test, reserved, deadline)
            .await;
        drop((resolved, turn));
        let outcome = counted(outcome)?;
        let recorded = self
            .vault
            .record_validation(owner, label, write_id, &status_of(&outcome))
            .await?;
        tracing::info!(
            version,
            valid = outcome.valid,
            twilio_error_code = outcome.twilio_error_code,
            recorded = recorded.is_some(),
            "validation done"
        );
        let metadata = match recorded {
            Some(metadata) => {
                warn_if_over_privileged(&metadata);
                metadata
            }
            // Replaced or deleted while Twilio was asked: the outcome is stale and was dropped.
            None => self.vault.describe(owner, label).await?,
        };
        Ok(Validated { outcome, metadata })
    }

    /// Add with `validate`: asks Twilio first and stores only a credential it accepts, recording
    /// VALID on the stored write.
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
        let deadline = Instant::now() + self.budget;
        let reserved = self.reserve(owner, label, test)?;
        let turn = self.turn(deadline).await?;
        let outcome = self.ask(cred, test, reserved, deadline).await;
        drop(turn);
        let outcome = counted(outcome)?;
        if !outcome.valid {
            return Err(ValidateError::Rejected(Box::new(outcome)));
        }
        let stored = self.vault.add(owner, label, cred, replace).await?;
        let metadata = self
            .vault
            .record_validation(owner, label, stored.write_id, &status_of(&outcome))
            .await?
            // Replaced again between the two writes: the newer write keeps its own state.
            .unwrap_or(stored);
        warn_if_over_privileged(&metadata);
        Ok(Validated { outcome, metadata })
    }

    fn reserve(
        &self,
        owner: &Owner,
        label: &Label,
        test: Option<&TestMessage>,
    ) -> Result<Option<Reservation<'_>>, ValidateError> {
        let Some(test) = test else { return Ok(None) };
        match self.quota.reserve(owner, label, &test.to) {
            Ok(reserved) => Ok(Some(reserved)),
            Err(exceeded) => {
                if let Some(m) = crate::metrics::get() {
                    m.test_sms_refused();
                }
                // The span names owner and label.
                tracing::warn!("test SMS refused: {exceeded}");
                Err(exceeded.into())
            }
        }
    }

    async fn turn(&self, deadline: Instant) -> Result<Turn, ValidateError> {
        match timeout_at(deadline, self.admission.enter()).await {
            Ok(Ok(turn)) => Ok(turn),
            Ok(Err(full)) => Err(ValidateError::QueueFull(full)),
            Err(_) => Err(ValidateError::OutOfTime(self.budget)),
        }
    }

    /// The checks (within the budget), then, if they pass and one was asked for, the test SMS.
    async fn ask(
        &self,
        cred: &Credential,
        test: Option<&TestMessage>,
        reserved: Option<Reservation<'_>>,
        deadline: Instant,
    ) -> Result<Outcome, ValidateError> {
        let checked = timeout_at(deadline, self.twilio.check(cred))
            .await
            .map_err(|_| ValidateError::OutOfTime(self.budget))??;
        let (Some(test), Some(reserved), true) = (test, reserved, checked.valid) else {
            return Ok(checked);
        };
        // From here the SMS may go out: it counts against the quotas whatever Twilio answers.
        reserved.commit();
        if let Some(m) = crate::metrics::get() {
            m.test_sms_sent();
        }
        let mut sent = self.twilio.send_test(cred, test).await?;
        // What the checks found of the key holds whatever the SMS's fate.
        sent.key_type = checked.key_type;
        Ok(sent)
    }
}

/// A working credential with more power than sending needs is worth a line in the log (the span
/// names owner and label; nothing here is secret).
fn warn_if_over_privileged(m: &Metadata) {
    if m.validation.state != ValidationState::Valid || !m.over_privileged() {
        return;
    }
    let auth = match m.validation.key_type {
        Some(kind) => kind.as_str(),
        None => "auth token",
    };
    tracing::warn!(
        auth,
        "credential is over-privileged: a Standard API key is enough to send SMS"
    );
}

/// Counts a validation that got as far as asking Twilio: its verdict, or none.
fn counted(outcome: Result<Outcome, ValidateError>) -> Result<Outcome, ValidateError> {
    let verdict = match &outcome {
        Ok(o) => Some((o.valid, o.twilio_error_code)),
        Err(ValidateError::Twilio(_) | ValidateError::OutOfTime(_)) => None,
        Err(_) => return outcome,
    };
    if let Some(m) = crate::metrics::get() {
        m.validation(verdict);
    }
    outcome
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
        key_type: outcome.key_type,
    }
}
