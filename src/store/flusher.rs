//! Group commit for sled: one thread runs `Db::flush` for every writer waiting at that moment.
//!
//! Why a thread: sled 0.34's `flush_async` deadlocks with concurrent callers (sled #1308, #1241),
//! and a blocking fsync must not sit on a runtime thread. Writers enqueue a waiter after their
//! write; the thread takes every queued waiter, flushes once and answers them all. A waiter queued
//! during a flush is served by the next one, so its write is always covered.

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
    pub fn start(db: sled::Db) -> std::io::Result<Self> {
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
                        .map(drop)
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
