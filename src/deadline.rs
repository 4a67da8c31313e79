//! The deadline of the RPC being served: the sooner of the server's `limits.rpc_timeout` and
//! the caller's own (`grpc-timeout`). The transport's guard sets it around every handler; layers
//! below that retry (the etcd store, across a leader change) stop in time to answer UNAVAILABLE
//! before the caller gives up, instead of working for a caller that is gone.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the current RPC's.
pub async fn within<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The current RPC's deadline; `None` outside an RPC (background work, start-up).
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// A `grpc-timeout` header's value: up to 8 digits and a unit (H, M, S, m, u, n), per the gRPC
/// over HTTP/2 spec. `None` for anything else (the header is then ignored, as tonic does).
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_by_the_spec() {
        assert_eq!(
            parse_grpc_timeout(b"250m"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_grpc_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [&b""[..], b"m", b"123456789m", b"12x", b"-1S", b"1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_deadline_is_seen_inside_its_scope_only() {
        assert_eq!(current(), None);
        let at = Instant::now() + Duration::from_secs(1);
        assert_eq!(within(at, async { current() }).await, Some(at));
        assert_eq!(current(), None);
    }
}
