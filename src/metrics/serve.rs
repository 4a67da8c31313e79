//! The metrics listener: `GET /metrics` answers the text exposition format; anything else 404.
//! A listener of its own (`metrics.listen`), so scraping never competes with the gRPC port's
//! limits and the vault's port never serves it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
#[error("metrics.listen {addr}: {source}")]
pub struct MetricsError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// The listener, serving until dropped; metrics are recorded while one is.
pub struct Serving(tokio::task::JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
        super::SERVING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Binds `addr` now (a taken port is a start-up error), then serves in the background; each
/// scrape calls `read` for the gauges of the moment.
pub async fn serve(
    addr: SocketAddr,
    read: impl Fn() -> super::Reading + Send + Sync + 'static,
) -> Result<Serving, MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError { addr, source })?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "metrics served at /metrics");
    super::registered();
    super::SERVING.fetch_add(1, Ordering::Relaxed);
    let read = Arc::new(read);
    Ok(Serving(tokio::spawn(async move {
        // Connections live in the listener's task: stopping it closes them (and lets go of
        // what `read` holds, the vault).
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                Some(_) = connections.join_next() => continue,
            };
            let Ok((conn, _)) = accepted else {
                // EMFILE and the like: wait a little rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let read = read.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(|req| answer(req, read.as_ref()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), service)
                    .await;
            });
        }
    })))
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    read: &(impl Fn() -> super::Reading + ?Sized),
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = if req.method() == hyper::Method::GET && req.uri().path() == "/metrics" {
        Response::builder()
            .header(
                hyper::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(Full::new(Bytes::from(super::registered().encode(&read()))))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"not found: GET /metrics\n")))
    };
    Ok(reply.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}
