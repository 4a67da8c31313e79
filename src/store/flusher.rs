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

use std::fs::File;
use std::thread::{self, JoinHandle};

use tokio::sync::{mpsc, oneshot};

use super::StoreError;

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// Owned by the store. Dropping it stops and joins the thread, releasing its `Db` handle, so a
/// closed store really lets go of the data dir (sled's file lock) before anyone reopens it.
pub struct Flusher {
    queue: Option<mpsc::UnboundedSender<Waiter>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// `log` is sled's log file (`<dir>/db`), opened by the caller, synced after every flush.
    pub fn start(db: sled::Db, log: File) -> std::io::Result<Self> {
        let (queue, mut rx) = mpsc::unbounded_channel::<Waiter>();
        let thread = thread::Builder::new()
            .name("sled-flusher".into())
            .spawn(move || {
                let mut batch = Vec::new();
                while let Some(first) = rx.blocking_recv() {
                    batch.push(first);
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    let result = db
                        .flush()
                        .map_err(|e| e.to_string())
                        .and_then(|_| log.sync_data().map_err(|e| e.to_string()))
                        .map_err(|e| StoreError::Backend(format!("flush failed: {e}")));
                    tracing::trace!(writers = batch.len(), ok = result.is_ok(), "group flush");
                    for waiter in batch.drain(..) {
                        // A waiter whose RPC was cancelled is gone; nothing to tell it.
                        let _ = waiter.send(result.clone());
                    }
                }
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Returns once everything written before this call is on disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or(StoreError::Closed)?;
        queue.send(tx).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
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
        assert!(err.to_string().contains("flush failed"), "{err}");

        let ok = Flusher::start(db.clone(), File::open(dir.path().join("db")).unwrap()).unwrap();
        ok.flush().await.unwrap();
    }
}
