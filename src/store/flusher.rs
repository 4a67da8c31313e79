//! Group commit for sled: one thread runs `Db::flush` for every writer waiting at that moment.
//!
//! Why a thread: sled 0.34's `flush_async` deadlocks with concurrent callers (sled #1308, #1241),
//! and a blocking fsync must not sit on a runtime thread. Writers enqueue a waiter after their
//! write; the thread takes every queued waiter, flushes once and answers them all. A waiter queued
//! during a flush is served by the next one, so its write is always covered.
//!
//! Why an `fdatasync` after `Db::flush`: on Linux, sled 0.34's flush ends its log writes with
//! `sync_file_range`, which neither writes the file's metadata (its log file grows as it appends)
//! nor flushes the disk's write cache (`man 2 sync_file_range`: no guarantee after a crash). That
//! survives `kill -9`, not power loss. One `fdatasync` of the log file per group flush makes every
//! acknowledged write durable the way etcd's WAL is. (sled writes values over ~128 KiB to separate
//! blob files without syncing them; a credvault record is a few hundred bytes and a sled leaf
//! holds at most 17, so the vault never makes blobs.)
//!
//! Fail-stop: after one failed flush or fdatasync nothing is acknowledged again. Linux may drop
//! the dirty pages of a failed writeback and report success to the next fsync (PostgreSQL's
//! "fsyncgate"), so a later "successful" flush proves nothing about the earlier writes. Only a
//! restart, which re-reads the store from disk, knows what is there.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};

use tokio::sync::{mpsc, oneshot, watch};

use super::{Health, StoreError};

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// Owned by the store. Dropping it stops and joins the thread, releasing its `Db` handle, so a
/// closed store really lets go of the data dir (sled's file lock) before anyone reopens it.
pub struct Flusher {
    queue: Option<mpsc::UnboundedSender<Waiter>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Why the store failed; set once, never cleared.
    failed: OnceLock<String>,
    health: watch::Sender<Health>,
    faults: Faults,
}

impl Shared {
    fn fail(&self, reason: String) {
        if self.failed.set(reason.clone()).is_ok() {
            tracing::error!(
                %reason,
                "the store failed to make writes durable: no further write will be acknowledged \
                 (the kernel may have dropped what it could not write, so what is on disk is \
                 unknown). Reads still answer from memory; health is NOT_SERVING. Restart \
                 credvault: it re-reads the store from disk"
            );
            self.health.send_replace(Health::Failed(reason));
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        match self.failed.get() {
            Some(reason) => Err(StoreError::Failed(reason.clone())),
            None => Ok(()),
        }
    }
}

impl Flusher {
    /// `log` is sled's log file (`<dir>/db`), opened by the caller, synced after every flush.
    pub fn start(db: sled::Db, log: File) -> io::Result<Self> {
        let (queue, mut rx) = mpsc::unbounded_channel::<Waiter>();
        let shared = Arc::new(Shared {
            failed: OnceLock::new(),
            health: watch::Sender::new(Health::Serving),
            faults: Faults::default(),
        });
        let thread = thread::Builder::new().name("sled-flusher".into()).spawn({
            let shared = shared.clone();
            move || {
                let mut batch = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    let started = std::time::Instant::now();
                    let result = shared.check().and_then(|()| {
                        shared
                            .faults
                            .before_flush()
                            .and_then(|()| db.flush().map_err(io::Error::other))
                            .and_then(|_| log.sync_data())
                            .map_err(|e| {
                                shared.fail(format!("flush of sled's log failed: {e}"));
                                StoreError::Failed(e.to_string())
                            })
                    });
                    tracing::trace!(writers = batch.len(), ok = result.is_ok(), "group flush");
                    if let Some(m) = crate::metrics::get() {
                        m.group_flush(batch.len(), started.elapsed());
                    }
                    for waiter in batch.drain(..) {
                        // A waiter whose RPC was cancelled is gone; nothing to tell it.
                        let _ = waiter.send(result.clone());
                    }
                }
            }
        })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            shared,
        })
    }

    /// Returns once everything written before this call is on disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.shared.check()?;
        let (tx, rx) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or(StoreError::Closed)?;
        queue.send(tx).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// `Err` once a flush failed: the store must not take writes any more.
    pub fn check(&self) -> Result<(), StoreError> {
        self.shared.check()
    }

    pub fn health(&self) -> watch::Receiver<Health> {
        self.shared.health.subscribe()
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once it has answered every queued waiter.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("sled flusher thread panicked");
            }
        }
    }
}

/// Failure injection for tests (a disk cannot be made to fail on demand). Costs one relaxed load
/// and one uncontended lock per group flush.
#[derive(Default)]
pub struct Faults {
    fail_next: AtomicBool,
    held: Mutex<bool>,
    released: Condvar,
}

impl Faults {
    /// The next group flush fails as if `fdatasync` had returned EIO.
    pub fn fail_next_flush(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }

    /// Group flushes wait (writes stay unacknowledged) until the returned guard is dropped.
    pub fn hold_flushes(&self) -> FlushHold<'_> {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = true;
        FlushHold(self)
    }

    fn before_flush(&self) -> io::Result<()> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        while *held {
            held = self.released.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        Ok(())
    }
}

/// Releases held flushes when dropped.
pub struct FlushHold<'a>(&'a Faults);

impl Drop for FlushHold<'_> {
    fn drop(&mut self) {
        *self.0.held.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.0.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;

    use super::*;

    /// The fdatasync is part of the acknowledgement: a log file that cannot be synced (here a
    /// pipe, where fsync fails with EINVAL) fails the flush instead of acknowledging it.
    #[tokio::test]
    async fn a_failed_sync_fails_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let (reader, _writer) = std::io::pipe().unwrap();
        let flusher = Flusher::start(db.clone(), File::from(OwnedFd::from(reader))).unwrap();
        db.insert(b"k", b"v").unwrap();
        let err = flusher
            .flush()
            .await
            .expect_err("an unsyncable log must fail the flush");
        assert!(matches!(err, StoreError::Failed(_)), "{err}");

        let ok = Flusher::start(db.clone(), File::open(dir.path().join("db")).unwrap()).unwrap();
        ok.flush().await.unwrap();
    }

    /// After one failure, no later flush acknowledges anything, even though the disk would now
    /// take it: the failed pages may be gone.
    #[tokio::test]
    async fn one_failure_fails_every_later_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let flusher =
            Flusher::start(db.clone(), File::open(dir.path().join("db")).unwrap()).unwrap();
        let mut health = flusher.health();
        flusher.flush().await.unwrap();
        flusher.faults().fail_next_flush();
        assert!(flusher.flush().await.is_err());
        for _ in 0..3 {
            assert!(matches!(flusher.flush().await, Err(StoreError::Failed(_))));
        }
        assert!(flusher.check().is_err());
        health.changed().await.unwrap();
        assert!(matches!(*health.borrow(), Health::Failed(_)));
    }
}
