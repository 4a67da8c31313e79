//! The HTTP side: one shared reqwest client, timeouts, bounded retries with backoff for reads,
//! none for the message POST, and replies read with a size cap into buffers wiped on drop.

use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_LENGTH, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use zeroize::Zeroizing;

use super::errors::{BuildError, TwilioError};
use crate::config::TwilioConfig;

/// First retry waits about this long; each further retry doubles it.
const BASE_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A Retry-After beyond this is cut down: the caller of Validate is waiting on us.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The largest reply read. Twilio's replies to these requests are a few KiB; a longer one is not
/// Twilio's (a proxy, a misconfigured base URL) and is refused without being buffered.
pub(super) const MAX_REPLY_BYTES: usize = 1 << 20;

/// Whether repeating a request can do harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Idempotency {
    /// Reads: retried on 408, 429, 5xx, timeouts and transport errors.
    Safe,
    /// Creates a message: never retried. Unless Twilio certainly did not act on it (a 429 or 4xx,
    /// or a connection that never opened), the SMS may have gone out, and a second attempt would
    /// text the recipient twice.
    CreatesMessage,
}

/// A reply that decides something. Its body may hold secrets (the Account resource carries the
/// auth token): it is wiped when dropped, and the type has no `Debug`.
pub(super) struct Reply {
    pub status: StatusCode,
    pub body: Zeroizing<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub(super) struct Http {
    client: reqwest::Client,
    max_retries: u32,
    /// Spaces this client's requests (background re-validation); `None`: as fast as asked.
    pacer: Option<Arc<Pacer>>,
}

/// Spaces requests at least `interval` apart, across every task sharing it: a cap on the rate
/// at which one user of the client calls Twilio, retries included.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next: Mutex<tokio::time::Instant>,
}

impl Pacer {
    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let at = (*next).max(tokio::time::Instant::now());
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
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
            pacer: None,
        })
    }

    /// The same connection pool, sending at most `per_second` requests a second (its own
    /// budget, not shared with the original).
    pub fn paced(&self, per_second: u32) -> Self {
        Self {
            pacer: Some(Arc::new(Pacer {
                interval: Duration::from_secs(1) / per_second.max(1),
                next: Mutex::new(tokio::time::Instant::now()),
            })),
            ..self.clone()
        }
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
        let max_retries = match idempotency {
            Idempotency::Safe => self.max_retries,
            Idempotency::CreatesMessage => 0,
        };
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let out_of_retries = attempt > max_retries;
            if let Some(pacer) = &self.pacer {
                pacer.wait().await;
            }
            let wait = match make().send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status.is_server_error();
                    if !retryable || out_of_retries {
                        return finish(call, idempotency, attempt, resp).await;
                    }
                    retry_after(&resp).unwrap_or_else(|| backoff(attempt))
                }
                Err(e) => {
                    if out_of_retries {
                        return Err(transport_error(call, idempotency, &e));
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

/// Reads the body of a reply that will not be retried, or turns it into an error.
async fn finish(
    call: &'static str,
    idempotency: Idempotency,
    attempts: u32,
    resp: Response,
) -> Result<Reply, TwilioError> {
    let status = resp.status();
    let may_have_sent = idempotency == Idempotency::CreatesMessage
        && (status.is_success() || status.is_server_error());
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(TwilioError::RateLimited {
            call,
            attempts,
            retry_after: retry_after_header(&resp),
        });
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        if may_have_sent {
            return Err(TwilioError::MaybeSent {
                timed_out: false,
                detail: format!("Twilio answered HTTP {}", status.as_u16()),
            });
        }
        return Err(TwilioError::ServerError {
            call,
            status: status.as_u16(),
            attempts,
        });
    }
    match read_body(resp).await {
        Ok(body) => Ok(Reply { status, body }),
        Err(problem) if may_have_sent => Err(TwilioError::MaybeSent {
            timed_out: false,
            detail: format!("Twilio answered HTTP {}, but {problem}", status.as_u16()),
        }),
        Err(problem) => Err(TwilioError::Unexpected {
            call,
            status: status.as_u16(),
            detail: problem,
        }),
    }
}

/// At most [`MAX_REPLY_BYTES`] of the body, streamed into a buffer wiped on drop; a longer body
/// is refused as soon as it says so (Content-Length) or grows past the cap.
async fn read_body(mut resp: Response) -> Result<Zeroizing<Vec<u8>>, String> {
    let too_long = || format!("its reply is longer than {} KiB", MAX_REPLY_BYTES / 1024);
    let declared = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REPLY_BYTES as u64) {
        return Err(too_long());
    }
    let capacity = declared.map_or(8 * 1024, |n| n as usize);
    let mut body = Zeroizing::new(Vec::with_capacity(capacity));
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_REPLY_BYTES {
                    return Err(too_long());
                }
                // Never let the buffer reallocate: a moved buffer leaves an unwiped copy behind.
                if body.len() + chunk.len() > body.capacity() {
                    let mut bigger = Zeroizing::new(Vec::with_capacity(
                        (body.capacity() * 2).max(body.len() + chunk.len()),
                    ));
                    bigger.extend_from_slice(&body);
                    body = bigger;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err("its reply did not arrive in time".into()),
            Err(_) => return Err("its reply was cut off".into()),
        }
    }
}

/// Retry-After in seconds (Twilio sends seconds), capped: a retry within the caller's wait.
fn retry_after(resp: &Response) -> Option<Duration> {
    retry_after_header(resp).map(|d| d.min(MAX_RETRY_AFTER))
}

/// Retry-After in seconds, as sent (at most a day, so no sum with it overflows).
fn retry_after_header(resp: &Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(86_400)))
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

fn transport_error(
    call: &'static str,
    idempotency: Idempotency,
    e: &reqwest::Error,
) -> TwilioError {
    // A connection that never opened carried nothing; anything later may have delivered the POST.
    if idempotency == Idempotency::CreatesMessage && !e.is_connect() {
        return TwilioError::MaybeSent {
            timed_out: e.is_timeout(),
            detail: if e.is_timeout() {
                "no reply from Twilio within the timeout".into()
            } else {
                format!(
                    "the connection failed after the request went out ({})",
                    describe(e)
                )
            },
        };
    }
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

    #[tokio::test]
    async fn a_pacer_spaces_every_wait_across_tasks() {
        let pacer = Arc::new(Pacer {
            interval: Duration::from_millis(50),
            next: Mutex::new(tokio::time::Instant::now()),
        });
        let started = tokio::time::Instant::now();
        let waits: Vec<_> = (0..5)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move { pacer.wait().await })
            })
            .collect();
        for w in waits {
            w.await.unwrap();
        }
        // The first goes at once, each later one 50 ms after the one before.
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= BASE_BACKOFF && backoff(1) < BASE_BACKOFF * 2);
        assert!(backoff(2) >= BASE_BACKOFF * 2);
        assert!(backoff(30) <= MAX_BACKOFF + MAX_BACKOFF / 4);
    }
}
