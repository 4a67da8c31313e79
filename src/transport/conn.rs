//! One accepted connection: its TCP stream, its slot under the connection cap, a deadline for its
//! first request, and the server's kill switch.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;

/// What a request knows of its connection (a request extension, set by tonic from
/// [`Connected::connect_info`]).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The URI and DNS SANs of the client's certificate, verified by the TLS handshake; empty
    /// without TLS or without a client certificate.
    pub identities: Arc<[String]>,
    first_request: Arc<AtomicBool>,
}

impl ConnInfo {
    pub(super) fn with_identities(mut self, identities: Arc<[String]>) -> Self {
        self.identities = identities;
        self
    }

    /// Called for every request; the first one lifts the connection's handshake deadline.
    pub fn saw_request(&self) {
        if !self.first_request.load(Ordering::Relaxed) {
            self.first_request.store(true, Ordering::Relaxed);
        }
    }
}

pub struct Conn {
    stream: TcpStream,
    info: ConnInfo,
    /// Until the first request's headers arrive: the preface, SETTINGS and HEADERS must all come
    /// within the handshake timeout, or the connection is closed (slowloris, port scanners).
    handshake: Option<Pin<Box<Sleep>>>,
    kill: CancellationToken,
    /// Registered with `kill` for the waker of the task that reads this connection, so a
    /// cancellation wakes an idle connection (see `Registered`).
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    registered: Registered,
    _slot: OwnedSemaphorePermit,
}

/// The waker a cancellation future was last polled with. Polling the server's kill token takes a
/// lock that every connection and RPC shares, so it is polled only to (re)register a waker; in
/// between, `CancellationToken::is_cancelled` (an atomic load) is enough.
#[derive(Default)]
pub(super) struct Registered(Option<Waker>);

impl Registered {
    /// Whether the cancellation future must be polled now: `cx`'s waker is not the one it holds.
    pub(super) fn needs_poll(&mut self, cx: &Context<'_>) -> bool {
        if self.0.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return false;
        }
        self.0 = Some(cx.waker().clone());
        true
    }
}

impl Conn {
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        handshake_timeout: Duration,
        kill: CancellationToken,
    ) -> Self {
        Self {
            stream,
            info: ConnInfo {
                peer,
                identities: Arc::new([]),
                first_request: Arc::default(),
            },
            handshake: Some(Box::pin(tokio::time::sleep(handshake_timeout))),
            killed: Box::pin(kill.clone().cancelled_owned()),
            kill,
            registered: Registered::default(),
            _slot: slot,
        }
    }

    /// `Err` once the server killed the connection (its shutdown deadline passed).
    fn check_killed(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.registered.needs_poll(cx) {
            // Ready only if already cancelled; otherwise the waker is now registered.
            let _ = self.killed.as_mut().poll(cx);
        }
        if self.kill.is_cancelled() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server is shutting down",
            ));
        }
        Ok(())
    }

    /// `Err` once the connection must end: the server killed it, or its handshake ran out.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        self.check_killed(cx)?;
        if let Some(deadline) = &mut self.handshake {
            if self.info.first_request.load(Ordering::Relaxed) {
                self.handshake = None;
            } else if deadline.as_mut().poll(cx).is_ready() {
                tracing::debug!(peer = %self.info.peer, "closing a connection that sent no request in time");
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request within the handshake timeout",
                ));
            }
        }
        Ok(())
    }
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.kill.is_cancelled() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.stream).poll_shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}
