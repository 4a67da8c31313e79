//! Startup time and memory of the real server process over a prepared store.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use credvault::proto::v1 as pb;

use crate::jobs::status;
use crate::server::{channels, label, wait_serving, wait_unlocked, OWNER};

pub struct Startup {
    pub binary: String,
    pub creds: usize,
    pub to_serving: Duration,
    pub rss_serving_kib: u64,
    /// After listing every credential and resolving a sample: the working set under use.
    pub rss_used_kib: u64,
    /// Peak RSS over the child's life (VmHWM).
    pub hwm_kib: u64,
}

/// The release `credvault` next to this binary, or this binary in server mode if it is missing.
fn server_command() -> Result<(Command, String), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let sibling: PathBuf = me.with_file_name("credvault");
    if sibling.is_file() {
        let shown = sibling.display().to_string();
        return Ok((Command::new(sibling), shown));
    }
    eprintln!(
        "notice: {} not found (build it with `cargo build --release`); \
         measuring credvault::serve in a child of this binary instead",
        sibling.display()
    );
    let mut cmd = Command::new(&me);
    cmd.arg("__serve");
    Ok((cmd, format!("{} __serve", me.display())))
}

/// Spawns the server on `data_dir` (which holds `creds` credentials), times SERVING, reads RSS,
/// touches every record, reads RSS again, and stops it with SIGTERM.
pub async fn measure(data_dir: &Path, creds: usize) -> Result<Startup, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let (mut cmd, binary) = server_command()?;
    wait_unlocked(data_dir).await?;
    let started = Instant::now();
    let child = cmd
        .env("CREDVAULT_DATA_DIR", data_dir)
        .env("CREDVAULT_LISTEN", addr.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {binary}: {e}"))?;
    let mut child = Guard(child);
    let pid = child.0.id();
    wait_serving(addr, Duration::from_secs(30)).await?;
    let to_serving = started.elapsed();
    let rss_serving_kib = proc_status_kib(pid, "VmRSS")?;

    touch_all(addr, creds, data_dir).await?;
    let rss_used_kib = proc_status_kib(pid, "VmRSS")?;
    let hwm_kib = proc_status_kib(pid, "VmHWM")?;
    child.stop();
    Ok(Startup {
        binary,
        creds,
        to_serving,
        rss_serving_kib,
        rss_used_kib,
        hwm_kib,
    })
}

/// Lists every credential (pages of 500) and resolves one in ten: what a busy day touches.
async fn touch_all(
    addr: std::net::SocketAddr,
    creds: usize,
    data_dir: &Path,
) -> Result<(), String> {
    let chans = channels(addr, 1).await?;
    // The server has no callers configured: it made a bootstrap admin token in its data dir.
    let token = std::fs::read_to_string(data_dir.join(credvault::auth::ADMIN_TOKEN_FILE))
        .map_err(|e| format!("the bootstrap token: {e}"))?;
    let bearer = credvault::client::Bearer::new(&token).ok_or("an empty bootstrap token")?;
    let mut client = credvault::client::vault_client(chans[0].clone(), bearer);
    let mut token = String::new();
    let mut listed = 0;
    loop {
        let req = pb::ListRequest {
            owner: OWNER.into(),
            page_size: 500,
            page_token: token,
        };
        let page = client.list(req).await.map_err(status)?.into_inner();
        listed += page.credentials.len();
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    if listed < creds {
        return Err(format!("listed {listed} credentials, expected {creds}"));
    }
    let mut tasks = Vec::new();
    for w in 0..16 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..creds).step_by(16 * 10) {
                let req = pb::ResolveRequest {
                    owner: OWNER.into(),
                    label: label(i),
                    require_valid: false,
                };
                client.resolve(req).await.map_err(status)?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

fn proc_status_kib(pid: u32, field: &str) -> Result<u64, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// Stops the child on every path: SIGTERM (graceful), then SIGKILL if it lingers.
pub struct Guard(pub Child);

impl Guard {
    fn stop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}
