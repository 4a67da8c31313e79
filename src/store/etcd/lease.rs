//! `try_lock` over etcd: a key `{prefix}lock/{name}` created (Txn on `create_revision == 0`)
//! under a lease of its own, kept alive while the `Lock` lives. The key goes with the lease: when
//! the holder releases it (revoke), or dies and stops renewing it (after the TTL).
//!
//! A holder that cannot renew reports the lock lost once two thirds of the TTL passed since the
//! last renewal etcd confirmed, before the lease can have expired: two instances cannot both
//! think they hold it, within the clocks' drift over one TTL.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::pb::etcdserverpb::{
    compare, lease_client::LeaseClient, request_op, Compare, LeaseGrantRequest,
    LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest, RequestOp, TxnRequest,
};
use super::retry::retrying;
use super::session::{Conn, Session};
use super::EtcdStore;
use crate::store::{Lock, StoreError};

/// How long a release may take at most (it is only a courtesy: the lease expires anyway).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

impl EtcdStore {
    pub(super) async fn take_lock(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<Lock>, StoreError> {
        let leases = LeaseClient::new(self.conn.clone());
        let ttl = ttl.max(Duration::from_secs(3));
        let granted = retrying(self.budget, &self.session, |_| {
            let mut leases = leases.clone();
            async move {
                leases
                    .lease_grant(LeaseGrantRequest {
                        ttl: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
                        id: 0,
                    })
                    .await
            }
        })
        .await?
        .into_inner();
        let id = granted.id;
        let key = self.full(format!("lock/{name}").as_bytes());
        let free = Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            key: key.clone(),
            target_union: Some(compare::TargetUnion::CreateRevision(0)),
            ..Default::default()
        };
        let take = RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key,
                value: holder(),
                lease: id,
                ..Default::default()
            })),
        };
        let taken = self
            .txn(TxnRequest {
                compare: vec![free],
                success: vec![take],
                failure: vec![],
            })
            .await;
        // Not taken (held elsewhere, or, after a lost answer, maybe by this very lease): give the
        // lease back, which also drops the key if it was ours after all.
        match taken {
            Ok(reply) if reply.succeeded => {}
            other => {
                revoke(leases, id).await;
                return other.map(|_| None);
            }
        }
        let (keeper, held) = watch::channel(true);
        let renewing = tokio::spawn(keep(leases.clone(), self.session.clone(), id, ttl, keeper));
        Ok(Some(Lock::kept(held, async move {
            renewing.abort();
            revoke(leases, id).await;
        })))
    }
}

/// Who holds the lock, for an operator looking at the key: host and process id.
fn holder() -> Vec<u8> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{} pid {}", host.trim(), std::process::id()).into_bytes()
}

/// Renews the lease every third of its TTL; reports the lock lost (and stops) when etcd says the
/// lease is gone, or when no renewal was confirmed for two thirds of the TTL.
async fn keep(
    leases: LeaseClient<Conn>,
    session: Session,
    id: i64,
    ttl: Duration,
    keeper: watch::Sender<bool>,
) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        match renew(leases.clone(), &session, id, ttl / 3).await {
            Ok(left) if left > 0 => renewed = Instant::now(),
            Ok(_) => {
                tracing::warn!(lease = id, "etcd lock lost: its lease expired");
                break;
            }
            Err(reason) if renewed.elapsed() >= ttl * 2 / 3 => {
                tracing::warn!(lease = id, %reason, "etcd lock given up: its lease could not be renewed in time");
                break;
            }
            Err(reason) => tracing::debug!(lease = id, %reason, "renewing the lock's lease failed"),
        }
    }
    let _ = keeper.send(false);
}

/// One keep-alive round trip: the lease's TTL left (0 or less: expired).
async fn renew(
    mut leases: LeaseClient<Conn>,
    session: &Session,
    id: i64,
    within: Duration,
) -> Result<i64, String> {
    let round = async {
        let request = tokio_stream::once(LeaseKeepAliveRequest { id });
        let mut replies = leases.lease_keep_alive(request).await?.into_inner();
        Ok::<_, tonic::Status>(replies.message().await?.map_or(0, |r| r.ttl))
    };
    match tokio::time::timeout(within, round).await {
        Ok(Ok(left)) => Ok(left),
        Ok(Err(status)) => {
            session.saw(&status);
            Err(status.message().to_owned())
        }
        Err(_) => Err(format!("no answer within {} ms", within.as_millis())),
    }
}

async fn revoke(mut leases: LeaseClient<Conn>, id: i64) {
    let revoked = tokio::time::timeout(
        RELEASE_TIMEOUT,
        leases.lease_revoke(LeaseRevokeRequest { id }),
    )
    .await;
    if !matches!(revoked, Ok(Ok(_))) {
        tracing::debug!(
            lease = id,
            "revoking the lock's lease failed; it expires by itself"
        );
    }
}
