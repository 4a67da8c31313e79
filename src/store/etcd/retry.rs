//! Retrying etcd calls across a leader change or a member down, within the caller's deadline.
//!
//! etcd answers UNAVAILABLE while it has no leader ("etcdserver: no leader", "leader changed",
//! "request timed out"), and a member that is down refuses the connection; the channel balances
//! over every endpoint, so the next attempt usually reaches a live member. An attempt that fails
//! this way may still have been applied: the write operations (`super`) check for their own
//! write when a retried compare fails.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::{Code, Status};

use super::session::Session;
use crate::store::StoreError;

/// Time kept back from the caller's deadline to send the answer in.
const ANSWER_MARGIN: Duration = Duration::from_millis(50);
/// How long one attempt may take before it is abandoned and retried. A member that lost its
/// leader holds a request until its own timeout (seconds); the next attempt, after the election
/// or on another member, usually answers at once.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Runs `attempt(n)` (n = 0, 1, ...) until it answers, fails for good, or the time is up: the
/// current RPC's deadline less a margin, or `budget` from now, whichever comes first. Out of
/// time, the error is `StoreError::Unavailable` naming the last failure. Every failure is shown
/// to `session` (a refused login token is renewed before the next attempt).
pub(super) async fn retrying<T, F, Fut>(
    budget: Duration,
    session: &Session,
    mut attempt: F,
) -> Result<T, StoreError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let started = Instant::now();
    let end = deadline_within(budget);
    let mut backoff = FIRST_BACKOFF;
    let mut n = 0;
    loop {
        let left = end
            .saturating_duration_since(Instant::now())
            .min(ATTEMPT_TIMEOUT);
        let last = match tokio::time::timeout(left, attempt(n)).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(status)) => {
                session.saw(&status);
                if !retryable(&status) {
                    return Err(StoreError::Backend(describe(&status)));
                }
                describe(&status)
            }
            Err(_) => format!("no answer within {} ms", left.as_millis()),
        };
        n += 1;
        if Instant::now() + backoff >= end {
            return Err(StoreError::Unavailable(format!(
                "{last} (gave up after {n} attempt{} in {} ms)",
                if n == 1 { "" } else { "s" },
                started.elapsed().as_millis()
            )));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// When a call that starts now must have ended: the current RPC's deadline less a margin to
/// answer in, or `budget` from now, whichever comes first.
pub(super) fn deadline_within(budget: Duration) -> Instant {
    let end = Instant::now() + budget;
    match crate::deadline::current() {
        Some(rpc) => end.min(rpc.checked_sub(ANSWER_MARGIN).unwrap_or(rpc)),
        None => end,
    }
}

/// The time left until the latest of `ends`: a batch is tried for as long as one of its
/// callers still waits.
pub(super) fn until_latest(ends: impl Iterator<Item = Instant>) -> Duration {
    ends.max().map_or(Duration::ZERO, |latest| {
        latest.saturating_duration_since(Instant::now())
    })
}

/// Failures that a later attempt, perhaps on another member, can get past: etcd's own
/// "try again" answers, and a connection that broke (tonic reports a reset mid-call as UNKNOWN
/// with the transport error as its source), and a login token etcd no longer knows.
fn retryable(status: &Status) -> bool {
    let broken = || {
        std::error::Error::source(status)
            .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some())
    };
    if super::session::is_invalid_token(status) {
        // The session renews it (`Session::saw`); the next attempt carries the new one.
        return true;
    }
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => true,
        Code::Unknown => broken(),
        _ => false,
    }
}

fn describe(status: &Status) -> String {
    format!("etcd: {}: {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_passing_failure_is_retried_and_a_lasting_one_ends_unavailable() {
        let calls = AtomicU32::new(0);
        let answer = retrying(Duration::from_secs(5), &Session::new(None), |n| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                if n < 2 {
                    Err(Status::unavailable("etcdserver: leader changed"))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!((answer, calls.load(Ordering::Relaxed)), (2, 3));

        let started = Instant::now();
        let err = retrying(Duration::from_millis(300), &Session::new(None), |_| async {
            Err::<(), _>(Status::unavailable("etcdserver: no leader"))
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("no leader") && m.contains("gave up after")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried() {
        let calls = AtomicU32::new(0);
        let err = retrying(Duration::from_secs(5), &Session::new(None), |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>(Status::permission_denied("etcdserver: permission denied")) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
    }

    #[tokio::test]
    async fn the_rpc_deadline_cuts_the_budget_short() {
        let started = Instant::now();
        let rpc_end = started + Duration::from_millis(400);
        let err = crate::deadline::within(
            rpc_end,
            retrying(Duration::from_secs(30), &Session::new(None), |_| async {
                Err::<(), _>(Status::unavailable("etcdserver: no leader"))
            }),
        )
        .await
        .unwrap_err();
        assert!(
            Instant::now() < rpc_end,
            "answered after the caller's deadline"
        );
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    }
}
