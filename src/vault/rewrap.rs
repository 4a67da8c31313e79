//! `keys rewrap`: re-seal every record under the active data key, in the background, while every
//! RPC keeps serving.
//!
//! **Per record** (in key order): skip it if it is already sealed with the target key or a newer
//! one; otherwise open it, seal the same body under the active key and compare-and-swap the old
//! bytes for the new. A record that changed meanwhile (Add with replace, Delete, a validation
//! result) fails the swap and is read again: no concurrent write is lost, and a write is sealed
//! with the active key anyway. The body is re-sealed as it is (version, write id, validation), so
//! a validation in flight still lands on the write it checked.
//!
//! **Target.** The active key when the pass starts. Keys only get larger ids, so a record on the
//! target or a newer key is done: after a pass no record uses a key that was older than the
//! target, and those keys can be retired.
//!
//! **Resumable.** A cursor (the last record key done and the counts) is stored at `meta/rewrap`
//! after every page; an open that finds it resumes the pass there. A crash between a page's swaps
//! and its cursor re-reads that page only (its records are skipped, already on the key).
//!
//! **Throttled** to `rate` records a second: BENCHMARKS.md measures what a rewrap costs Resolve.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prost::Message;
use tokio::task::JoinHandle;

use super::keys::Keys;
use super::record::PREFIX;
use super::VaultError;
use crate::crypto::Keyring;
use crate::domain::{from_unix_micros, unix_micros};
use crate::store::{Store, Stored};

pub(super) const CURSOR_KEY: &[u8] = b"meta/rewrap";
/// Records read per scan, and between two stores of the cursor.
const PAGE: usize = 64;
/// Swaps of one record lost to concurrent writers before it is left for the next pass.
const MAX_ATTEMPTS: usize = 100;
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The stored cursor of a pass.
#[derive(Clone, PartialEq, prost::Message)]
struct Cursor {
    #[prost(uint32, tag = "1")]
    target: u32,
    /// The last record key done; empty before the first page.
    #[prost(bytes = "vec", tag = "2")]
    after: Vec<u8>,
    #[prost(uint64, tag = "3")]
    total: u64,
    #[prost(uint64, tag = "4")]
    done: u64,
    #[prost(uint64, tag = "5")]
    rewrapped: u64,
    #[prost(uint64, tag = "6")]
    unreadable: u64,
    #[prost(uint64, tag = "7")]
    started_at_micros: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewrapState {
    /// No rewrap since this server started.
    Idle,
    Running,
    Done,
    /// Stopped by an error (the reason); the cursor stays, so a new start resumes.
    Failed(String),
}

/// What `keys rewrap` shows.
#[derive(Debug, Clone)]
pub struct RewrapProgress {
    pub state: RewrapState,
    /// Records end up on this key or a newer one.
    pub target: u32,
    /// Records in the store when the pass started (grows when more turn up behind the cursor).
    pub total: u64,
    /// Records passed, whether re-sealed, already on the key or unreadable.
    pub done: u64,
    /// Records this pass re-sealed.
    pub rewrapped: u64,
    /// Records that do not open (DATA_LOSS): left as they are, and logged.
    pub unreadable: u64,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    /// Records a second since this server started or resumed the pass.
    pub rate: f64,
    pub eta: Option<Duration>,
}

impl RewrapState {
    /// Its name in metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed(_) => "failed",
        }
    }
}

impl RewrapProgress {
    fn idle() -> Self {
        Self {
            state: RewrapState::Idle,
            target: 0,
            total: 0,
            done: 0,
            rewrapped: 0,
            unreadable: 0,
            started_at: None,
            finished_at: None,
            rate: 0.0,
            eta: None,
        }
    }
}

/// The rewrap of this vault: at most one pass at a time from this instance.
pub(super) struct Rewrap {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
    /// Records a second.
    rate: u32,
    progress: Arc<Mutex<RewrapProgress>>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Rewrap {
    pub(super) fn new(store: Arc<dyn Store>, keys: Arc<Keys>, rate: u32) -> Self {
        Self {
            store,
            keys,
            rate: rate.max(1),
            progress: Arc::new(Mutex::new(RewrapProgress::idle())),
            task: tokio::sync::Mutex::new(None),
        }
    }

    /// Starts a pass (or resumes the stored one) unless this instance is running one already.
    /// The pass's cursor is stored before this returns.
    pub(super) async fn start(&self) -> Result<RewrapProgress, VaultError> {
        let mut task = self.task.lock().await;
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return Ok(self.progress());
        }
        let pass = Pass {
            store: self.store.clone(),
            keys: self.keys.clone(),
            pace: Duration::from_secs(1) / self.rate,
            progress: self.progress.clone(),
        };
        let (stored, cursor) = pass.cursor().await?;
        pass.show(&cursor, RewrapState::Running, Instant::now(), cursor.done);
        *task = Some(tokio::spawn(pass.run(stored, cursor)));
        Ok(self.progress())
    }

    /// Resumes a pass a previous run left unfinished.
    pub(super) async fn resume_if_stored(&self) -> Result<(), VaultError> {
        if self.store.get(CURSOR_KEY).await?.is_some() {
            tracing::info!("resuming the rewrap an earlier run left unfinished");
            self.start().await?;
        }
        Ok(())
    }

    pub(super) fn progress(&self) -> RewrapProgress {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops a running pass where it is (every swap is whole; the cursor says where to resume).
    pub(super) async fn stop(&self) {
        let task = self.task.lock().await.take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Rewrap {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().take() {
            task.abort();
        }
    }
}

enum Outcome {
    Rewrapped,
    Skipped,
    Unreadable,
}

struct Pass {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
    pace: Duration,
    progress: Arc<Mutex<RewrapProgress>>,
}

impl Pass {
    async fn run(self, stored: Stored, cursor: Cursor) {
        if let Err(reason) = self.pass(stored, cursor).await {
            tracing::error!(%reason, "rewrap stopped; starting it again resumes where it stopped");
            self.publish(|p| {
                p.state = RewrapState::Failed(reason);
                p.finished_at = Some(SystemTime::now());
            });
        }
    }

    async fn pass(&self, mut stored: Stored, mut cursor: Cursor) -> Result<(), String> {
        tracing::info!(
            target_key = cursor.target,
            total = cursor.total,
            done = cursor.done,
            "rewrap running: re-sealing every record under the active data key"
        );
        let started = Instant::now();
        let base = cursor.done;
        // Swaps since this server started (or resumed) the pass: the throttle paces those.
        let mut swaps = 0u32;
        let mut logged = Instant::now();
        self.show(&cursor, RewrapState::Running, started, base);
        loop {
            let after = (!cursor.after.is_empty()).then_some(cursor.after.as_slice());
            let page = self
                .store
                .scan(PREFIX, after, PAGE)
                .await
                .map_err(|e| e.to_string())?;
            let Some((last, _)) = page.last() else {
                break;
            };
            let last = last.clone();
            for (key, bytes) in page {
                match self.rewrap_one(&key, bytes, cursor.target).await? {
                    Outcome::Rewrapped => {
                        cursor.rewrapped += 1;
                        swaps = swaps.saturating_add(1);
                        let due = started + self.pace.saturating_mul(swaps);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    Outcome::Skipped => {}
                    Outcome::Unreadable => cursor.unreadable += 1,
                }
                cursor.done += 1;
                cursor.total = cursor.total.max(cursor.done);
            }
            cursor.after = last;
            stored = self.save(&stored, Some(&cursor)).await?;
            self.show(&cursor, RewrapState::Running, started, base);
            if logged.elapsed() >= LOG_EVERY {
                logged = Instant::now();
                let p = self.snapshot();
                tracing::info!(
                    done = p.done,
                    total = p.total,
                    rewrapped = p.rewrapped,
                    rate = format!("{:.0}/s", p.rate),
                    eta = %p.eta.map_or_else(|| "-".into(), |d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()),
                    "rewrap progress"
                );
            }
        }
        self.save(&stored, None).await?;
        self.show(&cursor, RewrapState::Done, started, base);
        tracing::info!(
            target_key = cursor.target,
            records = cursor.done,
            rewrapped = cursor.rewrapped,
            unreadable = cursor.unreadable,
            "rewrap done: every readable record is sealed with the target data key or a newer one"
        );
        Ok(())
    }

    /// The stored cursor (resume), or a new pass's, stored first.
    async fn cursor(&self) -> Result<(Stored, Cursor), VaultError> {
        loop {
            if let Some(bytes) = self.store.get(CURSOR_KEY).await? {
                // A cursor that does not decode only says where to resume: start over.
                let cursor = Cursor::decode(&*bytes).unwrap_or_else(|_| {
                    tracing::warn!(
                        "the stored rewrap cursor does not decode; the pass starts over"
                    );
                    Cursor {
                        target: self.keys.active_id(),
                        started_at_micros: unix_micros(SystemTime::now()),
                        ..Cursor::default()
                    }
                });
                return Ok((bytes, cursor));
            }
            let cursor = Cursor {
                target: self.keys.active_id(),
                total: self.count().await?,
                started_at_micros: unix_micros(SystemTime::now()),
                ..Cursor::default()
            };
            if self
                .store
                .put_if_absent(CURSOR_KEY, cursor.encode_to_vec())
                .await?
            {
                // Read back for its revision (the next save compares it).
                if let Some(stored) = self.store.get(CURSOR_KEY).await? {
                    return Ok((stored, cursor));
                }
            }
        }
    }

    async fn count(&self) -> Result<u64, VaultError> {
        let mut after: Option<Vec<u8>> = None;
        let mut n = 0;
        loop {
            let page = self.store.scan(PREFIX, after.as_deref(), 1024).await?;
            let Some((last, _)) = page.last() else {
                return Ok(n);
            };
            n += page.len() as u64;
            after = Some(last.clone());
        }
    }

    /// Stores the cursor (`None`: the pass is over) in place of `stored`; returns it as stored
    /// (with its new revision), for the next save.
    async fn save(&self, stored: &Stored, cursor: Option<&Cursor>) -> Result<Stored, String> {
        const CONFLICT: &str = "the stored rewrap cursor changed under this pass: another instance is rewrapping this store";
        let bytes = cursor.map(Message::encode_to_vec);
        let store_err = |e: crate::store::StoreError| e.to_string();
        let swapped = self
            .store
            .compare_and_swap(CURSOR_KEY, stored, bytes.clone())
            .await
            .map_err(store_err)?;
        if !swapped {
            return Err(CONFLICT.into());
        }
        let Some(bytes) = bytes else {
            return Ok(Stored::new(Vec::new(), 0));
        };
        match self.store.get(CURSOR_KEY).await.map_err(store_err)? {
            Some(now) if *now == *bytes => Ok(now),
            _ => Err(CONFLICT.into()),
        }
    }

    async fn rewrap_one(
        &self,
        key: &[u8],
        mut bytes: Stored,
        target: u32,
    ) -> Result<Outcome, String> {
        for _ in 0..MAX_ATTEMPTS {
            match Keyring::key_id_of(&bytes) {
                Ok(id) if id >= target => return Ok(Outcome::Skipped),
                Ok(_) => {}
                Err(_) => return Ok(self.unreadable(key, "its envelope does not decode")),
            }
            let plain = match self.keys.open(key, &bytes).await {
                Ok(plain) => plain,
                Err(e) => return Ok(self.unreadable(key, &e.to_string())),
            };
            let sealed = self
                .keys
                .seal(key, &plain)
                .await
                .map_err(|e| e.to_string())?;
            drop(plain);
            let store_err = |e: crate::store::StoreError| e.to_string();
            if self
                .store
                .compare_and_swap(key, &bytes, Some(sealed))
                .await
                .map_err(store_err)?
            {
                return Ok(Outcome::Rewrapped);
            }
            // Changed meanwhile: whatever is there now was written by someone else.
            match self.store.get(key).await.map_err(store_err)? {
                Some(now) => bytes = now,
                None => return Ok(Outcome::Skipped),
            }
        }
        tracing::warn!(record = %String::from_utf8_lossy(key), "rewrap skipped a record whose every swap lost to concurrent writers; run the rewrap again");
        Ok(Outcome::Skipped)
    }

    fn unreadable(&self, key: &[u8], reason: &str) -> Outcome {
        tracing::warn!(record = %String::from_utf8_lossy(key), %reason, "rewrap left an unreadable record as it is (DATA_LOSS for it)");
        Outcome::Unreadable
    }

    fn publish(&self, change: impl FnOnce(&mut RewrapProgress)) {
        change(&mut self.progress.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn snapshot(&self) -> RewrapProgress {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn show(&self, cursor: &Cursor, state: RewrapState, started: Instant, base: u64) {
        let elapsed = started.elapsed().as_secs_f64();
        let rate = match elapsed > 0.0 {
            true => (cursor.done - base) as f64 / elapsed,
            false => 0.0,
        };
        let left = cursor.total.saturating_sub(cursor.done);
        let done = state == RewrapState::Done;
        self.publish(|p| {
            *p = RewrapProgress {
                state,
                target: cursor.target,
                total: cursor.total,
                done: cursor.done,
                rewrapped: cursor.rewrapped,
                unreadable: cursor.unreadable,
                started_at: Some(from_unix_micros(cursor.started_at_micros)),
                finished_at: done.then(SystemTime::now),
                rate,
                eta: match (done, rate > 0.0) {
                    (true, _) => Some(Duration::ZERO),
                    (false, true) => Some(Duration::from_secs_f64(left as f64 / rate)),
                    (false, false) => None,
                },
            }
        });
    }
}
