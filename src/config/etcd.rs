//! The etcd cluster (`[etcd]`), when `store.backend = "etcd"`: where it is, how long to wait for
//! it, and how Resolve reads it.

use std::path::PathBuf;
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
    /// `CREDVAULT_ETCD_CA_FILE`: the CA that signed etcd's certificates; https:// endpoints need it.
    pub ca_file: Option<PathBuf>,
    /// `CREDVAULT_ETCD_CERT_FILE` and `CREDVAULT_ETCD_KEY_FILE`: a client certificate, for an
    /// etcd started with `--client-cert-auth`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// `CREDVAULT_ETCD_USERNAME`: etcd's auth, with the password in `password_file`; "" is none.
    pub username: String,
    /// `CREDVAULT_ETCD_PASSWORD_FILE`: the file holding the password (its first line). The
    /// password itself is never a setting, so it is never in a config file or the environment.
    pub password_file: Option<PathBuf>,
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
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: String::new(),
            password_file: None,
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
        let https = self
            .endpoints
            .iter()
            .filter(|e| e.starts_with("https://"))
            .count();
        if https > 0 && https < self.endpoints.len() {
            return Err(err(
                "etcd.endpoints",
                "mixes http:// and https://: one cluster speaks one of them".into(),
            ));
        }
        if https > 0 && self.ca_file.is_none() {
            return Err(err(
                "etcd.ca_file",
                "https:// etcd endpoints need the CA that signed etcd's certificate".into(),
            ));
        }
        let tls_files = self.ca_file.is_some() || self.cert_file.is_some();
        if https == 0 && tls_files {
            return Err(err(
                "etcd.endpoints",
                "etcd TLS files are set but the endpoints are http://: use https:// URLs".into(),
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(err(
                "etcd.cert_file",
                "etcd.cert_file and etcd.key_file go together: set both, or neither".into(),
            ));
        }
        if self.username.is_empty() != self.password_file.is_none() {
            return Err(err(
                "etcd.username",
                "etcd.username and etcd.password_file go together: set both, or neither".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(c: EtcdConfig) -> String {
        let e = c.check().unwrap_err();
        format!("{}: {}", e.place, e.reason)
    }

    #[test]
    fn tls_and_login_settings_go_together() {
        let https = |e: &[&str]| EtcdConfig {
            endpoints: e.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert!(refused(https(&["https://a:2379", "http://b:2379"])).contains("mixes"));
        assert!(refused(https(&["https://a:2379"])).starts_with("etcd.ca_file"));
        let with_ca = EtcdConfig {
            ca_file: Some("ca.pem".into()),
            ..https(&["https://a:2379"])
        };
        assert!(with_ca.check().is_ok());
        let http_with_ca = EtcdConfig {
            ca_file: Some("ca.pem".into()),
            ..Default::default()
        };
        assert!(refused(http_with_ca).contains("use https://"));
        let half_pair = EtcdConfig {
            cert_file: Some("c.pem".into()),
            ..with_ca.clone()
        };
        assert!(refused(half_pair).starts_with("etcd.cert_file"));
        let user_only = EtcdConfig {
            username: "credvault".into(),
            ..Default::default()
        };
        assert!(refused(user_only).starts_with("etcd.username"));
        let login = EtcdConfig {
            username: "credvault".into(),
            password_file: Some("pw".into()),
            ..Default::default()
        };
        assert!(login.check().is_ok());
    }
}
