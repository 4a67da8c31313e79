//! Configuration, read from `CREDVAULT_*` variables through an injected source so tests never
//! touch the process environment. Defaults make `cargo run --release` a working vault on loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// `CREDVAULT_MAX_REQUEST_BYTES`: largest accepted request message, default 64 KiB.
    pub max_request_bytes: usize,
    pub twilio: TwilioConfig,
}

/// How credvault talks to Twilio when validating.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// `CREDVAULT_TWILIO_API_BASE`, default `https://api.twilio.com`.
    pub api_base: String,
    /// `CREDVAULT_TWILIO_MESSAGING_BASE`, default `https://messaging.twilio.com`.
    pub messaging_base: String,
    /// `CREDVAULT_TWILIO_CONNECT_TIMEOUT_MS`, default 3000.
    pub connect_timeout: Duration,
    /// `CREDVAULT_TWILIO_TIMEOUT_MS`: whole request, default 10000.
    pub request_timeout: Duration,
    /// `CREDVAULT_TWILIO_MAX_RETRIES`: retries on 429/503/5xx/transport errors, default 2.
    pub max_retries: u32,
    /// `CREDVAULT_TWILIO_MAX_CONCURRENT`: validations in flight per process, default 16.
    pub max_concurrent: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(|k| std::env::var(k).ok())
    }

    pub fn from_source(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| get(var).filter(|v| !v.is_empty()).map(|v| (var, v));
        let parsed = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            get(var).map_or(Ok(default), |(var, v)| {
                v.parse().map_err(|e| ConfigError {
                    var,
                    reason: format!("{e}"),
                })
            })
        };
        let defaults = Self::with_data_dir("credvault-data");
        Ok(Self {
            listen: match get("CREDVAULT_LISTEN") {
                Some((var, v)) => v.parse().map_err(|e| ConfigError {
                    var,
                    reason: format!("{e}"),
                })?,
                None => defaults.listen,
            },
            data_dir: get("CREDVAULT_DATA_DIR").map_or(defaults.data_dir, |(_, v)| v.into()),
            master_key_file: get("CREDVAULT_MASTER_KEY_FILE").map(|(_, v)| v.into()),
            cache_bytes: parsed("CREDVAULT_CACHE_MB", 64)? * 1024 * 1024,
            max_request_bytes: parsed("CREDVAULT_MAX_REQUEST_BYTES", 64 * 1024)? as usize,
            twilio: TwilioConfig {
                api_base: get("CREDVAULT_TWILIO_API_BASE")
                    .map_or(defaults.twilio.api_base, |(_, v)| v),
                messaging_base: get("CREDVAULT_TWILIO_MESSAGING_BASE")
                    .map_or(defaults.twilio.messaging_base, |(_, v)| v),
                connect_timeout: Duration::from_millis(parsed(
                    "CREDVAULT_TWILIO_CONNECT_TIMEOUT_MS",
                    3000,
                )?),
                request_timeout: Duration::from_millis(parsed(
                    "CREDVAULT_TWILIO_TIMEOUT_MS",
                    10_000,
                )?),
                max_retries: parsed("CREDVAULT_TWILIO_MAX_RETRIES", 2)? as u32,
                max_concurrent: parsed("CREDVAULT_TWILIO_MAX_CONCURRENT", 16)?.max(1) as usize,
            },
        })
    }

    /// Defaults, storing under `data_dir`: what tests and benches start from.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: data_dir.into(),
            master_key_file: None,
            cache_bytes: 64 * 1024 * 1024,
            max_request_bytes: 64 * 1024,
            twilio: TwilioConfig {
                api_base: "https://api.twilio.com".into(),
                messaging_base: "https://messaging.twilio.com".into(),
                connect_timeout: Duration::from_secs(3),
                request_timeout: Duration::from_secs(10),
                max_retries: 2,
                max_concurrent: 16,
            },
        }
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

        let c = Config::from_source(|k| match k {
            "CREDVAULT_LISTEN" => Some("0.0.0.0:6000".into()),
            "CREDVAULT_MASTER_KEY_FILE" => Some("/run/secrets/k".into()),
            "CREDVAULT_TWILIO_API_BASE" => Some("http://127.0.0.1:9".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.listen.port(), 6000);
        assert_eq!(c.key_file(), (PathBuf::from("/run/secrets/k"), false));
        assert_eq!(c.twilio.api_base, "http://127.0.0.1:9");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e =
            Config::from_source(|k| (k == "CREDVAULT_LISTEN").then(|| "nope".into())).unwrap_err();
        assert_eq!(e.var, "CREDVAULT_LISTEN");
    }
}
