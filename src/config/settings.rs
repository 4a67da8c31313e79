//! Every setting, once: its place in the TOML file (`group.key`), its environment variable, and
//! how its text becomes a field of [`Config`]. The file, the environment and the flags all go
//! through this one table, so they cannot disagree on a name, a unit or a rule.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::{Config, LogFormat};

pub(super) struct Setting {
    /// `group.key`, as in the file: `limits.max_connections`.
    pub name: &'static str,
    pub env: &'static str,
    pub set: fn(&mut Config, &str) -> Result<(), String>,
    /// The value as TOML would write it (`config check`).
    pub show: fn(&Config) -> String,
}

impl Setting {
    pub fn group(&self) -> &'static str {
        self.name.split_once('.').map_or(self.name, |(g, _)| g)
    }

    pub fn key(&self) -> &'static str {
        self.name.split_once('.').map_or(self.name, |(_, k)| k)
    }
}

/// How one kind of value is read and written.
trait Kind {
    type T;
    fn parse(text: &str) -> Result<Self::T, String>;
    fn show(value: &Self::T) -> String;
}

/// A TOML string.
struct Text;
impl Kind for Text {
    type T = String;
    fn parse(text: &str) -> Result<String, String> {
        Ok(text.to_owned())
    }
    fn show(value: &String) -> String {
        quote(value)
    }
}

struct Path;
impl Kind for Path {
    type T = PathBuf;
    fn parse(text: &str) -> Result<PathBuf, String> {
        Ok(text.into())
    }
    fn show(value: &PathBuf) -> String {
        quote(&value.display().to_string())
    }
}

/// A path that has a computed default when unset (or set to "").
struct OptionalPath;
impl Kind for OptionalPath {
    type T = Option<PathBuf>;
    fn parse(text: &str) -> Result<Option<PathBuf>, String> {
        Ok((!text.is_empty()).then(|| text.into()))
    }
    fn show(value: &Option<PathBuf>) -> String {
        value.as_ref().map_or_else(|| "\"\"".into(), Path::show)
    }
}

struct Addr;
impl Kind for Addr {
    type T = SocketAddr;
    fn parse(text: &str) -> Result<SocketAddr, String> {
        text.parse()
            .map_err(|e| format!("{e} (expected IP:PORT, e.g. 127.0.0.1:50051)"))
    }
    fn show(value: &SocketAddr) -> String {
        quote(&value.to_string())
    }
}

/// An address that may be unset ("" is off).
struct OptionalAddr;
impl Kind for OptionalAddr {
    type T = Option<SocketAddr>;
    fn parse(text: &str) -> Result<Option<SocketAddr>, String> {
        match text {
            "" => Ok(None),
            _ => Addr::parse(text).map(Some),
        }
    }
    fn show(value: &Option<SocketAddr>) -> String {
        value.as_ref().map_or_else(|| "\"\"".into(), Addr::show)
    }
}

/// A number, 0 allowed.
struct Num<N>(PhantomData<N>);
impl<N: FromStr + ToString> Kind for Num<N>
where
    N::Err: std::fmt::Display,
{
    type T = N;
    fn parse(text: &str) -> Result<N, String> {
        text.parse().map_err(|e| format!("{e}"))
    }
    fn show(value: &N) -> String {
        value.to_string()
    }
}

/// At least 1: a zero here would make the server refuse everything.
struct Positive<N>(PhantomData<N>);
impl<N: FromStr + ToString + PartialOrd + From<u8>> Kind for Positive<N>
where
    N::Err: std::fmt::Display,
{
    type T = N;
    fn parse(text: &str) -> Result<N, String> {
        let n = Num::<N>::parse(text)?;
        if n < N::from(1) {
            return Err("must be at least 1".into());
        }
        Ok(n)
    }
    fn show(value: &N) -> String {
        value.to_string()
    }
}

/// Milliseconds (the key ends in `_ms`).
struct Millis;
impl Kind for Millis {
    type T = Duration;
    fn parse(text: &str) -> Result<Duration, String> {
        Num::<u64>::parse(text).map(Duration::from_millis)
    }
    fn show(value: &Duration) -> String {
        value.as_millis().to_string()
    }
}

/// A period such as "6h" or "90m" (humantime), at least a second; "off" or "" is none.
struct Period;
impl Kind for Period {
    type T = Option<Duration>;
    fn parse(text: &str) -> Result<Option<Duration>, String> {
        if text.is_empty() || text == "off" {
            return Ok(None);
        }
        let d = humantime::parse_duration(text).map_err(|e| {
            format!("`{text}`: {e} (expected a period such as \"6h\" or \"90m\", or \"off\")")
        })?;
        if d < Duration::from_secs(1) {
            return Err(format!("`{text}` is shorter than a second"));
        }
        Ok(Some(d))
    }
    fn show(value: &Option<Duration>) -> String {
        value.map_or_else(
            || quote("off"),
            |d| quote(&humantime::format_duration(d).to_string()),
        )
    }
}

/// Mebibytes (the key ends in `_mb`), held as bytes.
struct Mebibytes;
impl Kind for Mebibytes {
    type T = u64;
    fn parse(text: &str) -> Result<u64, String> {
        Num::<u64>::parse(text)?
            .checked_mul(1 << 20)
            .ok_or_else(|| "too large".into())
    }
    fn show(value: &u64) -> String {
        (value >> 20).to_string()
    }
}

struct Bool;
impl Kind for Bool {
    type T = bool;
    fn parse(text: &str) -> Result<bool, String> {
        match text {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("`{text}` is not true or false")),
        }
    }
    fn show(value: &bool) -> String {
        value.to_string()
    }
}

/// One of a few names (`text` | `json`, `required` | `optional`, ...).
struct Choice<T>(PhantomData<T>);
impl<T: FromStr<Err = String> + Named> Kind for Choice<T> {
    type T = T;
    fn parse(text: &str) -> Result<T, String> {
        text.parse()
    }
    fn show(value: &T) -> String {
        quote(value.name())
    }
}

/// A setting's value that is one of a few names.
pub(super) trait Named {
    fn name(&self) -> &'static str;
}

impl Named for LogFormat {
    fn name(&self) -> &'static str {
        self.as_str()
    }
}

impl Named for super::ClientAuth {
    fn name(&self) -> &'static str {
        self.as_str()
    }
}

impl Named for super::Backend {
    fn name(&self) -> &'static str {
        self.as_str()
    }
}

impl Named for super::EtcdRead {
    fn name(&self) -> &'static str {
        self.as_str()
    }
}

/// Comma-separated values (`a,b`), none empty.
struct List;
impl Kind for List {
    type T = Vec<String>;
    fn parse(text: &str) -> Result<Vec<String>, String> {
        let items: Vec<String> = text.split(',').map(|s| s.trim().to_owned()).collect();
        if items.iter().any(String::is_empty) {
            return Err(format!(
                "`{text}` has an empty item (give one or more, comma-separated)"
            ));
        }
        Ok(items)
    }
    fn show(value: &Vec<String>) -> String {
        quote(&value.join(","))
    }
}

impl Named for super::AuditDurability {
    fn name(&self) -> &'static str {
        self.as_str()
    }
}

fn quote(s: &str) -> String {
    // A TOML basic string: the same escapes as JSON for what paths and URLs may hold.
    serde_json::to_string(s).unwrap_or_default()
}

macro_rules! settings {
    ($($name:literal, $env:literal, $kind:ty, |$c:ident| $field:expr;)*) => {
        &[$(Setting {
            name: $name,
            env: $env,
            set: |$c, text| {
                $field = <$kind as Kind>::parse(text.trim())?;
                Ok(())
            },
            show: |$c| <$kind as Kind>::show(&$field),
        },)*]
    };
}

/// In the order `config check` prints them and `examples/credvault.toml` documents them.
pub(super) static SETTINGS: &[Setting] = settings! {
    "server.listen", "CREDVAULT_LISTEN", Addr, |c| c.listen;
    "server.allow_insecure_plaintext", "CREDVAULT_ALLOW_INSECURE_PLAINTEXT", Bool, |c| c.allow_insecure_plaintext;
    "metrics.listen", "CREDVAULT_METRICS_LISTEN", OptionalAddr, |c| c.metrics_listen;
    "tls.cert_file", "CREDVAULT_TLS_CERT_FILE", OptionalPath, |c| c.tls.cert_file;
    "tls.key_file", "CREDVAULT_TLS_KEY_FILE", OptionalPath, |c| c.tls.key_file;
    "tls.client_ca_file", "CREDVAULT_TLS_CLIENT_CA_FILE", OptionalPath, |c| c.tls.client_ca_file;
    "tls.client_auth", "CREDVAULT_TLS_CLIENT_AUTH", Choice<super::ClientAuth>, |c| c.tls.client_auth;
    "store.data_dir", "CREDVAULT_DATA_DIR", Path, |c| c.data_dir;
    "store.master_key_file", "CREDVAULT_MASTER_KEY_FILE", OptionalPath, |c| c.master_key_file;
    "store.cache_mb", "CREDVAULT_CACHE_MB", Mebibytes, |c| c.cache_bytes;
    "store.backend", "CREDVAULT_STORE", Choice<super::Backend>, |c| c.backend;
    "etcd.endpoints", "CREDVAULT_ETCD_ENDPOINTS", List, |c| c.etcd.endpoints;
    "etcd.prefix", "CREDVAULT_ETCD_PREFIX", Text, |c| c.etcd.prefix;
    "etcd.dial_timeout_ms", "CREDVAULT_ETCD_DIAL_TIMEOUT_MS", Millis, |c| c.etcd.dial_timeout;
    "etcd.request_timeout_ms", "CREDVAULT_ETCD_REQUEST_TIMEOUT_MS", Millis, |c| c.etcd.request_timeout;
    "etcd.read", "CREDVAULT_ETCD_READ", Choice<super::EtcdRead>, |c| c.etcd.read;
    "etcd.cache_staleness_ms", "CREDVAULT_ETCD_CACHE_STALENESS_MS", Millis, |c| c.etcd.cache_staleness;
    "etcd.ca_file", "CREDVAULT_ETCD_CA_FILE", OptionalPath, |c| c.etcd.ca_file;
    "etcd.cert_file", "CREDVAULT_ETCD_CERT_FILE", OptionalPath, |c| c.etcd.cert_file;
    "etcd.key_file", "CREDVAULT_ETCD_KEY_FILE", OptionalPath, |c| c.etcd.key_file;
    "etcd.username", "CREDVAULT_ETCD_USERNAME", Text, |c| c.etcd.username;
    "etcd.password_file", "CREDVAULT_ETCD_PASSWORD_FILE", OptionalPath, |c| c.etcd.password_file;
    "twilio.api_base", "CREDVAULT_TWILIO_API_BASE", Text, |c| c.twilio.api_base;
    "twilio.messaging_base", "CREDVAULT_TWILIO_MESSAGING_BASE", Text, |c| c.twilio.messaging_base;
    "twilio.ie1_api_base", "CREDVAULT_TWILIO_IE1_API_BASE", Text, |c| c.twilio.ie1_api_base;
    "twilio.ie1_messaging_base", "CREDVAULT_TWILIO_IE1_MESSAGING_BASE", Text, |c| c.twilio.ie1_messaging_base;
    "twilio.au1_api_base", "CREDVAULT_TWILIO_AU1_API_BASE", Text, |c| c.twilio.au1_api_base;
    "twilio.au1_messaging_base", "CREDVAULT_TWILIO_AU1_MESSAGING_BASE", Text, |c| c.twilio.au1_messaging_base;
    "twilio.connect_timeout_ms", "CREDVAULT_TWILIO_CONNECT_TIMEOUT_MS", Millis, |c| c.twilio.connect_timeout;
    "twilio.timeout_ms", "CREDVAULT_TWILIO_TIMEOUT_MS", Millis, |c| c.twilio.request_timeout;
    "twilio.max_retries", "CREDVAULT_TWILIO_MAX_RETRIES", Num<u32>, |c| c.twilio.max_retries;
    "twilio.max_concurrent", "CREDVAULT_TWILIO_MAX_CONCURRENT", Positive<usize>, |c| c.twilio.max_concurrent;
    "twilio.validate_timeout_ms", "CREDVAULT_VALIDATE_TIMEOUT_MS", Millis, |c| c.twilio.validate_timeout;
    "revalidate.every", "CREDVAULT_REVALIDATE_EVERY", Period, |c| c.revalidate.every;
    "revalidate.requests_per_second", "CREDVAULT_REVALIDATE_REQUESTS_PER_SECOND", Positive<u32>, |c| c.revalidate.requests_per_second;
    "limits.max_request_bytes", "CREDVAULT_MAX_REQUEST_BYTES", Positive<usize>, |c| c.limits.max_request_bytes;
    "limits.max_connections", "CREDVAULT_MAX_CONNECTIONS", Positive<usize>, |c| c.limits.max_connections;
    "limits.max_streams_per_connection", "CREDVAULT_MAX_STREAMS_PER_CONNECTION", Positive<u32>, |c| c.limits.max_streams_per_connection;
    "limits.max_in_flight", "CREDVAULT_MAX_IN_FLIGHT", Positive<usize>, |c| c.limits.max_in_flight;
    "limits.rpc_timeout_ms", "CREDVAULT_RPC_TIMEOUT_MS", Millis, |c| c.limits.rpc_timeout;
    "limits.handshake_timeout_ms", "CREDVAULT_HANDSHAKE_TIMEOUT_MS", Millis, |c| c.limits.handshake_timeout;
    "limits.keepalive_interval_ms", "CREDVAULT_KEEPALIVE_INTERVAL_MS", Millis, |c| c.limits.keepalive_interval;
    "limits.keepalive_timeout_ms", "CREDVAULT_KEEPALIVE_TIMEOUT_MS", Millis, |c| c.limits.keepalive_timeout;
    "limits.shutdown_timeout_ms", "CREDVAULT_SHUTDOWN_TIMEOUT_MS", Millis, |c| c.limits.shutdown_timeout;
    "limits.validate_queue", "CREDVAULT_VALIDATE_QUEUE", Num<usize>, |c| c.limits.validate_queue;
    "limits.test_sms_per_credential_per_hour", "CREDVAULT_TEST_SMS_PER_CREDENTIAL_PER_HOUR", Num<u32>, |c| c.limits.test_sms_per_credential_per_hour;
    "limits.test_sms_per_recipient_per_hour", "CREDVAULT_TEST_SMS_PER_RECIPIENT_PER_HOUR", Num<u32>, |c| c.limits.test_sms_per_recipient_per_hour;
    "audit.path", "CREDVAULT_AUDIT_PATH", OptionalPath, |c| c.audit.path;
    "audit.durability", "CREDVAULT_AUDIT_DURABILITY", Choice<super::AuditDurability>, |c| c.audit.durability;
    "audit.max_file_mb", "CREDVAULT_AUDIT_MAX_FILE_MB", Mebibytes, |c| c.audit.max_file_bytes;
    "audit.head_interval_ms", "CREDVAULT_AUDIT_HEAD_INTERVAL_MS", Millis, |c| c.audit.head_interval;
    "keys.rotate_after_encryptions", "CREDVAULT_KEYS_ROTATE_AFTER_ENCRYPTIONS", Positive<u64>, |c| c.keys.rotate_after_encryptions;
    "keys.max_age_days", "CREDVAULT_KEYS_MAX_AGE_DAYS", Num<u32>, |c| c.keys.max_age_days;
    "keys.rewrap_per_second", "CREDVAULT_KEYS_REWRAP_PER_SECOND", Positive<u32>, |c| c.keys.rewrap_per_second;
    "log.format", "CREDVAULT_LOG_FORMAT", Choice<LogFormat>, |c| c.log_format;
};

/// `CREDVAULT_*` variables that are not settings but are read by the command line.
/// (`CREDVAULT_GIT_COMMIT` is build.rs's, which cargo also hands the processes it runs.)
pub(super) const OTHER_ENV: &[&str] = &[
    "CREDVAULT_CONFIG",
    "CREDVAULT_ADDR",
    "CREDVAULT_TIMEOUT",
    "CREDVAULT_TOKEN_FILE",
    "CREDVAULT_GIT_COMMIT",
];

pub(super) fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

pub(super) fn groups() -> impl Iterator<Item = &'static str> {
    let mut seen = Vec::new();
    SETTINGS.iter().filter_map(move |s| {
        let g = s.group();
        (!seen.contains(&g)).then(|| {
            seen.push(g);
            g
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_env_vars_are_unique_and_every_value_round_trips() {
        let defaults = Config::with_data_dir("credvault-data");
        for (i, s) in SETTINGS.iter().enumerate() {
            assert!(s.env.starts_with("CREDVAULT_"), "{}", s.name);
            assert!(
                SETTINGS[i + 1..]
                    .iter()
                    .all(|o| o.name != s.name && o.env != s.env),
                "{} twice",
                s.name
            );
            // What `config check` prints reads back as the same value.
            let shown = (s.show)(&defaults);
            let text = shown.trim_matches('"');
            if text.is_empty() {
                continue;
            }
            let mut c = Config::with_data_dir("elsewhere");
            (s.set)(&mut c, text).unwrap();
            assert_eq!((s.show)(&c), shown, "{}", s.name);
        }
    }
}
