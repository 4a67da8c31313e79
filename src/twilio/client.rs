//! The HTTP side: one shared reqwest client, timeouts, bounded retries with backoff.

use std::error::Error as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::RETRY_AFTER;
use reqwest::{RequestBuilder, Response, StatusCode};

use super::errors::{BuildError, TwilioError};
use crate::config::TwilioConfig;

/// First retry waits about this long; each further retry doubles it.
const BASE_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A Retry-After beyond this is cut down: the caller of Validate is waiting on us.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Whether repeating a request can do harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Idempotency {
    /// Reads: retried on 429, 5xx, timeouts and transport errors.
    Safe,
    /// Creates a message: retried only when Twilio certainly did not act on it (429, 503, or a
    /// connection that never opened). A timeout or a 500 may hide a sent SMS; sending a second
    /// one would text the recipient twice.
    CreatesMessage,
}

/// A reply that decides something: any status below 500 except an exhausted 429.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(super) struct Http {
    client: reqwest::Client,
    max_retries: u32,
}

impl Http {
    pub fn new(cfg: &TwilioConfig) -> Result<Self, BuildError> {
        let client = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .user_agent(concat!("credvault/", env!("CARGO_PKG_VERSION")))
            // Redirects would re-send basic auth to wherever Twilio (or a proxy) pointed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BuildError(e.without_url().to_string()))?;
        Ok(Self {
            client,
            max_retries: cfg.max_retries,
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends the request `make` builds (again for each attempt) and returns the first reply that
    /// decides something. `call` names the check in errors and logs; no URL, no header is logged.
    pub async fn send(
        &self,
        call: &'static str,
        idempotency: Idempotency,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Reply, TwilioError> {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let out_of_retries = attempt > self.max_retries;
            let wait = match make().send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::SERVICE_UNAVAILABLE
                        || (status.is_server_error() && idempotency == Idempotency::Safe);
                    if !retryable || out_of_retries {
                        return finish(call, attempt, resp).await;
                    }
                    retry_after(&resp).unwrap_or_else(|| backoff(attempt))
                }
                Err(e) => {
                    let retryable = e.is_connect() || idempotency == Idempotency::Safe;
                    if !retryable || out_of_retries {
                        return Err(transport_error(call, &e));
                    }
                    tracing::debug!(call, attempt, error = %describe(&e), "Twilio call failed");
                    backoff(attempt)
                }
            };
            tracing::warn!(
                call,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "Twilio call not answered; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// Reads the body of a reply that will not be retried, or turns a server error into an error.
async fn finish(call: &'static str, attempts: u32, resp: Response) -> Result<Reply, TwilioError> {
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(TwilioError::RateLimited { call, attempts });
    }
    if status.is_server_error() {
        return Err(TwilioError::ServerError {
            call,
            status: status.as_u16(),
            attempts,
        });
    }
    let body = resp.bytes().await.map_err(|e| transport_error(call, &e))?;
    Ok(Reply {
        status,
        body: body.to_vec(),
    })
}

/// Retry-After in seconds (Twilio sends seconds), capped.
fn retry_after(resp: &Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Exponential backoff with up to 25% jitter, so that many validations rate limited together do
/// not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = BASE_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(MAX_BACKOFF);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

fn transport_error(call: &'static str, e: &reqwest::Error) -> TwilioError {
    if e.is_timeout() {
        TwilioError::Timeout { call }
    } else {
        TwilioError::Unreachable {
            call,
            detail: describe(e),
        }
    }
}

/// The innermost cause of a transport error ("Connection refused (os error 111)"). reqwest's own
/// message carries the URL; the causes below it (hyper, io) do not.
fn describe(e: &reqwest::Error) -> String {
    let mut innermost = None;
    let mut cause = e.source();
    while let Some(c) = cause {
        innermost = Some(c);
        cause = c.source();
    }
    match innermost {
        Some(c) => c.to_string(),
        None if e.is_connect() => "connection failed".into(),
        None if e.is_body() || e.is_decode() => "the reply was cut off".into(),
        None => "request failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= BASE_BACKOFF && backoff(1) < BASE_BACKOFF * 2);
        assert!(backoff(2) >= BASE_BACKOFF * 2);
        assert!(backoff(30) <= MAX_BACKOFF + MAX_BACKOFF / 4);
    }
}
