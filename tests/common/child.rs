//! The real `credvault` binary as a child process, for tests that kill it or send it signals.
//!
//! The child listens on `127.0.0.1:0`; its "credvault serving" log line tells the address, so a
//! test never races another process for a port and never sleeps waiting for readiness.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

/// How long a start may take before the test fails (a debug build on a busy 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ChildServer {
    pub addr: SocketAddr,
    data_dir: PathBuf,
    child: Child,
    log: Arc<Mutex<String>>,
}

/// How to start the child beyond the defaults.
#[derive(Debug, Default, Clone)]
pub struct Launch {
    /// Extra environment variables, set after (and so over) the defaults.
    pub env: Vec<(String, String)>,
    /// RLIMIT_NOFILE of the child.
    pub fd_limit: Option<u32>,
    /// Command-line arguments (flags of the default `serve`).
    pub args: Vec<String>,
}

/// A start that did not reach "credvault serving".
#[derive(Debug)]
pub struct StartFailure {
    pub status: Option<ExitStatus>,
    pub log: String,
}

impl ChildServer {
    /// Starts the binary on `data_dir`; panics with its log if it does not come up.
    pub fn start(data_dir: &Path) -> Self {
        match Self::try_start(data_dir) {
            Ok(server) => server,
            Err(f) => panic!(
                "credvault did not start (exit {:?}); its log:\n{}",
                f.status, f.log
            ),
        }
    }

    /// Starts the binary on `data_dir` and waits for its "serving" line or its exit.
    pub fn try_start(data_dir: &Path) -> Result<Self, StartFailure> {
        Self::try_start_with(data_dir, &Launch::default())
    }

    /// [`ChildServer::start`] with extra environment or limits.
    pub fn start_with(data_dir: &Path, launch: &Launch) -> Self {
        match Self::try_start_with(data_dir, launch) {
            Ok(server) => server,
            Err(f) => panic!(
                "credvault did not start (exit {:?}); its log:\n{}",
                f.status, f.log
            ),
        }
    }

    pub fn try_start_with(data_dir: &Path, launch: &Launch) -> Result<Self, StartFailure> {
        let bin = env!("CARGO_BIN_EXE_credvault");
        let mut command = match launch.fd_limit {
            // Through the shell's ulimit: the tests keep `unsafe` (setrlimit in pre_exec) out.
            Some(n) => {
                let mut c = Command::new("sh");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), bin]);
                c
            }
            None => Command::new(bin),
        };
        command
            .env("CREDVAULT_LISTEN", "127.0.0.1:0")
            .env("CREDVAULT_DATA_DIR", data_dir)
            .env("CREDVAULT_TWILIO_API_BASE", "http://127.0.0.1:9")
            .env("CREDVAULT_TWILIO_MESSAGING_BASE", "http://127.0.0.1:9")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        command.envs(launch.env.iter().map(|(k, v)| (k, v)));
        command.args(&launch.args);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn credvault binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let reader = {
            let log = log.clone();
            // Drains stderr for the child's whole life, so the child never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = serving_addr(&line) {
                        let _ = addr_tx.send(addr);
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            })
        };
        // The reader thread drops `addr_tx` at EOF (child exited), which ends this wait early.
        match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => Ok(Self {
                addr,
                data_dir: data_dir.to_owned(),
                child,
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                // The child is gone, so its stderr is at EOF and the reader ends.
                let _ = reader.join();
                let log = log.lock().unwrap().clone();
                Err(StartFailure { status, log })
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("connect to child server")
    }

    /// The bootstrap admin token the server made in its data dir (no callers are configured).
    pub fn admin_token(&self) -> String {
        let path = self.data_dir.join("admin.token");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_owned()
    }

    /// A client on a new connection, calling with the bootstrap admin token.
    pub async fn client(&self) -> credvault::client::VaultClient {
        let bearer = credvault::client::Bearer::new(&self.admin_token()).unwrap();
        credvault::client::vault_client(self.channel().await, bearer)
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL child");
        self.child.wait().expect("reap child");
    }

    /// Sends SIGTERM (through kill(1): the tests keep `unsafe` out).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends SIGHUP: reload the config.
    pub fn sighup(&self) {
        self.signal("HUP");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the child to exit; `None` if it is still running (then killed).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                self.kill9();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in the "credvault serving" log line: `addr=...` in text, `"addr":"..."` in JSON.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("credvault serving") {
        return None;
    }
    let (start, stop): (&str, &[char]) = if line.contains("\"addr\":\"") {
        ("\"addr\":\"", &['"'])
    } else {
        ("addr=", &[' ', '\t'])
    };
    let rest = &line[line.find(start)? + start.len()..];
    let end = rest.find(stop).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A fresh data dir inside `root`.
pub fn data_dir(root: &Path) -> PathBuf {
    root.join("data")
}
