//! Storage behind a trait: bytes in, bytes out. No crypto and no proto here.
//!
//! Every mutating call returns only once the change is durable, so the vault can acknowledge a
//! write the moment the store does. Backends: sled (embedded default) and etcd (`etcd/`, several
//! instances sharing one cluster).

mod etcd;
mod flusher;
mod lock;
mod sled;

pub use self::etcd::{pb as etcd_pb, EtcdStore};
pub use self::flusher::{Faults, FlushHold};
pub use self::lock::Lock;
pub use self::sled::SledStore;

use async_trait::async_trait;

/// A key and its value, from a scan.
pub type Entry = (Vec<u8>, Stored);

/// A value as read, with the store's revision of it. A compare-and-swap takes it back as the
/// state it expects: etcd compares the revision (the key's `mod_revision`), sled the value.
/// Derefs to the value's bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Stored {
    value: Vec<u8>,
    /// etcd's `mod_revision`; 0 in a store that compares values (sled).
    revision: i64,
}

impl Stored {
    pub fn new(value: Vec<u8>, revision: i64) -> Self {
        Self { value, revision }
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn into_value(self) -> Vec<u8> {
        self.value
    }
}

impl std::ops::Deref for Stored {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.value
    }
}

/// Sealed bytes are no secret, but neither are they worth printing: their size and revision.
impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Stored({} bytes, revision {})",
            self.value.len(),
            self.revision
        )
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend error: {0}")]
    Backend(String),
    #[error("data dir {} is in use by another credvault process (it holds the store's lock): stop that process, or give this one another data dir", .0.display())]
    InUse(std::path::PathBuf),
    #[error("storage is shutting down")]
    Closed,
    /// A flush failed: the store is fail-stop and acknowledges no write until a restart.
    #[error("the store failed to make a write durable ({0}) and takes no writes until credvault restarts")]
    Failed(String),
    /// A shared store (etcd) that cannot be reached now; it may come back by itself.
    #[error("the store is unreachable: {0}")]
    Unavailable(String),
}

/// Whether the store can take writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Serving,
    /// Fail-stop, with the reason: every later write fails until a restart.
    Failed(String),
    /// Unreachable now (etcd), with the reason; back to `Serving` when it answers again.
    Unavailable(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &[u8]) -> Result<Option<Stored>, StoreError>;

    /// A read for an answer (Resolve) that a store may serve from a copy of its own, no older
    /// than the bound it documents (etcd with `etcd.read = "cached"`). Never for a read that a
    /// write depends on: those use `get`. By default, `get`.
    async fn get_recent(&self, key: &[u8]) -> Result<Option<Stored>, StoreError> {
        self.get(key).await
    }

    /// Stores `value` unless `key` is present, atomically. `Ok(false)`: the key was taken and
    /// nothing was written.
    async fn put_if_absent(&self, key: &[u8], value: Vec<u8>) -> Result<bool, StoreError>;

    /// Atomically replaces `expected` (as `get` or `scan` read it) with `new` (`None` deletes).
    /// `Ok(false)`: the key changed since (someone else wrote or deleted it) and nothing was
    /// written.
    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: &Stored,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError>;

    /// Up to `limit` entries whose keys start with `prefix` and sort after `after`, in key order.
    async fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// How many keys start with `prefix`, values unread where the backend allows it (etcd: a
    /// count-only Range). For counts kept up to date by the caller, not for every request.
    async fn count(&self, prefix: &[u8]) -> Result<u64, StoreError>;

    /// Whether other instances write to this store too (etcd), so a count this instance keeps
    /// drifts and must be read again now and then.
    fn shared(&self) -> bool {
        false
    }

    /// Makes every write so far durable. Mutations are durable on return anyway; this is for
    /// shutdown, and for answers that report state another writer may not have flushed yet.
    async fn flush(&self) -> Result<(), StoreError>;

    /// Follows whether the store can take writes (health checks turn NOT_SERVING when not).
    fn health(&self) -> tokio::sync::watch::Receiver<Health>;

    /// Takes the lock `name` unless another instance sharing this store holds it (`Ok(None)`).
    /// etcd: a key under a lease of `ttl`, kept alive while the `Lock` lives; an instance that
    /// dies without releasing it frees it after `ttl`. A store one process opens (sled, by
    /// default) grants it at once, for good.
    async fn try_lock(
        &self,
        _name: &str,
        _ttl: std::time::Duration,
    ) -> Result<Option<Lock>, StoreError> {
        Ok(Some(Lock::exclusive()))
    }
}
