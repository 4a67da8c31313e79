//! Linearizable point reads in batches: the `get`s that arrive while earlier ones are in flight
//! share one read-only Txn (one Range per key), as writes share a group commit on sled.
//!
//! etcd serves a read-only Txn as it serves a Range: linearizably, after a ReadIndex round that
//! concurrent requests share anyway. A `get` that joins a batch is answered from a read that
//! started after the `get` did, so it is as linearizable as a Range of its own. What a batch
//! saves is per-request work on both sides of the hop: one gRPC exchange (and its syscalls) and
//! one ReadIndex wait for up to `MAX_BATCH` keys instead of one each. A lone `get` goes at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::pb::etcdserverpb::{kv_client::KvClient, response_op, TxnRequest};
use super::retry::{deadline_within, retrying, until_latest};
use super::session::{Conn, Session};
use crate::store::{StoreError, Stored};

/// Keys per Txn at most (etcd's `--max-txn-ops` is 128 by default).
const MAX_BATCH: usize = 64;
/// Batches in flight at once; while they all are, new reads queue up and form the next one.
const IN_FLIGHT: usize = 2;
/// Reads waiting for a batch at most; past it, `get` waits for room (back-pressure).
const QUEUE: usize = 4096;

type Answer = Result<Option<Stored>, StoreError>;

struct Pending {
    key: Vec<u8>,
    /// The caller's time limit (its RPC's deadline, or the store's request timeout).
    end: Instant,
    answer: oneshot::Sender<Answer>,
}

pub(super) struct Reads {
    queue: mpsc::Sender<Pending>,
    budget: Duration,
}

impl Reads {
    /// The batcher for `kv`; its task ends when the returned `Reads` is dropped.
    pub(super) fn start(kv: KvClient<Conn>, session: Session, budget: Duration) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(batch(pending, kv, session));
        Self { queue, budget }
    }

    /// The value under the full key `key`, read linearizably, within the caller's deadline.
    pub(super) async fn get(&self, key: Vec<u8>) -> Answer {
        let end = deadline_within(self.budget);
        let (answer, answered) = oneshot::channel();
        ask(
            &self.queue,
            Pending { key, end, answer },
            answered,
            end,
            "a read",
        )
        .await
    }
}

/// Queues `pending` for its batcher and waits for its answer, both within `end` (queueing, when
/// the queue is full, counts against the deadline too). `what` names it if time runs out.
pub(super) async fn ask<P, T>(
    queue: &mpsc::Sender<P>,
    pending: P,
    answered: oneshot::Receiver<Result<T, StoreError>>,
    end: Instant,
    what: &str,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let asked = async {
        queue.send(pending).await.map_err(|_| StoreError::Closed)?;
        answered.await.map_err(|_| StoreError::Closed)?
    };
    match tokio::time::timeout_at(end.into(), asked).await {
        Ok(answer) => answer,
        Err(_) => Err(StoreError::Unavailable(format!(
            "etcd did not answer {what} within {} ms",
            started.elapsed().as_millis()
        ))),
    }
}

/// Gathers waiting reads into batches, at most `IN_FLIGHT` at a time.
async fn batch(mut pending: mpsc::Receiver<Pending>, kv: KvClient<Conn>, session: Session) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = pending.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        // Everything that queued while the slots were busy rides along.
        let mut reads = vec![first];
        while reads.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(read) => reads.push(read),
                Err(_) => break,
            }
        }
        let (kv, session) = (kv.clone(), session.clone());
        tokio::spawn(async move {
            answer(kv, session, reads).await;
            drop(slot);
        });
    }
}

/// One Txn of Ranges for `reads`, retried until the latest of their deadlines; each gets its
/// own answer.
async fn answer(kv: KvClient<Conn>, session: Session, reads: Vec<Pending>) {
    let budget = until_latest(reads.iter().map(|r| r.end));
    let txn = TxnRequest {
        success: reads
            .iter()
            .map(|r| super::range_op(r.key.clone()))
            .collect(),
        ..Default::default()
    };
    let reply = retrying(budget, &session, |_| {
        let (mut kv, txn) = (kv.clone(), txn.clone());
        async move { kv.txn(txn).await }
    })
    .await
    .map(tonic::Response::into_inner);
    match reply {
        Ok(reply) if reply.responses.len() == reads.len() => {
            for (read, response) in reads.into_iter().zip(reply.responses) {
                let value = match response.response {
                    Some(response_op::Response::ResponseRange(range)) => range
                        .kvs
                        .into_iter()
                        .next()
                        .map(|kv| Stored::new(kv.value, kv.mod_revision)),
                    _ => None,
                };
                let _ = read.answer.send(Ok(value));
            }
        }
        Ok(reply) => {
            let e = StoreError::Backend(format!(
                "etcd answered {} of {} reads in a Txn",
                reply.responses.len(),
                reads.len()
            ));
            for read in reads {
                let _ = read.answer.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for read in reads {
                let _ = read.answer.send(Err(e.clone()));
            }
        }
    }
}
