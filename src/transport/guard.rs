//! What every RPC of every service passes through before its handler: the connection learns it
//! had a request, the in-flight cap sheds load, the request's messages are held to the size
//! limit, and the server's deadline and kill switch bound how long the handler may run.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::Status;
use tower::{Layer, Service};

use tracing::Instrument;

use super::conn::{ConnInfo, Registered};
use super::limit::{LimitedRequest, Oversized};
use super::request_id::{self, RequestIds};

#[derive(Clone)]
pub struct GuardLayer {
    pub request_ids: Arc<RequestIds>,
    /// Whether a method is a hot read (Resolve, List, health, reflection): its span and
    /// completion line are DEBUG, so they cost nothing at the default `info`.
    pub quiet: fn(&str) -> bool,
    pub in_flight: Arc<Semaphore>,
    pub max_in_flight: usize,
    pub deadline: Duration,
    pub max_message: usize,
    /// In an `Arc`: cloning a `CancellationToken` takes the lock its clones share, and the
    /// guard is cloned for every connection and every RPC.
    pub kill: Arc<CancellationToken>,
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            cfg: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    cfg: GuardLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let conn = req.extensions().get::<ConnInfo>();
        if let Some(conn) = conn {
            conn.saw_request();
        }
        let peer = conn.map(|c| c.peer);
        let mut id = self.cfg.request_ids.of(req.headers());
        // Unique per reply: HPACK would add each one to both sides' dynamic tables (and evict
        // useful entries) for nothing. Never-indexed literals skip the tables.
        id.set_sensitive(true);
        let quiet = (self.cfg.quiet)(req.uri().path());
        // One span per RPC: every line the RPC logs carries its id and peer; handlers record
        // owner and label into it.
        let span = {
            let (rpc, request_id) = (req.uri().path(), id.to_str().unwrap_or(""));
            let (caller, owner, label) = (
                tracing::field::Empty,
                tracing::field::Empty,
                tracing::field::Empty,
            );
            if quiet {
                tracing::debug_span!("rpc", rpc, request_id, peer = ?peer, caller, owner, label)
            } else {
                tracing::info_span!("rpc", rpc, request_id, peer = ?peer, caller, owner, label)
            }
        };
        // Shed at once rather than queue: a caller told RESOURCE_EXHAUSTED can back off or go
        // to another instance; one that waits ties up a stream and memory here.
        let Ok(permit) = self.cfg.in_flight.clone().try_acquire_owned() else {
            let status = Status::resource_exhausted(format!(
                "the server is serving its limit of {} RPCs at once; retry with backoff",
                self.cfg.max_in_flight
            ));
            let mut response = status.into_http();
            response.headers_mut().insert(request_id::HEADER, id);
            return Box::pin(std::future::ready(Ok(response)));
        };
        let oversized = Oversized::default();
        let mut req = req;
        req.extensions_mut()
            .insert(request_id::RequestId(id.clone()));
        let req = req.map(|body| {
            Body::new(LimitedRequest::new(
                body,
                self.cfg.max_message,
                oversized.clone(),
            ))
        });
        // The clone that was made ready goes to the call; the fresh one stays (tower's idiom).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // The caller's own deadline, when sooner than the server's, bounds the handler too.
        let callers = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| crate::deadline::parse_grpc_timeout(v.as_bytes()))
            .filter(|t| *t < self.cfg.deadline);
        let (timeout, whose) = match callers {
            Some(t) => (t, "the caller's grpc-timeout"),
            None => (self.cfg.deadline, "the server's deadline"),
        };
        let kill = self.cfg.kill.clone();
        let started = std::time::Instant::now();
        let work = async move {
            let _permit = permit;
            let call = crate::deadline::within(
                started + timeout,
                tokio::time::timeout(timeout, inner.call(req)),
            );
            let response = match until_killed(call, &kill).await {
                Some(Ok(Ok(response))) => response,
                Some(Err(_)) => Status::deadline_exceeded(format!(
                    "the RPC did not finish within {whose} of {} ms",
                    timeout.as_millis()
                ))
                .into_http(),
                // The shutdown deadline passed: the handler is dropped, whatever it was doing.
                None => Status::unavailable("the server is shutting down; retry").into_http(),
            };
            let mut response = oversized.apply(response);
            done(&response, started, quiet);
            response.headers_mut().insert(request_id::HEADER, id);
            Ok(response)
        };
        Box::pin(work.instrument(span))
    }
}

/// `fut`'s output, or `None` once `kill` is cancelled. The token's future is polled only to
/// register this task's waker (`Registered`); later polls check the flag alone.
async fn until_killed<F: Future>(fut: F, kill: &CancellationToken) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut killed = std::pin::pin!(kill.cancelled());
    let mut registered = Registered::default();
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        let newly_killed = registered.needs_poll(cx) && killed.as_mut().poll(cx).is_ready();
        if newly_killed || kill.is_cancelled() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// The RPC's completion line: its code and duration (in its span, with id, peer, owner, label).
/// An error's code is in the headers (a trailers-only reply); a unary reply without one is OK.
fn done(response: &http::Response<Body>, started: std::time::Instant, quiet: bool) {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32);
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if quiet {
        tracing::debug!(code = ?code, elapsed_ms, "rpc done");
    } else {
        tracing::info!(code = ?code, elapsed_ms, "rpc done");
    }
}
