//! The watch-fed cache of `etcd.read = "cached"`: a copy of the prefix's sealed values (never
//! plaintext: etcd never holds any) in this instance's memory, for Resolve.
//!
//! How it stays coherent:
//! - **Load, then watch.** A Range of the whole prefix at one revision R (paged, pinned to R),
//!   then a Watch from R+1: etcd sends every later change in revision order, so the copy is
//!   etcd's state at `applied`, the revision of the last change applied.
//! - **Confirmed, not assumed.** Every quarter of the staleness bound the follower asks etcd
//!   with a linearizable count of the prefix, answered at etcd's revision X. X equal to
//!   `applied` and the same count as the copy: nothing was written since, the copy is etcd's
//!   state. Else the confirmation waits until the watch has applied a change at or after X, and
//!   the next check, if still waiting, asks for the keys written after `applied` (etcd's
//!   revision also moves for keys outside the prefix): none, and the same count, and the copy is
//!   etcd's state at that check's revision (a write after `applied` would show; a delete would
//!   lower the count). Answers are
//!   served only while the last confirmation is younger than the bound, counted from the moment
//!   it was *asked*: so a cached read reflects every write acknowledged by any instance at least
//!   `etcd.cache_staleness_ms` before it.
//! - **Own writes at once.** A write this instance made is never hidden: until the watch has
//!   applied its revision, reads go to etcd.
//! - **Resync.** A compacted or cancelled watch, a broken stream, or confirmations that stop
//!   coming (the watch is stuck) drop the copy to not-fresh (reads go to etcd) and reload it.
//!
//! Not fresh, every read is a linearizable Range as without the cache: the cache can make a
//! Resolve faster, never wronger than the bound.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::pb::etcdserverpb::{
    kv_client::KvClient, watch_client::WatchClient, watch_request, RangeRequest,
    WatchCreateRequest, WatchRequest,
};
use super::pb::mvccpb::event::EventType;
use super::prefix_end;
use super::session::{Conn, Session};
use crate::store::Stored;

/// Unconfirmed checks the follower waits out before it reloads the copy.
const MAX_PENDING: usize = 8;
/// One page of the load.
const PAGE: i64 = 1000;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// At most this long between a reachable etcd and the copy reloading.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(super) struct Cache {
    state: RwLock<State>,
    /// The header revision of this instance's latest acknowledged write.
    own: AtomicI64,
    staleness: Duration,
}

#[derive(Default)]
struct State {
    /// Full etcd keys (prefix included) to their values and `mod_revision`s.
    entries: HashMap<Vec<u8>, Stored>,
    /// Every change up to this revision is applied.
    applied: i64,
    /// Answers are served until then.
    fresh_until: Option<Instant>,
}

impl Cache {
    pub(super) fn new(staleness: Duration) -> Arc<Self> {
        Arc::new(Self {
            state: RwLock::default(),
            own: AtomicI64::new(0),
            staleness,
        })
    }

    /// The value under the full key `key` (`Some(None)`: not there), or `None` when the copy is
    /// not fresh enough to answer: ask etcd.
    pub(super) fn get(&self, key: &[u8]) -> Option<Option<Stored>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let fresh = state.fresh_until.is_some_and(|t| Instant::now() < t);
        if !fresh || state.applied < self.own.load(Ordering::Acquire) {
            return None;
        }
        Some(state.entries.get(key).cloned())
    }

    /// This instance wrote at `revision`: hide nothing older from its own reads.
    pub(super) fn wrote(&self, revision: i64) {
        self.own.fetch_max(revision, Ordering::AcqRel);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn stale(&self) {
        self.write().fresh_until = None;
    }
}

/// Keeps `cache` following the keys under `prefix`, forever (until aborted).
pub(super) async fn follow(conn: Conn, session: Session, prefix: Vec<u8>, cache: Arc<Cache>) {
    let (kv, watch) = (KvClient::new(conn.clone()), WatchClient::new(conn));
    let mut backoff = FIRST_BACKOFF;
    let mut logged = false;
    loop {
        let (reason, loaded) =
            follow_once(kv.clone(), watch.clone(), &session, &prefix, &cache).await;
        cache.stale();
        // A follower that had loaded and broke starts again quickly (and says why); one that
        // cannot load backs off, quietly after the first time.
        if loaded {
            backoff = FIRST_BACKOFF;
            logged = false;
        }
        if !logged {
            tracing::warn!(%reason, "etcd read cache: reloading (reads go to etcd meanwhile)");
            logged = true;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Loads the copy and follows the watch until something breaks; returns why, and whether the
/// copy had been loaded.
async fn follow_once(
    mut kv: KvClient<Conn>,
    watch: WatchClient<Conn>,
    session: &Session,
    prefix: &[u8],
    cache: &Cache,
) -> (String, bool) {
    let end = prefix_end(prefix);
    match load(&mut kv, prefix, &end, cache).await {
        Ok(revision) => (
            watch_from(kv, watch, prefix, &end, revision, cache).await,
            true,
        ),
        Err(status) => {
            // A refused token (after etcd restarted, say) is renewed before the next load.
            session.saw(&status);
            (format!("loading the prefix: {}", status.message()), false)
        }
    }
}

/// Follows the watch from `revision + 1`, confirming the copy, until something breaks; why.
async fn watch_from(
    mut kv: KvClient<Conn>,
    mut watch: WatchClient<Conn>,
    prefix: &[u8],
    end: &[u8],
    revision: i64,
    cache: &Cache,
) -> String {
    let (requests, stream) = mpsc::channel(1);
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: prefix.to_vec(),
                range_end: end.to_vec(),
                start_revision: revision + 1,
                ..Default::default()
            },
        )),
    };
    if requests.send(create).await.is_err() {
        return "watch request channel closed".into();
    }
    let mut request = tonic::Request::new(ReceiverStream::new(stream));
    // As etcd's own client: a member that loses its leader cancels the watch instead of
    // leaving it silent.
    request.metadata_mut().insert(
        "hasleader",
        tonic::metadata::MetadataValue::from_static("true"),
    );
    let mut events = match watch.watch(request).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return format!("opening the watch: {}", status.message()),
    };
    let mut tick = tokio::time::interval(cache.staleness / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Checks not yet confirmed: when they were asked, and etcd's revision then.
    let mut pending: VecDeque<(Instant, i64)> = VecDeque::new();
    loop {
        tokio::select! {
            message = events.message() => {
                let reply = match message {
                    Ok(Some(reply)) => reply,
                    Ok(None) => return "the watch stream ended".into(),
                    Err(status) => return format!("the watch failed: {}", status.message()),
                };
                if reply.compact_revision > 0 {
                    return format!("etcd compacted past the watch (revision {})", reply.compact_revision);
                }
                if reply.canceled {
                    return format!("etcd cancelled the watch: {}", reply.cancel_reason);
                }
                apply(cache, reply.events, &mut pending);
            }
            _ = tick.tick() => {
                let asked = Instant::now();
                match check(&mut kv, prefix, end, cache, !pending.is_empty()).await {
                    Ok(Check::Equal) => {
                        pending.clear();
                        cache.write().fresh_until = Some(asked + cache.staleness);
                    }
                    Ok(Check::Behind(at)) => {
                        pending.push_back((asked, at));
                        if pending.len() > MAX_PENDING {
                            return "the watch fell behind etcd".into();
                        }
                    }
                    // etcd unreachable: no confirmation, so the copy goes stale by itself.
                    Err(_) => {}
                }
            }
        }
    }
}

/// Replaces the copy with the prefix as of one revision, which it returns.
async fn load(
    kv: &mut KvClient<Conn>,
    prefix: &[u8],
    end: &[u8],
    cache: &Cache,
) -> Result<i64, tonic::Status> {
    let mut entries = HashMap::new();
    let mut start = prefix.to_vec();
    let mut revision = 0;
    loop {
        let reply = kv
            .range(RangeRequest {
                key: start,
                range_end: end.to_vec(),
                limit: PAGE,
                revision,
                ..Default::default()
            })
            .await?
            .into_inner();
        if revision == 0 {
            revision = reply.header.map_or(0, |h| h.revision);
        }
        let more = reply.more;
        let mut last = None;
        for kv in reply.kvs {
            last = Some(kv.key.clone());
            entries.insert(kv.key, Stored::new(kv.value, kv.mod_revision));
        }
        match (more, last) {
            (true, Some(last)) => start = [last.as_slice(), &[0]].concat(),
            _ => break,
        }
    }
    let mut state = cache.write();
    *state = State {
        entries,
        applied: revision,
        fresh_until: None,
    };
    Ok(revision)
}

/// Applies a watch reply's changes, and confirms the checks they catch up with. Changes at or
/// before `applied` are in the copy already: a check found it equal to etcd at a revision the
/// watch had not reached, and what was still in flight up to there nets to nothing (a key
/// created and deleted again), so applying it would only show a deleted key for a moment.
fn apply(
    cache: &Cache,
    events: Vec<super::pb::mvccpb::Event>,
    pending: &mut VecDeque<(Instant, i64)>,
) {
    let mut state = cache.write();
    // etcd sends all of one revision's changes in one reply.
    let floor = state.applied;
    for event in events {
        let Some(kv) = event.kv else { continue };
        if kv.mod_revision <= floor {
            continue;
        }
        state.applied = state.applied.max(kv.mod_revision);
        if event.r#type == EventType::Delete as i32 {
            state.entries.remove(&kv.key);
        } else {
            state
                .entries
                .insert(kv.key, Stored::new(kv.value, kv.mod_revision));
        }
    }
    let mut confirmed = None;
    while let Some(&(asked, at)) = pending.front() {
        if at > state.applied {
            break;
        }
        confirmed = Some(asked);
        pending.pop_front();
    }
    if let Some(asked) = confirmed {
        state.fresh_until = Some(asked + cache.staleness);
    }
}

enum Check {
    /// The copy is etcd's state now.
    Equal,
    /// etcd holds changes the watch has not brought yet, all at or before this revision.
    Behind(i64),
}

/// Asks etcd, linearizably, whether the copy is its current state (see the module's doc).
/// `thorough`: the last check could not tell, so look at the keys' revisions, not only at
/// etcd's revision (which also moves for keys outside the prefix).
async fn check(
    kv: &mut KvClient<Conn>,
    prefix: &[u8],
    end: &[u8],
    cache: &Cache,
    thorough: bool,
) -> Result<Check, tonic::Status> {
    let (applied, held) = {
        let state = cache.state.read().unwrap_or_else(|e| e.into_inner());
        (state.applied, state.entries.len())
    };
    let request = if thorough {
        // Every key written after `applied` (at most one is returned; etcd reads them all to
        // filter, and its count is of the whole prefix, unfiltered).
        RangeRequest {
            key: prefix.to_vec(),
            range_end: end.to_vec(),
            keys_only: true,
            min_mod_revision: applied + 1,
            limit: 1,
            ..Default::default()
        }
    } else {
        RangeRequest {
            key: prefix.to_vec(),
            range_end: end.to_vec(),
            count_only: true,
            ..Default::default()
        }
    };
    let reply = kv.range(request).await?.into_inner();
    let at = reply.header.map_or(0, |h| h.revision);
    let same_count = usize::try_from(reply.count) == Ok(held);
    let equal = same_count
        && if thorough {
            reply.kvs.is_empty()
        } else {
            at == applied
        };
    if !equal {
        return Ok(Check::Behind(at));
    }
    // The copy is etcd's state at `at`: changes still in flight up to it net to nothing
    // (`apply` skips them).
    let mut state = cache.write();
    state.applied = state.applied.max(at);
    Ok(Check::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::etcd::pb::mvccpb::{Event, KeyValue};

    fn event(kind: EventType, key: &str, value: &str, revision: i64) -> Event {
        Event {
            r#type: kind as i32,
            kv: Some(KeyValue {
                key: key.into(),
                value: value.into(),
                mod_revision: revision,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn fresh_at(cache: &Cache, applied: i64) {
        let mut state = cache.write();
        state.applied = applied;
        state.fresh_until = Some(Instant::now() + Duration::from_secs(60));
    }

    fn value(cache: &Cache, key: &str) -> Option<Option<Vec<u8>>> {
        cache.get(key.as_bytes()).map(|v| v.map(Stored::into_value))
    }

    #[test]
    fn answers_only_while_fresh_and_never_before_its_own_writes() {
        let cache = Cache::new(Duration::from_secs(1));
        assert_eq!(value(&cache, "k"), None, "not loaded: ask etcd");
        fresh_at(&cache, 5);
        assert_eq!(value(&cache, "k"), Some(None));
        // This instance wrote at 7: until the watch brings 7, reads go to etcd.
        cache.wrote(7);
        assert_eq!(value(&cache, "k"), None);
        let mut pending = VecDeque::new();
        apply(
            &cache,
            vec![event(EventType::Put, "k", "v", 7)],
            &mut pending,
        );
        assert_eq!(value(&cache, "k"), Some(Some(b"v".to_vec())));
        apply(
            &cache,
            vec![event(EventType::Delete, "k", "", 8)],
            &mut pending,
        );
        assert_eq!(value(&cache, "k"), Some(None));
        cache.stale();
        assert_eq!(value(&cache, "k"), None);
    }

    #[test]
    fn a_check_waiting_for_the_watch_is_confirmed_by_the_change_that_reaches_it() {
        let cache = Cache::new(Duration::from_secs(1));
        cache.write().applied = 5;
        let asked = Instant::now();
        let mut pending = VecDeque::from([(asked, 9)]);
        apply(
            &cache,
            vec![event(EventType::Put, "a", "1", 8)],
            &mut pending,
        );
        assert_eq!(
            value(&cache, "a"),
            None,
            "revision 9 not reached: not fresh"
        );
        assert_eq!(pending.len(), 1);
        apply(
            &cache,
            vec![event(EventType::Put, "b", "2", 9)],
            &mut pending,
        );
        assert!(pending.is_empty());
        assert_eq!(
            cache.write().fresh_until,
            Some(asked + Duration::from_secs(1))
        );
        assert_eq!(value(&cache, "a"), Some(Some(b"1".to_vec())));
    }

    #[test]
    fn changes_a_check_already_covered_are_not_applied_again() {
        let cache = Cache::new(Duration::from_secs(1));
        // A check found the copy equal to etcd at 12 while a create (10) and its delete (11)
        // were still on their way: applying the create would show a deleted key.
        fresh_at(&cache, 12);
        let mut pending = VecDeque::new();
        apply(
            &cache,
            vec![event(EventType::Put, "gone", "x", 10)],
            &mut pending,
        );
        assert_eq!(value(&cache, "gone"), Some(None));
        apply(
            &cache,
            vec![event(EventType::Delete, "gone", "", 11)],
            &mut pending,
        );
        apply(
            &cache,
            vec![event(EventType::Put, "new", "y", 13)],
            &mut pending,
        );
        assert_eq!(value(&cache, "new"), Some(Some(b"y".to_vec())));
    }
}
