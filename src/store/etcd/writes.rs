//! Conditional writes in batches: the writes (creates, compare-and-swaps) that arrive while
//! earlier ones are in flight share one Txn, as reads do (`batch`) and as sled's writes share a
//! group commit.
//!
//! A Txn is atomic: its compares all hold and every write in it is applied, in one raft entry,
//! or none is. So a batch that etcd applies answers each of its writes "written"; one that it
//! refuses (some write's compare failed: another writer got there first) is sent again as one
//! Txn per write, which answers each for itself. Keys in a batch are distinct (etcd refuses a
//! Txn that writes a key twice): a second write to a key already in the batch goes alone.
//!
//! A write whose caller has given up (its deadline passed) is left out of the batch's next
//! attempt, so it is not applied after its caller was told it failed, beyond the one attempt in
//! flight that any write has. A batch whose answer was lost may have been applied: its writes,
//! sent again alone, look for their own value (`expect`) when their compare fails.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::batch::ask;
use super::cache::Cache;
use super::pb::etcdserverpb::{kv_client::KvClient, Compare, RequestOp, TxnRequest};
use super::retry::{deadline_within, retrying, until_latest};
use super::session::{Conn, Session};
use super::{range_op, read_back};
use crate::store::StoreError;

/// Writes per Txn at most (etcd's `--max-txn-ops` is 128 by default).
const MAX_BATCH: usize = 64;
/// Batches in flight at once; while they all are, new writes queue up and form the next one.
const IN_FLIGHT: usize = 2;
/// Writes waiting for a batch at most; past it, `write` waits for room (back-pressure).
const QUEUE: usize = 4096;

/// `Ok(true)`: written, by this attempt or by an earlier one whose answer was lost.
type Answer = Result<bool, StoreError>;

/// One conditional write: `op` on `key` if `compare` holds.
pub(super) struct Write {
    /// The full key (prefix included).
    pub key: Vec<u8>,
    pub compare: Compare,
    pub op: RequestOp,
    /// What the key holds once this write is applied (`None`: gone). A sealed record is unique
    /// (fresh nonce, per-write id), so finding it after a lost answer means the write landed.
    pub expect: Option<Vec<u8>>,
}

struct Pending {
    write: Write,
    end: Instant,
    answer: oneshot::Sender<Answer>,
}

#[derive(Clone)]
struct Etcd {
    kv: KvClient<Conn>,
    session: Session,
    cache: Option<Arc<Cache>>,
}

pub(super) struct Writes {
    queue: mpsc::Sender<Pending>,
    budget: Duration,
}

impl Writes {
    /// The batcher for `kv`; its task ends when the returned `Writes` is dropped. Writes it
    /// applies are shown to `cache` (this instance's reads see them at once).
    pub(super) fn start(
        kv: KvClient<Conn>,
        session: Session,
        cache: Option<Arc<Cache>>,
        budget: Duration,
    ) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(gather(pending, Etcd { kv, session, cache }));
        Self { queue, budget }
    }

    /// Applies `write`, within the caller's deadline.
    pub(super) async fn write(&self, write: Write) -> Answer {
        let end = deadline_within(self.budget);
        let (answer, answered) = oneshot::channel();
        let pending = Pending { write, end, answer };
        ask(&self.queue, pending, answered, end, "a write").await
    }
}

/// Gathers waiting writes into batches of distinct keys, at most `IN_FLIGHT` at a time.
async fn gather(mut pending: mpsc::Receiver<Pending>, etcd: Etcd) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = pending.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut keys = HashSet::from([first.write.key.clone()]);
        let mut writes = vec![first];
        while writes.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(w) if !keys.insert(w.write.key.clone()) => {
                    tokio::spawn(alone(etcd.clone(), w, false));
                }
                Ok(w) => writes.push(w),
                Err(_) => break,
            }
        }
        let etcd = etcd.clone();
        tokio::spawn(async move {
            match writes.len() {
                1 => alone(etcd, writes.pop().expect("one write"), false).await,
                _ => together(etcd, writes).await,
            }
            drop(slot);
        });
    }
}

/// One Txn for `writes`: every compare, then every op. Refused, each write goes again alone.
async fn together(etcd: Etcd, writes: Vec<Pending>) {
    let budget = until_latest(writes.iter().map(|w| w.end));
    let reply = retrying(budget, &etcd.session, |n| {
        // Only the writes whose callers still wait.
        let waiting: Vec<usize> = (0..writes.len())
            .filter(|&i| !writes[i].answer.is_closed() && writes[i].end > Instant::now())
            .collect();
        let txn = TxnRequest {
            compare: waiting
                .iter()
                .map(|&i| writes[i].write.compare.clone())
                .collect(),
            success: waiting
                .iter()
                .map(|&i| writes[i].write.op.clone())
                .collect(),
            failure: vec![],
        };
        let mut kv = etcd.kv.clone();
        async move {
            if waiting.is_empty() {
                return Ok(None);
            }
            Ok(Some((kv.txn(txn).await?.into_inner(), waiting, n + 1)))
        }
    })
    .await;
    let (reply, waiting, attempts) = match reply {
        Ok(Some(answered)) => answered,
        Ok(None) => return,
        Err(e) => {
            for w in writes {
                let _ = w.answer.send(Err(e.clone()));
            }
            return;
        }
    };
    let mut writes: Vec<Option<Pending>> = writes.into_iter().map(Some).collect();
    let sent = waiting.into_iter().filter_map(|i| writes[i].take());
    if reply.succeeded {
        if let (Some(cache), Some(header)) = (&etcd.cache, &reply.header) {
            cache.wrote(header.revision);
        }
        for w in sent {
            let _ = w.answer.send(Ok(true));
        }
    } else {
        for w in sent {
            tokio::spawn(alone(etcd.clone(), w, attempts > 1));
        }
    }
}

/// `write`'s own Txn: its op if its compare holds, else the key read back, to tell whether an
/// earlier attempt (of this Txn, or of a batch it was in when `maybe_applied`) landed.
async fn alone(etcd: Etcd, pending: Pending, maybe_applied: bool) {
    let Pending { write, end, answer } = pending;
    let txn = TxnRequest {
        compare: vec![write.compare],
        success: vec![write.op],
        failure: vec![range_op(write.key)],
    };
    let budget = end.saturating_duration_since(Instant::now());
    let reply = retrying(budget, &etcd.session, |n| {
        let (mut kv, txn) = (etcd.kv.clone(), txn.clone());
        async move { Ok((kv.txn(txn).await?.into_inner(), n + 1)) }
    })
    .await;
    let written = reply.map(|(reply, attempts)| {
        let lost = maybe_applied || attempts > 1;
        let ours = reply.succeeded || (lost && read_back(&reply) == write.expect);
        if let (true, Some(cache), Some(header)) = (ours, &etcd.cache, &reply.header) {
            cache.wrote(header.revision);
        }
        ours
    });
    let _ = answer.send(written);
}
