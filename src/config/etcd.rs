//! The etcd cluster (`[etcd]`), when `store.backend = "etcd"`: where it is, how long to wait for
//! it, and how Resolve reads it.

use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `CREDVAULT_ETCD_ENDPOINTS`: comma-separated client URLs, default `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// `CREDVAULT_ETCD_PREFIX`: every key under it, default `/credvault/`.
    pub prefix: String,
    /// `CREDVAULT_ETCD_DIAL_TIMEOUT_MS`, default 5 s.
    pub dial_timeout: Duration,
    /// `CREDVAULT_ETCD_REQUEST_TIMEOUT_MS`, default 10 s.
    pub request_timeout: Duration,
    /// `CREDVAULT_ETCD_READ`: how Resolve reads, default linearizable.
    pub read: EtcdRead,
    /// `CREDVAULT_ETCD_CACHE_STALENESS_MS`: with `read = "cached"`, how old a cached answer may
    /// be at most, default 1 s.
    pub cache_staleness: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/credvault/".into(),
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            read: EtcdRead::Linearizable,
            cache_staleness: Duration::from_secs(1),
        }
    }
}

impl EtcdConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let err = |place: &str, reason: String| ConfigError {
            place: place.into(),
            reason,
        };
        if self.prefix.is_empty() {
            return Err(err(
                "etcd.prefix",
                "must not be empty: credvault keeps its keys under a prefix of their own".into(),
            ));
        }
        if let Some(bad) = self.endpoints.iter().find(|e| {
            !(e.starts_with("http://") || e.starts_with("https://")) || url::Url::parse(e).is_err()
        }) {
            return Err(err(
                "etcd.endpoints",
                format!("`{bad}` is not an http:// or https:// URL"),
            ));
        }
        if self.cache_staleness < MIN_STALENESS {
            return Err(err(
                "etcd.cache_staleness_ms",
                format!(
                    "must be at least {} ms: the cache confirms itself with etcd 4 times per bound",
                    MIN_STALENESS.as_millis()
                ),
            ));
        }
        Ok(())
    }
}

/// The smallest staleness bound: below it the cache's confirmations would be a load of their own.
const MIN_STALENESS: Duration = Duration::from_millis(40);

/// How Resolve reads etcd (`etcd.read`). Every other read, and every read before a write, is
/// linearizable either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EtcdRead {
    /// A linearizable Range per Resolve: a write acknowledged anywhere is seen at once.
    #[default]
    Linearizable,
    /// From a watch-fed copy of the sealed records in this instance's memory, no older than
    /// `etcd.cache_staleness_ms` (and never older than this instance's own writes).
    Cached,
}

impl EtcdRead {
    pub fn as_str(self) -> &'static str {
        match self {
            EtcdRead::Linearizable => "linearizable",
            EtcdRead::Cached => "cached",
        }
    }
}

impl FromStr for EtcdRead {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linearizable" => Ok(EtcdRead::Linearizable),
            "cached" => Ok(EtcdRead::Cached),
            _ => Err(format!(
                "`{s}` is not an etcd read mode (linearizable or cached)"
            )),
        }
    }
}
