//! The etcd store: the same `Store` contract over a real etcd (v3 API, generated from the
//! vendored protos in `proto/etcd/`), so several credvault instances share one set of records.
//!
//! Every key lives under a prefix (default `/credvault/`). Values are the same sealed bytes as in
//! sled: etcd never sees plaintext. As Kubernetes' apiserver does: create is a Txn on
//! `create_revision == 0`; a compare-and-swap (replace, validation result, delete) a Txn on
//! `mod_revision ==` the revision read. Reads are linearizable (etcd's default Range). A write
//! is acknowledged by etcd once its raft entry is committed and fsynced on a quorum, so `flush`
//! has nothing left to do.
//!
//! Calls are retried across a leader change or a member down (`retry`), within the caller's
//! deadline. A write whose answer was lost may have been applied: when its retry finds the
//! compare failed, the store reads the key back, and a value equal to the one it wrote (a sealed
//! record is unique: fresh nonce, per-write id) means the first attempt landed, so a retried
//! create does not come back as "already exists".
//!
//! Point reads and conditional writes that arrive together share one Txn (`batch`, `writes`):
//! one gRPC exchange and one raft entry (or ReadIndex) for many RPCs.
//!
//! With `etcd.read = "cached"`, Resolve (`get_recent`) reads a watch-fed copy (`cache`) while it
//! is confirmed fresh; every other read stays linearizable.

mod batch;
mod cache;
mod lease;
mod probe;
mod retry;
mod session;
mod writes;

/// etcd's v3 API as generated from `proto/etcd/` (clients only). Public for the benchmark's
/// etcd baseline, which measures etcd through this same client.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
}

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pb::etcdserverpb::{
    compare, kv_client::KvClient, request_op, response_op, Compare, DeleteRangeRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest, TxnResponse,
};
use tokio::sync::watch;

use self::batch::Reads;
use self::cache::Cache;
use self::retry::retrying;
use self::session::{Conn, Session};
use self::writes::{Write, Writes};
use super::{Entry, Health, Lock, Store, StoreError, Stored};
use crate::config::{EtcdConfig, EtcdRead};

/// How long one round of `wait_until_reachable` retries before it says it is still waiting.
const WAIT_ROUND: Duration = Duration::from_secs(2);

pub struct EtcdStore {
    kv: KvClient<Conn>,
    /// The channel, with the session's token (for clients other than KV: leases).
    conn: Conn,
    /// The login's token (if etcd's auth is on), renewed when etcd refuses it.
    session: Session,
    /// Point reads, batched into read-only Txns.
    reads: Reads,
    /// Conditional writes, batched into Txns.
    writes: Writes,
    prefix: Vec<u8>,
    /// How long one store call may keep retrying (`etcd.request_timeout_ms`), at most.
    budget: Duration,
    health: watch::Sender<Health>,
    /// With `etcd.read = "cached"`: the copy Resolve reads while it is fresh.
    cache: Option<Arc<Cache>>,
    /// The probe (whether etcd answers, for health and recovery) and the cache's follower.
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl EtcdStore {
    /// Connects to `config.endpoints` (e.g. `http://127.0.0.1:2379`), storing every key under
    /// `config.prefix`. One call retries for `config.request_timeout` at most (less within an RPC
    /// with a sooner deadline).
    pub async fn connect(config: &EtcdConfig) -> Result<Self, StoreError> {
        let (channel, session, renewer) = session::open(config).await?;
        let prefix = config.prefix.as_bytes().to_vec();
        let conn = session.wrap(channel);
        let kv = KvClient::new(conn.clone());
        let health = watch::channel(Health::Serving).0;
        let probe = tokio::spawn(probe::probe(
            kv.clone(),
            session.clone(),
            prefix.clone(),
            health.clone(),
        ));
        let mut tasks: Vec<_> = renewer.into_iter().collect();
        tasks.push(probe.abort_handle());
        let cache = (config.read == EtcdRead::Cached).then(|| {
            let cache = Cache::new(config.cache_staleness);
            let follower = tokio::spawn(cache::follow(
                conn.clone(),
                session.clone(),
                prefix.clone(),
                cache.clone(),
            ));
            tasks.push(follower.abort_handle());
            cache
        });
        Ok(Self {
            reads: Reads::start(kv.clone(), session.clone(), config.request_timeout),
            writes: Writes::start(
                kv.clone(),
                session.clone(),
                cache.clone(),
                config.request_timeout,
            ),
            kv,
            conn,
            session,
            prefix,
            budget: config.request_timeout,
            health,
            cache,
            tasks,
        })
    }

    /// Waits until etcd answers a linearizable read, however long that takes (a server started
    /// before its etcd waits for it, saying so every 5 s). A refusal (a permission, a login) is
    /// an error at once.
    pub async fn wait_until_reachable(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut said: Option<std::time::Instant> = None;
        loop {
            let asked = retrying(WAIT_ROUND, &self.session, |_| {
                let mut kv = self.kv.clone();
                let request = probe::request(&self.prefix);
                async move { kv.range(request).await }
            })
            .await;
            match asked {
                Ok(_) => {
                    if said.is_some() {
                        tracing::info!(
                            waited_ms = started.elapsed().as_millis() as u64,
                            "etcd answers"
                        );
                    }
                    return Ok(());
                }
                Err(StoreError::Unavailable(reason)) => {
                    if said.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                        tracing::warn!(%reason, "waiting for etcd to answer before serving");
                        said = Some(std::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        [self.prefix.as_slice(), key].concat()
    }

    /// Runs `txn`, retried.
    async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, StoreError> {
        retrying(self.budget, &self.session, |_| {
            let (mut kv, txn) = (self.kv.clone(), txn.clone());
            async move { Ok(kv.txn(txn).await?.into_inner()) }
        })
        .await
    }
}

/// The key's value in a failed Txn's read-back (`failure: [range]`), if it exists.
fn read_back(reply: &TxnResponse) -> Option<Vec<u8>> {
    reply.responses.iter().find_map(|r| match &r.response {
        Some(response_op::Response::ResponseRange(range)) => {
            range.kvs.first().map(|kv| kv.value.clone())
        }
        _ => None,
    })
}

/// The end of the range of every key starting with `prefix` (etcd's "prefix end").
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key after the prefix.
    vec![0]
}

fn put_op(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key,
            value,
            ..Default::default()
        })),
    }
}

fn delete_op(key: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key,
                ..Default::default()
            },
        )),
    }
}

fn range_op(key: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key,
            ..Default::default()
        })),
    }
}

fn compare(key: Vec<u8>, target: compare::CompareTarget, value: compare::TargetUnion) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: target as i32,
        key,
        target_union: Some(value),
        ..Default::default()
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Stored>, StoreError> {
        self.reads.get(self.full(key)).await
    }

    async fn get_recent(&self, key: &[u8]) -> Result<Option<Stored>, StoreError> {
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&self.full(key))) {
            return Ok(hit);
        }
        self.get(key).await
    }

    async fn put_if_absent(&self, key: &[u8], value: Vec<u8>) -> Result<bool, StoreError> {
        let key = self.full(key);
        let taken = compare(
            key.clone(),
            compare::CompareTarget::Create,
            compare::TargetUnion::CreateRevision(0),
        );
        self.writes
            .write(Write {
                key: key.clone(),
                compare: taken,
                op: put_op(key, value.clone()),
                expect: Some(value),
            })
            .await
    }

    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: &Stored,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let key = self.full(key);
        // Revision 0 is no revision (a missing key's): never compare on it, or a swap of a
        // value that is not there would create it.
        let unchanged = if expected.revision() > 0 {
            compare(
                key.clone(),
                compare::CompareTarget::Mod,
                compare::TargetUnion::ModRevision(expected.revision()),
            )
        } else {
            compare(
                key.clone(),
                compare::CompareTarget::Value,
                compare::TargetUnion::Value(expected.to_vec()),
            )
        };
        let op = match &new {
            Some(value) => put_op(key.clone(), value.clone()),
            None => delete_op(key.clone()),
        };
        // A lost answer, then the key holds our value (or, for a delete, is gone): ours landed.
        // (A delete cannot tell its own from another writer's; either way the record is gone.)
        self.writes
            .write(Write {
                key,
                compare: unchanged,
                op,
                expect: new,
            })
            .await
    }

    async fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let full = self.full(prefix);
        let start = match after {
            // The first key after `after`: `after` followed by a zero byte.
            Some(after) => [self.full(after).as_slice(), &[0]].concat(),
            None => full.clone(),
        };
        let request = RangeRequest {
            key: start,
            range_end: prefix_end(&full),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            sort_order: pb::etcdserverpb::range_request::SortOrder::Ascend as i32,
            sort_target: pb::etcdserverpb::range_request::SortTarget::Key as i32,
            ..Default::default()
        };
        let reply = retrying(self.budget, &self.session, |_| {
            let (mut kv, request) = (self.kv.clone(), request.clone());
            async move { kv.range(request).await }
        })
        .await?;
        let cut = self.prefix.len();
        Ok(reply
            .into_inner()
            .kvs
            .into_iter()
            .map(|kv| {
                (
                    kv.key[cut..].to_vec(),
                    Stored::new(kv.value, kv.mod_revision),
                )
            })
            .collect())
    }

    /// A count-only Range: etcd counts its index, no value leaves it.
    async fn count(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let full = self.full(prefix);
        let request = RangeRequest {
            range_end: prefix_end(&full),
            key: full,
            count_only: true,
            ..Default::default()
        };
        let reply = retrying(self.budget, &self.session, |_| {
            let (mut kv, request) = (self.kv.clone(), request.clone());
            async move { kv.range(request).await }
        })
        .await?;
        Ok(u64::try_from(reply.into_inner().count).unwrap_or(0))
    }

    fn shared(&self) -> bool {
        true
    }

    /// etcd acknowledges a write once a quorum has it durably: nothing is pending here.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn health(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<Lock>, StoreError> {
        self.take_lock(name, ttl).await
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_first_key_after_the_prefix() {
        assert_eq!(prefix_end(b"/credvault/"), b"/credvault0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
