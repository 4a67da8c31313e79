//! Configuration: defaults < a TOML file < `CREDVAULT_*` variables < flags. `settings` names
//! every setting once (file key, variable, parser); `file` reads the TOML; `load` layers the
//! sources. Sources are injected, so tests never touch the process environment. Defaults make
//! `cargo run --release` a working vault on loopback; README.md ("Configuration") says why each
//! limit has the default it has, and `examples/credvault.toml` documents every key.

mod callers;
mod etcd;
mod file;
mod load;
mod settings;

pub use etcd::{EtcdConfig, EtcdRead};
pub use load::{render_caller, Loaded, Origin, Sources};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// `CREDVAULT_LISTEN`, default `127.0.0.1:50051` (used by the binary; `serve` takes a listener).
    pub listen: SocketAddr,
    /// `CREDVAULT_DATA_DIR`, default `./credvault-data`.
    pub data_dir: PathBuf,
    /// `CREDVAULT_MASTER_KEY_FILE`; default `<data dir>/master.key`, created on first start.
    pub master_key_file: Option<PathBuf>,
    /// `CREDVAULT_CACHE_MB`: sled page cache, default 64 MiB.
    pub cache_bytes: u64,
    pub twilio: TwilioConfig,
    pub limits: Limits,
    /// `CREDVAULT_LOG_FORMAT`, default text.
    pub log_format: LogFormat,
    /// `[[callers]]` (file only). Empty: the bootstrap admin token in the data dir.
    pub callers: Vec<crate::auth::Caller>,
    pub tls: TlsConfig,
    pub audit: AuditConfig,
    pub keys: KeysConfig,
    pub revalidate: RevalidateConfig,
    /// `CREDVAULT_METRICS_LISTEN`: where Prometheus scrapes `/metrics`; `None` (the default) is
    /// off.
    pub metrics_listen: Option<SocketAddr>,
    /// `CREDVAULT_STORE`: where records live, default sled.
    pub backend: Backend,
    pub etcd: EtcdConfig,
    /// `CREDVAULT_ALLOW_INSECURE_PLAINTEXT`: listen off loopback without TLS (default false).
    pub allow_insecure_plaintext: bool,
}

/// The store behind the vault (`store.backend`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store in the data dir (one process).
    #[default]
    Sled,
    /// An etcd cluster (`[etcd]`), shared by several instances.
    Etcd,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Etcd => "etcd",
        }
    }
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sled" => Ok(Backend::Sled),
            "etcd" => Ok(Backend::Etcd),
            _ => Err(format!("`{s}` is not a store backend (sled or etcd)")),
        }
    }
}

/// The audit log (`[audit]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// `CREDVAULT_AUDIT_PATH`; default `<data dir>/audit.log`.
    pub path: Option<PathBuf>,
    /// `CREDVAULT_AUDIT_DURABILITY`, default sync.
    pub durability: AuditDurability,
    /// `CREDVAULT_AUDIT_MAX_FILE_MB`: rotate past this, default 64 MiB.
    pub max_file_bytes: u64,
    /// `CREDVAULT_AUDIT_HEAD_INTERVAL_MS`: log the chain head this often, default 5 min.
    pub head_interval: Duration,
}

/// When data keys rotate by themselves (`[keys]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysConfig {
    /// `CREDVAULT_KEYS_ROTATE_AFTER_ENCRYPTIONS`: default 2^32, at most 2^32.
    pub rotate_after_encryptions: u64,
    /// `CREDVAULT_KEYS_MAX_AGE_DAYS`: rotate a data key this old; 0 (the default) is off.
    pub max_age_days: u32,
    /// `CREDVAULT_KEYS_REWRAP_PER_SECOND`: records a rewrap re-seals per second, default 1000.
    pub rewrap_per_second: u32,
}

/// Background re-validation of every stored credential (`[revalidate]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevalidateConfig {
    /// `CREDVAULT_REVALIDATE_EVERY`: ask Twilio about each credential at least this often (a
    /// period such as "6h"); `None`, "off", is the default.
    pub every: Option<Duration>,
    /// `CREDVAULT_REVALIDATE_REQUESTS_PER_SECOND`: the most Twilio requests a second it sends,
    /// default 5.
    pub requests_per_second: u32,
}

/// The most encryptions one data key may do: Vault's bound, far below XChaCha20-Poly1305's.
pub const MAX_ENCRYPTIONS_PER_KEY: u64 = 1 << 32;

/// When an audit record counts as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuditDurability {
    /// fsynced (group commit) before the RPC answers.
    #[default]
    Sync,
    /// written before the RPC answers, fsynced within 100 ms.
    Buffered,
}

impl AuditDurability {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDurability::Sync => "sync",
            AuditDurability::Buffered => "buffered",
        }
    }
}

impl FromStr for AuditDurability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(AuditDurability::Sync),
            "buffered" => Ok(AuditDurability::Buffered),
            _ => Err(format!("`{s}` is not a durability (sync or buffered)")),
        }
    }
}

/// Server TLS (`[tls]`): on when `cert_file` and `key_file` are set; mTLS with `client_ca_file`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// `CREDVAULT_TLS_CERT_FILE`: the server's certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// `CREDVAULT_TLS_KEY_FILE`: its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// `CREDVAULT_TLS_CLIENT_CA_FILE`: CA certificates (PEM) that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// `CREDVAULT_TLS_CLIENT_AUTH`: with a client CA, whether a client certificate is required.
    pub client_auth: ClientAuth,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// Whether a client certificate is required (`required`, the default) or may be absent
/// (`optional`: such callers use a bearer token).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    #[default]
    Required,
    Optional,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Required => "required",
            ClientAuth::Optional => "optional",
        }
    }
}

impl FromStr for ClientAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "required" => Ok(ClientAuth::Required),
            "optional" => Ok(ClientAuth::Optional),
            _ => Err(format!("`{s}` is not a client_auth (required or optional)")),
        }
    }
}

/// How credvault talks to Twilio when validating.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// `CREDVAULT_TWILIO_API_BASE`: the REST API base for us1 credentials. Empty (the
    /// default): Twilio's host for the credential's edge (`https://api.twilio.com` without one).
    pub api_base: String,
    /// `CREDVAULT_TWILIO_MESSAGING_BASE`: the Messaging API base for us1, likewise.
    pub messaging_base: String,
    /// `CREDVAULT_TWILIO_IE1_API_BASE`, `..._IE1_MESSAGING_BASE`: the same for ie1 (empty:
    /// `https://{api,messaging}.{edge}.ie1.twilio.com`).
    pub ie1_api_base: String,
    pub ie1_messaging_base: String,
    /// `CREDVAULT_TWILIO_AU1_API_BASE`, `..._AU1_MESSAGING_BASE`: the same for au1.
    pub au1_api_base: String,
    pub au1_messaging_base: String,
    /// `CREDVAULT_TWILIO_CONNECT_TIMEOUT_MS`, default 3000.
    pub connect_timeout: Duration,
    /// `CREDVAULT_TWILIO_TIMEOUT_MS`: one request, default 10000.
    pub request_timeout: Duration,
    /// `CREDVAULT_TWILIO_MAX_RETRIES`: retries of a read on 408/429/5xx/transport errors,
    /// default 2. The test SMS is never retried.
    pub max_retries: u32,
    /// `CREDVAULT_TWILIO_MAX_CONCURRENT`: validations talking to Twilio at once, default 16.
    pub max_concurrent: usize,
    /// `CREDVAULT_VALIDATE_TIMEOUT_MS`: waiting for a turn plus the auth and sender checks,
    /// default 30000. The test SMS has its own request timeout after that.
    pub validate_timeout: Duration,
}

/// What one caller, or all of them, may take from the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `CREDVAULT_MAX_REQUEST_BYTES`: largest request message, for every service, default 64 KiB.
    pub max_request_bytes: usize,
    /// `CREDVAULT_MAX_CONNECTIONS`: open client connections, default 1024.
    pub max_connections: usize,
    /// `CREDVAULT_MAX_STREAMS_PER_CONNECTION`: concurrent RPCs on one HTTP/2 connection,
    /// default 128.
    pub max_streams_per_connection: u32,
    /// `CREDVAULT_MAX_IN_FLIGHT`: RPCs being served at once over all connections, default 2048;
    /// past it, RPCs are shed with RESOURCE_EXHAUSTED.
    pub max_in_flight: usize,
    /// `CREDVAULT_RPC_TIMEOUT_MS`: the server's deadline for any RPC, default 60000.
    pub rpc_timeout: Duration,
    /// `CREDVAULT_HANDSHAKE_TIMEOUT_MS`: from accept to the first request's headers, default
    /// 10000.
    pub handshake_timeout: Duration,
    /// `CREDVAULT_KEEPALIVE_INTERVAL_MS`: HTTP/2 pings and TCP keepalive probes, default 60000.
    pub keepalive_interval: Duration,
    /// `CREDVAULT_KEEPALIVE_TIMEOUT_MS`: an unanswered ping closes the connection, default 20000.
    pub keepalive_timeout: Duration,
    /// `CREDVAULT_SHUTDOWN_TIMEOUT_MS`: how long SIGTERM waits for RPCs, default 10000.
    pub shutdown_timeout: Duration,
    /// `CREDVAULT_VALIDATE_QUEUE`: validations waiting for a turn, default 64; past it,
    /// RESOURCE_EXHAUSTED at once.
    pub validate_queue: usize,
    /// `CREDVAULT_TEST_SMS_PER_CREDENTIAL_PER_HOUR`, default 5 (0 turns test SMS off).
    pub test_sms_per_credential_per_hour: u32,
    /// `CREDVAULT_TEST_SMS_PER_RECIPIENT_PER_HOUR`, default 3.
    pub test_sms_per_recipient_per_hour: u32,
}

/// A setting that could not be read: `place` is the variable, or the file and line.
#[derive(Debug, thiserror::Error)]
#[error("{place}: {reason}")]
pub struct ConfigError {
    pub place: String,
    pub reason: String,
}

/// How the server writes its logs (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: ANSI colours only when stderr is a terminal.
    Text,
    /// One JSON object per line, for collectors.
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("`{s}` is not a log format (text or json)")),
        }
    }
}

impl Config {
    /// The process's config: the file named by `CREDVAULT_CONFIG`, then `CREDVAULT_*`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Sources::from_process(None).load().map(|l| l.config)
    }

    /// Defaults overridden by the variables `get` knows (tests inject them this way).
    pub fn from_source(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = settings::SETTINGS
            .iter()
            .filter_map(|s| Some((s.env.to_string(), get(s.env)?)))
            .collect();
        Sources {
            env,
            ..Sources::default()
        }
        .load()
        .map(|l| l.config)
    }

    /// Defaults, storing under `data_dir`: what tests and benches start from.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: data_dir.into(),
            master_key_file: None,
            cache_bytes: 64 * 1024 * 1024,
            twilio: TwilioConfig {
                api_base: String::new(),
                messaging_base: String::new(),
                ie1_api_base: String::new(),
                ie1_messaging_base: String::new(),
                au1_api_base: String::new(),
                au1_messaging_base: String::new(),
                connect_timeout: Duration::from_secs(3),
                request_timeout: Duration::from_secs(10),
                max_retries: 2,
                max_concurrent: 16,
                validate_timeout: Duration::from_secs(30),
            },
            limits: Limits {
                max_request_bytes: 64 * 1024,
                max_connections: 1024,
                max_streams_per_connection: 128,
                max_in_flight: 2048,
                rpc_timeout: Duration::from_secs(60),
                handshake_timeout: Duration::from_secs(10),
                keepalive_interval: Duration::from_secs(60),
                keepalive_timeout: Duration::from_secs(20),
                shutdown_timeout: Duration::from_secs(10),
                validate_queue: 64,
                test_sms_per_credential_per_hour: 5,
                test_sms_per_recipient_per_hour: 3,
            },
            log_format: LogFormat::Text,
            callers: Vec::new(),
            tls: TlsConfig::default(),
            audit: AuditConfig {
                path: None,
                durability: AuditDurability::Sync,
                max_file_bytes: 64 * 1024 * 1024,
                head_interval: Duration::from_secs(300),
            },
            keys: KeysConfig {
                rotate_after_encryptions: MAX_ENCRYPTIONS_PER_KEY,
                max_age_days: 0,
                rewrap_per_second: crate::vault::REWRAP_PER_SECOND,
            },
            revalidate: RevalidateConfig {
                every: None,
                requests_per_second: 5,
            },
            metrics_listen: None,
            backend: Backend::Sled,
            etcd: EtcdConfig::default(),
            allow_insecure_plaintext: false,
        }
    }

    /// Rules across settings, checked once they are all read.
    pub fn check(&self) -> Result<(), ConfigError> {
        let err = |place: &str, reason: String| ConfigError {
            place: place.into(),
            reason,
        };
        if self.keys.rotate_after_encryptions > MAX_ENCRYPTIONS_PER_KEY {
            return Err(err(
                "keys.rotate_after_encryptions",
                format!("must be at most {MAX_ENCRYPTIONS_PER_KEY} (2^32)"),
            ));
        }
        self.etcd.check()?;
        let tls = &self.tls;
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(err(
                "tls",
                "tls.cert_file and tls.key_file go together: set both, or neither".into(),
            ));
        }
        if tls.client_ca_file.is_some() && !tls.enabled() {
            return Err(err(
                "tls.client_ca_file",
                "mTLS needs server TLS: set tls.cert_file and tls.key_file too".into(),
            ));
        }
        if !tls.enabled() && !self.listen.ip().is_loopback() && !self.allow_insecure_plaintext {
            return Err(err(
                "server.listen",
                format!(
                    "{} is not a loopback address and TLS is off: bearer tokens and Resolve's \
                     secrets would cross the network in clear. Set tls.cert_file and \
                     tls.key_file, or, behind a TLS-terminating proxy on a private network, \
                     server.allow_insecure_plaintext = true",
                    self.listen
                ),
            ));
        }
        Ok(())
    }

    /// The master key file in use, and whether credvault may create it.
    pub fn key_file(&self) -> (PathBuf, bool) {
        match &self.master_key_file {
            Some(path) => (path.clone(), false),
            None => (self.data_dir.join("master.key"), true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_source(|_| None).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(
            c.key_file(),
            (PathBuf::from("credvault-data/master.key"), true)
        );
        assert_eq!(c.cache_bytes, 64 << 20);
        assert_eq!(c.limits.test_sms_per_credential_per_hour, 5);

        let c = Config::from_source(|k| match k {
            "CREDVAULT_LISTEN" => Some("0.0.0.0:6000".into()),
            "CREDVAULT_ALLOW_INSECURE_PLAINTEXT" => Some("true".into()),
            "CREDVAULT_MASTER_KEY_FILE" => Some("/run/secrets/k".into()),
            "CREDVAULT_TWILIO_API_BASE" => Some("http://127.0.0.1:9".into()),
            "CREDVAULT_SHUTDOWN_TIMEOUT_MS" => Some("1500".into()),
            "CREDVAULT_TEST_SMS_PER_RECIPIENT_PER_HOUR" => Some("0".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.listen.port(), 6000);
        assert_eq!(c.key_file(), (PathBuf::from("/run/secrets/k"), false));
        assert_eq!(c.twilio.api_base, "http://127.0.0.1:9");
        assert_eq!(c.limits.shutdown_timeout, Duration::from_millis(1500));
        assert_eq!(c.limits.test_sms_per_recipient_per_hour, 0);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e =
            Config::from_source(|k| (k == "CREDVAULT_LISTEN").then(|| "nope".into())).unwrap_err();
        assert_eq!(e.place, "CREDVAULT_LISTEN");
        let e = Config::from_source(|k| (k == "CREDVAULT_MAX_CONNECTIONS").then(|| "0".into()))
            .unwrap_err();
        assert_eq!(e.place, "CREDVAULT_MAX_CONNECTIONS");
    }
}
