//! Periodic re-validation (`revalidate.every`): every stored credential is asked about again in
//! the background, so one that Twilio stopped accepting (a revoked key, a suspended account) is
//! INVALID, with `checked_at` and the reason, in List and in the log before a campaign resolves
//! it to send.
//!
//! **Schedule** (`due.rs`): due at 80–90% of the period after its last check (from the stored
//! `checked_at`, so a restart changes nothing), jittered by key. Every tick the store is walked
//! page by page (metadata only leaves the vault) and the due credentials are checked.
//!
//! **Gentle with Twilio.** At most [`AT_ONCE`] run at a time, through a Twilio client of their
//! own paced to `revalidate.requests_per_second` (retries included), never with a test SMS. A
//! 429 pauses every check for its Retry-After; Twilio unreachable or failing pauses them with a
//! backoff. A credential whose check ended without a verdict stays due: nothing was recorded.
//!
//! **One instance at a time.** The walk runs while this instance holds the store's `revalidate`
//! lock (etcd: a lease; sled: the one process). Losing it stops the walk at once.
//!
//! **Shutdown** stops it where it is: a check in flight is dropped before it records anything,
//! or after its record is whole (a record is one compare-and-swap).

mod due;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

use super::record::{self, PREFIX};
use super::{ValidateError, Validated, Validator, Vault, VaultError};
use crate::config::Config;
use crate::domain::{Metadata, ValidationState};
use crate::twilio::{TwilioClient, TwilioError};

/// Checks running at once, at most.
pub const AT_ONCE: usize = 2;
const LOCK: &str = "revalidate";
/// An instance that dies holding the lock frees it after this long.
const LOCK_TTL: Duration = Duration::from_secs(10);
/// Records read per page of the walk.
const PAGE: usize = 256;
/// A 429 without Retry-After pauses this long; one with a longer Retry-After than the last
/// pauses that long at most.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Twilio unreachable or failing: the first pause, doubled each time up to the last.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The running re-validation; [`Revalidation::stop`] ends it.
pub struct Revalidation {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Revalidation {
    /// Starts it when `revalidate.every` is set. `twilio` is the process's client: it gets a
    /// paced copy of its own.
    pub fn start(vault: Arc<Vault>, twilio: &TwilioClient, config: &Config) -> Option<Self> {
        let every = config.revalidate.every?;
        let rate = config.revalidate.requests_per_second;
        let validator = Validator::background(vault.clone(), twilio.paced(rate), config, AT_ONCE);
        let (stop, stopping) = watch::channel(false);
        tracing::info!(
            every = %humantime::format_duration(every),
            requests_per_second = rate,
            at_once = AT_ONCE,
            "re-validation on: every credential is asked about again at least this often"
        );
        let task = tokio::spawn(run(vault, Arc::new(validator), every, stopping));
        Some(Self { stop, task })
    }

    /// Stops the walk where it is and gives the lock back.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

/// Dropped without `stop` (the server's future was dropped): the walk ends too.
impl Drop for Revalidation {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Takes the lock, walks while it holds it, and again; until stopped.
async fn run(
    vault: Arc<Vault>,
    validator: Arc<Validator>,
    every: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let mut waiting_said = false;
    loop {
        let taken = tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            taken = vault.store.try_lock(LOCK, LOCK_TTL) => taken,
        };
        let mut lock = match taken {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                if !waiting_said {
                    tracing::info!("re-validation runs on another instance (it holds the lock); this one stands by");
                    waiting_said = true;
                }
                if sleep_or_stop(LOCK_TTL / 2, &mut stopping).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-validation cannot take its lock; trying again");
                if sleep_or_stop(LOCK_TTL / 2, &mut stopping).await {
                    return;
                }
                continue;
            }
        };
        waiting_said = false;
        tracing::debug!("re-validation runs on this instance");
        let stopped = tokio::select! {
            _ = stopping.wait_for(|s| *s) => true,
            _ = lock.lost() => false,
            _ = walk(&vault, &validator, every) => false,
        };
        lock.release().await;
        if stopped {
            return;
        }
    }
}

/// `true` if stopped while sleeping.
async fn sleep_or_stop(d: Duration, stopping: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stopping.wait_for(|s| *s) => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// What the walk keeps from one pass to the next.
#[derive(Default)]
struct Walk {
    /// No check starts before this (a 429's Retry-After, Twilio's trouble).
    paused_until: Option<Instant>,
    backoff: Option<Duration>,
    /// Credentials whose check failed on our side (their record, the store), left until then.
    deferred: HashMap<Vec<u8>, Instant>,
    unreadable: usize,
}

/// Pass after pass, a tick apart (sooner when a credential comes due first). Never returns.
async fn walk(vault: &Arc<Vault>, validator: &Arc<Validator>, every: Duration) {
    let tick = due::tick(every);
    let mut state = Walk::default();
    loop {
        let next = pass(vault, validator, every, &mut state).await;
        let wake = next
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .map_or(tick, |d| d.min(tick));
        tokio::time::sleep(wake).await;
    }
}

/// One walk over the store: checks every credential that is due. Returns the earliest due time
/// among the rest.
async fn pass(
    vault: &Arc<Vault>,
    validator: &Arc<Validator>,
    every: Duration,
    state: &mut Walk,
) -> Option<SystemTime> {
    let now = SystemTime::now();
    state.deferred.retain(|_, until| *until > Instant::now());
    let mut next: Option<SystemTime> = None;
    let mut running = JoinSet::new();
    let (mut checked, mut invalid, mut unreadable) = (0usize, 0usize, 0usize);
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = match vault.store.scan(PREFIX, after.as_deref(), PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "re-validation cannot read the store; trying again later");
                break;
            }
        };
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        let full = page.len() == PAGE;
        for (key, bytes) in page {
            let Some(m) = open(vault, &key, &bytes).await else {
                unreadable += 1;
                continue;
            };
            let at = due::due(&m, &key, every, now);
            if at > now || state.deferred.contains_key(&key) {
                next = Some(next.map_or(at, |n| n.min(at)));
                continue;
            }
            while running.len() >= AT_ONCE {
                if let Some(done) = running.join_next().await {
                    settle(done, state, every, &mut checked, &mut invalid);
                }
            }
            if let Some(until) = state.paused_until {
                tokio::time::sleep_until(until).await;
                state.paused_until = None;
            }
            running.spawn(check(validator.clone(), key, m));
        }
        if !full {
            break;
        }
    }
    while let Some(done) = running.join_next().await {
        settle(done, state, every, &mut checked, &mut invalid);
    }
    if unreadable != state.unreadable {
        if unreadable > 0 {
            tracing::warn!(
                records = unreadable,
                "re-validation skips records that do not open (DATA_LOSS)"
            );
        }
        state.unreadable = unreadable;
    }
    if checked > 0 {
        tracing::info!(checked, invalid, "re-validation pass done");
    }
    next
}

/// A record's metadata, or `None` if it does not open.
async fn open(vault: &Vault, key: &[u8], bytes: &[u8]) -> Option<Metadata> {
    let (owner, label) = record::parse_key(key)?;
    let body = vault.open_body(&owner, &label, key, bytes).await.ok()?;
    vault.metadata(&owner, &label, &body).ok()
}

/// What one check came to, with the key and the state it had before.
struct Checked {
    key: Vec<u8>,
    before: ValidationState,
    result: Result<Validated, ValidateError>,
}

async fn check(validator: Arc<Validator>, key: Vec<u8>, m: Metadata) -> Checked {
    let span = tracing::info_span!("revalidate", owner = %m.owner, label = %m.label);
    let result = validator
        .validate_stored(&m.owner, &m.label, None)
        .instrument(span)
        .await;
    Checked {
        key,
        before: m.validation.state,
        result,
    }
}

/// Takes in one finished check: logs a change of state, pauses on Twilio's trouble.
fn settle(
    done: Result<Checked, tokio::task::JoinError>,
    state: &mut Walk,
    every: Duration,
    checked: &mut usize,
    invalid: &mut usize,
) {
    let Checked {
        key,
        before,
        result,
    } = match done {
        Ok(checked) => checked,
        Err(e) => {
            // A panic in one check (a bug): the others go on; the credential stays due.
            tracing::error!(error = %e, "a re-validation check ended abnormally");
            return;
        }
    };
    let (owner, label) = names(&key);
    match result {
        Ok(Validated { outcome, metadata }) => {
            state.backoff = None;
            *checked += 1;
            let now = metadata.validation.state;
            if now == ValidationState::Invalid {
                *invalid += 1;
            }
            if before == ValidationState::Valid && now == ValidationState::Invalid {
                tracing::warn!(
                    %owner, %label,
                    twilio_error_code = outcome.twilio_error_code,
                    reason = %outcome.reason,
                    "credential no longer valid: Twilio rejected it on re-validation"
                );
            } else if before == ValidationState::Invalid && now == ValidationState::Valid {
                tracing::info!(%owner, %label, "credential valid again on re-validation");
            }
        }
        Err(ValidateError::Vault(VaultError::NotFound { .. })) => {}
        Err(ValidateError::Twilio(TwilioError::RateLimited { retry_after, .. })) => {
            let wait = retry_after
                .unwrap_or(DEFAULT_RETRY_AFTER)
                .clamp(Duration::from_secs(1), MAX_RETRY_AFTER);
            tracing::warn!(
                wait_ms = wait.as_millis() as u64,
                "re-validation rate limited by Twilio (429): pausing for its Retry-After"
            );
            pause(state, wait);
        }
        Err(
            e @ (ValidateError::Twilio(
                TwilioError::Timeout { .. }
                | TwilioError::Unreachable { .. }
                | TwilioError::ServerError { .. },
            )
            | ValidateError::OutOfTime(_)),
        ) => {
            let wait = state
                .backoff
                .map_or(FIRST_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
            state.backoff = Some(wait);
            tracing::warn!(%owner, %label, error = %e, wait_ms = wait.as_millis() as u64, "re-validation could not ask Twilio: pausing");
            pause(state, wait);
        }
        Err(e) => {
            tracing::warn!(%owner, %label, error = %e, "re-validation of this credential failed; it is tried again later");
            // Ten ticks: a tenth of the period, or ten minutes at most.
            let until = Instant::now() + due::tick(every) * 10;
            state.deferred.insert(key, until);
        }
    }
}

fn pause(state: &mut Walk, wait: Duration) {
    let until = Instant::now() + wait;
    state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
}

/// Owner and label of a key, for a log line.
fn names(key: &[u8]) -> (String, String) {
    match record::parse_key(key) {
        Some((owner, label)) => (owner.as_str().to_owned(), label.as_str().to_owned()),
        None => (String::new(), String::new()),
    }
}
