//! A TCP proxy on loopback that can lose answers: armed, it forwards the client's bytes but
//! swallows what the server sends back, then cuts the connection. The server applied the
//! request; the client never heard. For tests of retries after a lost answer.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct LossyProxy {
    pub endpoint: String,
    armed: Arc<AtomicBool>,
    /// Armed by the next upload at least this large (0: by anything).
    arm_on_upload: Arc<AtomicU64>,
    swallowed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// How long an armed proxy keeps swallowing answers before it cuts the connection.
const CUT_AFTER: Duration = Duration::from_millis(300);

impl LossyProxy {
    /// Forwards 127.0.0.1:<ephemeral> to `target` (host:port).
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let armed = Arc::new(AtomicBool::new(false));
        let swallowed = Arc::new(AtomicU64::new(0));
        let arm_on_upload = Arc::new(AtomicU64::new(0));
        let (a, u, s) = (armed.clone(), arm_on_upload.clone(), swallowed.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, a.clone(), u.clone(), s.clone()));
            }
        });
        Self {
            endpoint,
            armed,
            arm_on_upload,
            swallowed,
            task,
        }
    }

    /// Loses the answers of whatever is sent next, then cuts the connections that carried it.
    pub fn lose_next_answers(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Loses the answers that follow the next upload of at least `bytes` (a write carrying a
    /// value, not the small reads around it), then cuts the connection.
    pub fn lose_answer_to_next_upload_of(&self, bytes: u64) {
        self.arm_on_upload.store(bytes, Ordering::SeqCst);
    }

    /// Bytes of answers lost so far.
    pub fn swallowed(&self) -> u64 {
        self.swallowed.load(Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<AtomicBool>,
    arm_on_upload: Arc<AtomicU64>,
    lost: Arc<AtomicU64>,
) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let arming = armed.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
            let at_least = arm_on_upload.load(Ordering::SeqCst);
            if at_least > 0 && n as u64 >= at_least {
                arm_on_upload.store(0, Ordering::SeqCst);
                arming.store(true, Ordering::SeqCst);
            }
            if server_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut cut_at: Option<tokio::time::Instant> = None;
    loop {
        let read = match cut_at {
            Some(at) => match tokio::time::timeout_at(at, server_rx.read(&mut buf)).await {
                Ok(read) => read,
                Err(_) => break,
            },
            None => server_rx.read(&mut buf).await,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cut_at.is_none() && armed.load(Ordering::SeqCst) {
            cut_at = Some(tokio::time::Instant::now() + CUT_AFTER);
        }
        if cut_at.is_some() {
            lost.fetch_add(n as u64, Ordering::SeqCst);
            continue;
        }
        if client_tx.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if cut_at.is_some() {
        armed.store(false, Ordering::SeqCst);
    }
    up.abort();
}
