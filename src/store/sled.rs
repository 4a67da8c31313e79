//! The embedded default backend.

use std::fs::File;
use std::ops::Bound;
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::flusher::Flusher;
use super::{Entry, Store, StoreError, Stored};

/// sled, with every mutation acknowledged only after a (shared) flush.
///
/// Reads and in-memory mutations run inline: sled serves them from its page cache and its write
/// buffer without disk I/O; the fsync, the only blocking part, runs on the flusher thread.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    flusher: Flusher,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
        let db = open_waiting_for_lock(dir, &config)?;
        let tree = db.open_tree("credvault").map_err(backend)?;
        let flusher = sync_new_files(dir)
            .and_then(|()| File::open(dir.join("db")))
            .and_then(|log| Flusher::start(db.clone(), log))
            .map_err(|e| StoreError::Backend(format!("{}: {e}", dir.display())))?;
        Ok(Self { db, tree, flusher })
    }

    /// Failure injection for tests (a failing fsync, a slow one).
    #[doc(hidden)]
    pub fn faults(&self) -> &super::Faults {
        self.flusher.faults()
    }

    /// Raw access for tests that damage the store on purpose.
    #[doc(hidden)]
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Bytes on disk, for benchmarks.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(backend)
    }

    /// sled's atomic compare-and-swap, acknowledged only once flushed. A lost race writes nothing
    /// and needs no flush.
    async fn durable_cas(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        // Fail-stop: not even applied in memory, where readers would see it.
        self.flusher.check()?;
        let swapped = self
            .tree
            .compare_and_swap(key, expected, new)
            .map_err(backend)?;
        if swapped.is_err() {
            return Ok(false);
        }
        self.flusher.flush().await?;
        Ok(true)
    }
}

/// Makes the data dir's entries (sled's `conf` and `db`, created by this open on a new store)
/// durable, so a power cut cannot leave acknowledged writes in a file whose name was lost.
fn sync_new_files(dir: &Path) -> std::io::Result<()> {
    File::open(dir.join("conf"))?.sync_all()?;
    File::open(dir)?.sync_all()
}

/// How long an open waits for a previous holder of the data dir's lock to let go.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// sled's I/O threads keep the data dir's file lock for a moment after the last `Db` handle is
/// dropped, so a reopen in the same process (restart in place, tests) can race it. Wait briefly
/// for the lock; a data dir held by another live process still fails, after `LOCK_WAIT`.
fn open_waiting_for_lock(dir: &Path, config: &sled::Config) -> Result<sled::Db, StoreError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            // sled reports the lock as ErrorKind::Other with this text (sled 0.34 config.rs).
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if Instant::now() >= deadline {
                    return Err(StoreError::InUse(dir.to_owned()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.map_err(backend),
        }
    }
}

/// sled has no revisions: a compare-and-swap compares the value itself.
fn value(v: sled::IVec) -> Stored {
    Stored::new(v.to_vec(), 0)
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[async_trait]
impl Store for SledStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Stored>, StoreError> {
        Ok(self.tree.get(key).map_err(backend)?.map(value))
    }

    async fn put_if_absent(&self, key: &[u8], value: Vec<u8>) -> Result<bool, StoreError> {
        self.durable_cas(key, None, Some(value)).await
    }

    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: &Stored,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        self.durable_cas(key, Some(expected), new).await
    }

    async fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let start = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Included(prefix),
        };
        self.tree
            .range::<&[u8], _>((start, Bound::Unbounded))
            .take_while(|item| item.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .take(limit)
            .map(|item| item.map(|(k, v)| (k.to_vec(), value(v))).map_err(backend))
            .collect()
    }

    async fn count(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let mut count = 0;
        for key in self.tree.scan_prefix(prefix).keys() {
            key.map_err(backend)?;
            count += 1;
        }
        Ok(count)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.flusher.flush().await
    }

    fn health(&self) -> tokio::sync::watch::Receiver<super::Health> {
        self.flusher.health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_waits_for_the_lock_then_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let held = SledStore::open(dir.path(), 1 << 20).unwrap();
        let started = Instant::now();
        let err = SledStore::open(dir.path(), 1 << 20)
            .err()
            .expect("lock is held");
        assert!(started.elapsed() >= LOCK_WAIT, "gave up before LOCK_WAIT");
        assert!(
            err.to_string()
                .contains("is in use by another credvault process"),
            "{err}"
        );
        drop(held);
        // Released by the drop (after sled's threads let go): the reopen waits for it, no error.
        SledStore::open(dir.path(), 1 << 20).unwrap();
    }
}
