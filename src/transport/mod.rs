//! The network edge: accepting connections and holding every RPC, of every service, to the
//! server's limits. Knows nothing of the vault; `lib.rs` hands it the routes.
//!
//! - `accept`: the accept loop (connection cap, TCP keepalive, backoff on EMFILE).
//! - `conn`: one connection (handshake deadline, kill switch).
//! - `guard`: per RPC (in-flight cap with load shedding, server deadline, size limit).
//! - `limit`: the size limit, as RESOURCE_EXHAUSTED for every service.
//! - `request_id`: the id every log line of a request carries, echoed in `x-request-id`.
//! - `tls`: our rustls acceptor (reloadable), concurrent handshakes, client certificate SANs.

mod accept;
mod conn;
mod guard;
mod limit;
mod request_id;
mod tls;

pub(crate) use conn::ConnInfo;
pub(crate) use request_id::RequestId;
pub use tls::{Acceptor, TlsError};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Server;

use crate::config::Limits;

/// How long connections get to close once the shutdown deadline killed them.
const AFTER_KILL: Duration = Duration::from_secs(1);

/// Serves `routes` on `listener` until `shutdown` completes, then drains for at most
/// `limits.shutdown_timeout`; what is left after that is cancelled.
///
/// `quiet(path)` says which methods are hot reads, logged at DEBUG instead of INFO.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    limits: &Limits,
    tls: Option<Arc<Acceptor>>,
    quiet: fn(&str) -> bool,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let kill = CancellationToken::new();
    let (draining_tx, draining_rx) = oneshot::channel();
    let shutdown = async move {
        shutdown.await;
        let _ = draining_tx.send(());
    };
    let guard = guard::GuardLayer {
        request_ids: Arc::new(request_id::RequestIds::new()),
        quiet,
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
        max_in_flight: limits.max_in_flight,
        deadline: limits.rpc_timeout,
        max_message: limits.max_request_bytes,
        kill: Arc::new(kill.clone()),
    };
    let server = Server::builder()
        .max_concurrent_streams(limits.max_streams_per_connection)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .layer(guard)
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            tls::Handshakes::new(accept::Incoming::new(listener, limits, kill.clone()), tls),
            shutdown,
        );
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => return served,
        _ = draining_rx => {}
    }
    match tokio::time::timeout(limits.shutdown_timeout, &mut server).await {
        Ok(served) => served,
        Err(_) => {
            tracing::warn!(
                timeout_ms = limits.shutdown_timeout.as_millis() as u64,
                "shutdown deadline passed: cancelling the RPCs and connections still open"
            );
            kill.cancel();
            match tokio::time::timeout(AFTER_KILL, &mut server).await {
                Ok(served) => served,
                Err(_) => Ok(()),
            }
        }
    }
}
