//! Whether etcd answers, asked every `PROBE_EVERY`: the store's health (NOT_SERVING while the
//! cluster cannot be reached, SERVING again by itself once it can).

use std::time::Duration;

use super::pb::etcdserverpb::{kv_client::KvClient, RangeRequest};
use super::session::{Conn, Session};
use crate::store::Health;
use tokio::sync::watch;

/// The question: a linearizable count of the prefix key (it needs a leader and a quorum, and
/// reads nothing).
pub(super) fn request(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        count_only: true,
        ..Default::default()
    }
}

/// How often the store asks etcd whether it is there.
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Asks etcd, forever, whether it answers a linearizable read (which needs a leader and a
/// quorum); health follows.
pub(super) async fn probe(
    mut kv: KvClient<Conn>,
    session: Session,
    prefix: Vec<u8>,
    health: watch::Sender<Health>,
) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let asked = kv.range(request(&prefix));
        let now = match tokio::time::timeout(PROBE_EVERY * 4, asked).await {
            Ok(Ok(_)) => Health::Serving,
            Ok(Err(status)) => {
                session.saw(&status);
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
