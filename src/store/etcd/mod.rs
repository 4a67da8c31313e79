//! The etcd store: the same `Store` contract over a real etcd (v3 API, generated from the
//! vendored protos in `proto/etcd/`), so several credvault instances share one set of records.
//!
//! Every key lives under a prefix (default `/credvault/`). Values are the same sealed bytes as in
//! sled: etcd never sees plaintext. Create is a Txn on `create_revision == 0`; compare-and-swap a
//! Txn on the value read (records carry a fresh nonce, so a value never comes back the same).
//! Reads are linearizable (etcd's default Range). A write is acknowledged by etcd once its raft
//! log entry is committed and fsynced on a quorum, so `flush` has nothing left to do.
//!
//! This is the backend alone; choosing it in the config, retries across leader changes and the
//! health of an unreachable cluster come with the rest of issue 19.

mod pb {
    #![allow(clippy::all, clippy::pedantic)]
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
}

use std::time::Duration;

use async_trait::async_trait;
use pb::etcdserverpb::{
    compare, kv_client::KvClient, request_op, Compare, DeleteRangeRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest,
};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use super::{Entry, Health, Store, StoreError};

pub struct EtcdStore {
    kv: KvClient<Channel>,
    prefix: Vec<u8>,
    health: watch::Sender<Health>,
    /// Follows whether etcd answers (every `PROBE_EVERY`), for health and recovery.
    probe: tokio::task::AbortHandle,
}

/// How often the store asks etcd whether it is there.
const PROBE_EVERY: Duration = Duration::from_millis(500);

impl Drop for EtcdStore {
    fn drop(&mut self) {
        self.probe.abort();
    }
}

impl EtcdStore {
    /// Connects to `endpoints` (e.g. `http://127.0.0.1:2379`), storing every key under `prefix`.
    pub async fn connect(
        endpoints: &[String],
        prefix: &[u8],
        dial_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let endpoints = endpoints
            .iter()
            .map(|e| {
                Endpoint::from_shared(e.clone())
                    .map(|ep| ep.connect_timeout(dial_timeout).timeout(request_timeout))
                    .map_err(|err| StoreError::Backend(format!("etcd endpoint {e}: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(StoreError::Backend("no etcd endpoint given".into()));
        }
        let channel = Channel::balance_list(endpoints.into_iter());
        let kv = KvClient::new(channel);
        let health = watch::channel(Health::Serving).0;
        let probe = tokio::spawn(probe(kv.clone(), prefix.to_vec(), health.clone())).abort_handle();
        Ok(Self {
            kv,
            prefix: prefix.to_vec(),
            health,
            probe,
        })
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        [self.prefix.as_slice(), key].concat()
    }

    async fn txn(&self, txn: TxnRequest) -> Result<bool, StoreError> {
        let reply = self.kv.clone().txn(txn).await.map_err(backend)?;
        Ok(reply.into_inner().succeeded)
    }
}

/// Asks etcd, forever, whether it answers; health follows (Unavailable while it does not).
async fn probe(mut kv: KvClient<Channel>, prefix: Vec<u8>, health: watch::Sender<Health>) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let asked = kv.range(RangeRequest {
            key: prefix.clone(),
            count_only: true,
            ..Default::default()
        });
        let now = match tokio::time::timeout(PROBE_EVERY * 4, asked).await {
            Ok(Ok(_)) => Health::Serving,
            Ok(Err(status)) => {
                Health::Unavailable(format!("{}: {}", status.code(), status.message()))
            }
            Err(_) => Health::Unavailable("no answer within 2 s".into()),
        };
        health.send_if_modified(|old| {
            let changed = std::mem::discriminant(old) != std::mem::discriminant(&now);
            if changed {
                match &now {
                    Health::Serving => tracing::info!("etcd answers again: serving"),
                    Health::Unavailable(reason) | Health::Failed(reason) => {
                        tracing::warn!(%reason, "etcd is unreachable: NOT_SERVING until it answers")
                    }
                }
                *old = now;
            }
            changed
        });
    }
}

fn backend(status: tonic::Status) -> StoreError {
    use tonic::Code;
    let text = format!("etcd: {}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
            StoreError::Unavailable(text)
        }
        _ => StoreError::Backend(text),
    }
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

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let reply = self
            .kv
            .clone()
            .range(RangeRequest {
                key: self.full(key),
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        Ok(reply.into_inner().kvs.into_iter().next().map(|kv| kv.value))
    }

    async fn put_if_absent(&self, key: &[u8], value: Vec<u8>) -> Result<bool, StoreError> {
        let key = self.full(key);
        self.txn(TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Create as i32,
                key: key.clone(),
                target_union: Some(compare::TargetUnion::CreateRevision(0)),
                ..Default::default()
            }],
            success: vec![put_op(key, value)],
            failure: vec![],
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: &[u8],
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let key = self.full(key);
        let op = match new {
            Some(value) => put_op(key.clone(), value),
            None => RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(
                    DeleteRangeRequest {
                        key: key.clone(),
                        ..Default::default()
                    },
                )),
            },
        };
        // A missing key has no value to compare, so the Txn fails: nothing to swap.
        self.txn(TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Value as i32,
                key,
                target_union: Some(compare::TargetUnion::Value(expected.to_vec())),
                ..Default::default()
            }],
            success: vec![op],
            failure: vec![],
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
        let reply = self
            .kv
            .clone()
            .range(RangeRequest {
                key: start,
                range_end: prefix_end(&full),
                limit: i64::try_from(limit).unwrap_or(i64::MAX),
                sort_order: pb::etcdserverpb::range_request::SortOrder::Ascend as i32,
                sort_target: pb::etcdserverpb::range_request::SortTarget::Key as i32,
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        let cut = self.prefix.len();
        Ok(reply
            .into_inner()
            .kvs
            .into_iter()
            .map(|kv| (kv.key[cut..].to_vec(), kv.value))
            .collect())
    }

    /// etcd acknowledges a write once a quorum has it durably: nothing is pending here.
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn health(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
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
