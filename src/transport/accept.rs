//! The accept loop: a stream of connections for tonic, under a cap, with TCP keepalive, and with
//! a backoff when the process runs out of file descriptors (tonic's own loop retries at once and
//! spins a core).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;

use super::conn::Conn;
use crate::config::Limits;

const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one warning per this long about refused connections.
const WARN_EVERY: Duration = Duration::from_secs(10);

pub struct Incoming {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max_connections: usize,
    handshake_timeout: Duration,
    keepalive: TcpKeepalive,
    kill: CancellationToken,
    backoff: Option<Pin<Box<Sleep>>>,
    next_backoff: Duration,
    refused: u64,
    warned_at: Option<Instant>,
}

impl Incoming {
    pub fn new(listener: TcpListener, limits: &Limits, kill: CancellationToken) -> Self {
        Self {
            listener,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            max_connections: limits.max_connections,
            handshake_timeout: limits.handshake_timeout,
            keepalive: keepalive(limits.keepalive_interval),
            kill,
            backoff: None,
            next_backoff: MIN_BACKOFF,
            refused: 0,
            warned_at: None,
        }
    }

    /// Past the cap a connection is closed at once: the client learns now instead of hanging
    /// in the listen backlog.
    fn refuse(&mut self, stream: TcpStream) {
        drop(stream);
        self.refused += 1;
        if self.warned_at.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                max_connections = self.max_connections,
                refused = self.refused,
                "connection limit reached: closing new connections"
            );
            self.warned_at = Some(Instant::now());
        }
    }
}

/// Probes start after `interval` idle and repeat every `interval / 4`; three unanswered close it.
fn keepalive(interval: Duration) -> TcpKeepalive {
    TcpKeepalive::new()
        .with_time(interval)
        .with_interval((interval / 4).max(Duration::from_secs(1)))
        .with_retries(3)
}

/// Per-connection socket options. A failure here only costs that option.
pub(super) fn configure(stream: &TcpStream, keepalive: &TcpKeepalive) {
    let sock = SockRef::from(stream);
    if let Err(e) = stream
        .set_nodelay(true)
        .and_then(|()| sock.set_tcp_keepalive(keepalive))
    {
        tracing::debug!(error = %e, "cannot set socket options");
    }
}

/// Running out of descriptors or memory: retrying at once cannot succeed.
fn is_exhaustion(e: &io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(e),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
    )
}

impl Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(sleep) = &mut self.backoff {
                ready!(sleep.as_mut().poll(cx));
                self.backoff = None;
            }
            match ready!(self.listener.poll_accept(cx)) {
                Ok((stream, peer)) => {
                    self.next_backoff = MIN_BACKOFF;
                    let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                        self.refuse(stream);
                        continue;
                    };
                    configure(&stream, &self.keepalive);
                    let conn = Conn::new(
                        stream,
                        peer,
                        slot,
                        self.handshake_timeout,
                        self.kill.clone(),
                    );
                    return Poll::Ready(Some(Ok(conn)));
                }
                Err(e) if is_exhaustion(&e) => {
                    let wait = self.next_backoff;
                    tracing::warn!(
                        error = %e,
                        wait_ms = wait.as_millis() as u64,
                        "cannot accept connections (out of file descriptors or memory); backing off"
                    );
                    self.next_backoff = (wait * 2).min(MAX_BACKOFF);
                    self.backoff = Some(Box::pin(tokio::time::sleep(wait)));
                }
                // ECONNABORTED and the like: that one connection is gone, the next may be fine.
                Err(e) => tracing::debug!(error = %e, "accept failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_get_keepalive_and_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        configure(&stream, &keepalive(Duration::from_secs(40)));
        let sock = SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(40));
        assert!(stream.nodelay().unwrap());
    }

    #[test]
    fn exhaustion_is_told_from_a_lost_connection() {
        assert!(is_exhaustion(&io::Error::from_raw_os_error(24)));
        assert!(is_exhaustion(&io::Error::from_raw_os_error(23)));
        assert!(!is_exhaustion(&io::Error::from_raw_os_error(103))); // ECONNABORTED
    }
}
