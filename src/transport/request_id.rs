//! Request ids: the caller's `x-request-id` when it is a plausible id, otherwise one made here.
//! Every log line of a request carries it, and the reply echoes it, so a caller can quote it.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderValue};

pub const HEADER: &str = "x-request-id";

/// The request's id, as a request extension (for the audit log).
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("")
    }
}

/// Makes ids unique across instances and restarts: a random prefix per process, then a counter
/// (no system call, no lock per request).
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        let mut bytes = [0u8; 4];
        // Without the OS generator the ids are still unique within this process.
        let _ = getrandom::fill(&mut bytes);
        Self {
            prefix: u32::from_be_bytes(bytes),
            next: AtomicU64::new(1),
        }
    }

    /// The id for a request with these headers.
    pub fn of(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(given) = headers.get(HEADER).filter(|v| plausible(v.as_bytes())) {
            return given.clone();
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:08x}-{n:x}", self.prefix);
        HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("unknown"))
    }
}

/// 1-128 characters of `[A-Za-z0-9._:/-]`: anything else (a log-line forgery, a megabyte) is
/// replaced by an id of our own.
fn plausible(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plausible_caller_id_is_kept_and_others_are_replaced() {
        let ids = RequestIds::new();
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("req-42/a.b:c"));
        assert_eq!(ids.of(&h), "req-42/a.b:c");
        for bad in ["", "has space", "new\tline", &"x".repeat(129)] {
            let mut h = HeaderMap::new();
            h.insert(HEADER, HeaderValue::from_str(bad).unwrap());
            assert_ne!(ids.of(&h).as_bytes(), bad.as_bytes());
        }
        let (a, b) = (ids.of(&HeaderMap::new()), ids.of(&HeaderMap::new()));
        assert_ne!(a, b);
        assert!(plausible(a.as_bytes()));
    }
}
