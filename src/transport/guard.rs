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

use super::conn::ConnInfo;
use super::limit::{LimitedRequest, Oversized};

#[derive(Clone)]
pub struct GuardLayer {
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
        if let Some(conn) = req.extensions().get::<ConnInfo>() {
            conn.saw_request();
        }
        // Shed at once rather than queue: a caller told RESOURCE_EXHAUSTED can back off or go
        // to another instance; one that waits ties up a stream and memory here.
        let Ok(permit) = self.cfg.in_flight.clone().try_acquire_owned() else {
            let status = Status::resource_exhausted(format!(
                "the server is serving its limit of {} RPCs at once; retry with backoff",
                self.cfg.max_in_flight
            ));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        };
        let oversized = Oversized::default();
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
        let (deadline, kill) = (self.cfg.deadline, self.cfg.kill.clone());
        Box::pin(async move {
            let _permit = permit;
            let call = tokio::time::timeout(deadline, inner.call(req));
            let response = match until_killed(call, &kill).await {
                Some(Ok(Ok(response))) => response,
                Some(Err(_)) => Status::deadline_exceeded(format!(
                    "the RPC did not finish within the server's deadline of {} ms",
                    deadline.as_millis()
                ))
                .into_http(),
                // The shutdown deadline passed: the handler is dropped, whatever it was doing.
                None => Status::unavailable("the server is shutting down; retry").into_http(),
            };
            Ok(oversized.apply(response))
        })
    }
}

/// `fut`'s output, or `None` once `kill` is cancelled. The token's waiter list is shared by every
/// RPC and each poll of its future takes its lock, so it is polled to register this task's waker
/// only once (again only if the waker changes); later polls check the flag alone.
async fn until_killed<F: Future>(fut: F, kill: &CancellationToken) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut killed = std::pin::pin!(kill.cancelled());
    let mut registered: Option<std::task::Waker> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            registered = Some(cx.waker().clone());
            if killed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        } else if kill.is_cancelled() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}
