//! How many credentials the store holds, for the metrics gauge: counted once at open, then kept
//! by this instance's own Adds and Deletes, so a scrape never scans. A store other instances
//! write too (etcd) drifts from that: it is counted again when the number is read, at most every
//! [`RECOUNT_EVERY`], by one count-only request in the background (the read answers at once).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::record::PREFIX;
use crate::store::{Store, StoreError};

/// The least time between two counts of a shared store.
const RECOUNT_EVERY: Duration = Duration::from_secs(10);

pub(super) struct Census {
    store: Arc<dyn Store>,
    /// The store's count, less this instance's changes up to that count (`count = base + local`).
    base: AtomicI64,
    /// This instance's Adds less its Deletes, since open.
    local: AtomicI64,
    counted_at: Mutex<Instant>,
    counting: AtomicBool,
}

impl Census {
    pub async fn open(store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let count = store.count(PREFIX).await?;
        Ok(Arc::new(Self {
            store,
            base: AtomicI64::new(i64::try_from(count).unwrap_or(i64::MAX)),
            local: AtomicI64::new(0),
            counted_at: Mutex::new(Instant::now()),
            counting: AtomicBool::new(false),
        }))
    }

    pub fn added(&self) {
        self.local.fetch_add(1, Ordering::Relaxed);
    }

    pub fn deleted(&self) {
        self.local.fetch_sub(1, Ordering::Relaxed);
    }

    /// The credentials stored: exact once writes pause (on a shared store, once it has been
    /// counted again since); a write in flight during a count may be off by one until the next.
    pub fn current(self: &Arc<Self>) -> u64 {
        if self.store.shared() && self.due() {
            let census = self.clone();
            tokio::spawn(async move { census.recount().await });
        }
        let count = self.base.load(Ordering::Relaxed) + self.local.load(Ordering::Relaxed);
        u64::try_from(count).unwrap_or(0)
    }

    /// Whether a count is due, claiming it if so (one at a time).
    fn due(&self) -> bool {
        let stale = self
            .counted_at
            .lock()
            .map_or(true, |at| at.elapsed() >= RECOUNT_EVERY);
        stale
            && self
                .counting
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    async fn recount(&self) {
        // Writes acknowledged before the count began are in both `local` and the count.
        let local = self.local.load(Ordering::Relaxed);
        match self.store.count(PREFIX).await {
            Ok(count) => {
                let count = i64::try_from(count).unwrap_or(i64::MAX);
                self.base.store(count - local, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "counting the stored credentials failed"),
        }
        if let Ok(mut at) = self.counted_at.lock() {
            *at = Instant::now();
        }
        self.counting.store(false, Ordering::Release);
    }
}
