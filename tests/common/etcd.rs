//! A real etcd on loopback in a tempdir, for the etcd store's tests. The `etcd` binary (Debian
//! package `etcd-server`) is installed by `.ci/install.d/40-etcd.sh` in CI, where its absence
//! fails the test; on a machine without it the test says so and passes.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Etcd {
    pub endpoint: String,
    child: Option<Child>,
    args: Vec<String>,
}

fn free_port() -> u16 {
    // Bound and released at once: a tiny window in which another process could take it.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    /// Starts a single-node etcd with its data in `dir`; `None` when there is no `etcd` binary
    /// (outside CI).
    pub fn start(dir: &Path) -> Option<Self> {
        if Command::new("etcd").arg("--version").output().is_err() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but no etcd binary: .ci/install.d/40-etcd.sh installs it"
            );
            eprintln!("notice: no etcd binary on PATH; the etcd store test is skipped");
            return None;
        }
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let args: Vec<String> = [
            "--name",
            "test",
            "--data-dir",
            &dir.display().to_string(),
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &format!("test={peer_url}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut etcd = Etcd {
            endpoint: client_url,
            child: None,
            args,
        };
        etcd.restart();
        Some(etcd)
    }

    /// SIGKILL: etcd is gone (its data stays).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data, and waits until it is healthy.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("etcd")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Until etcd answers a health request (bounded).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("{}/health", self.endpoint);
        let host = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(&host) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = write!(s, "GET /health HTTP/1.0\r\nHost: {host}\r\n\r\n");
                let mut reply = String::new();
                let _ = s.read_to_string(&mut reply);
                if reply.contains("\"health\":\"true\"") {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
