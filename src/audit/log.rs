//! The audit file: one JSON line per RPC, each carrying the SHA-256 of the line before. The RPC
//! writes its own line (under a lock that keeps the chain in order: one `write(2)` to the page
//! cache, a few microseconds), so a failed write fails that RPC. A syncer thread then fsyncs:
//! with `sync` the RPC waits for it (group commit: one fdatasync covers every line written
//! before it started); with `buffered` it runs every 100 ms. Files rotate by size and the chain
//! continues across them. After a failed write or sync the log is fail-stop: every later record
//! fails (and so does its RPC) until a restart, which drops a torn last line.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::record::{finish_line, Event};
use crate::config::{AuditConfig, AuditDurability};

/// The `prev` of the very first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Buffered records reach the disk within this.
const BUFFERED_SYNC: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log cannot be written ({0}); RPCs are refused until it can (restart credvault)")]
pub struct AuditError(String);

/// The handle RPCs record through.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    failed: AtomicBool,
    sync: bool,
    /// Lines known to be on disk (and whether syncing failed).
    synced: watch::Sender<Synced>,
    /// Set when a `sync` record waits for the syncer.
    wanted: Mutex<bool>,
    wake: Condvar,
    head_every: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Synced {
    lines: u64,
    failed: bool,
}

struct State {
    path: PathBuf,
    file: File,
    /// A handle on the same file for the syncer, so fdatasync runs outside the lock.
    sync_handle: Arc<File>,
    regular: bool,
    size: u64,
    head: String,
    /// Lines written since start.
    lines: u64,
    max_bytes: u64,
}

impl AuditLog {
    pub fn open(config: &AuditConfig, data_dir: &Path) -> Result<Self, AuditError> {
        let path = config
            .path
            .clone()
            .unwrap_or_else(|| data_dir.join("audit.log"));
        let state = State::open(path, config).map_err(|e| AuditError(e.to_string()))?;
        state.log_head("audit log open");
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            failed: AtomicBool::new(false),
            sync: config.durability == AuditDurability::Sync,
            synced: watch::Sender::new(Synced::default()),
            wanted: Mutex::new(false),
            wake: Condvar::new(),
            head_every: config.head_interval,
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("credvault-audit-sync".into())
            .spawn(move || syncer(weak))
            .map_err(|e| AuditError(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Writes `event`'s line; with `sync`, waits until it is on disk.
    pub async fn record(&self, event: Event) -> Result<(), AuditError> {
        let inner = &self.inner;
        if inner.failed.load(Ordering::Relaxed) {
            return Err(AuditError("an earlier write failed".into()));
        }
        // The JSON is made before the lock; only the chaining and the write are under it.
        let unchained = event.unchained(SystemTime::now());
        let line = {
            let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            state.append(unchained).inspect_err(|e| inner.fail(e))?
        };
        if !inner.sync {
            return Ok(());
        }
        let mut synced = inner.synced.subscribe();
        *inner.wanted.lock().unwrap_or_else(|e| e.into_inner()) = true;
        inner.wake.notify_one();
        let done = synced
            .wait_for(|s| s.failed || s.lines >= line)
            .await
            .map_err(|_| AuditError("the syncer stopped".into()))?;
        if done.failed {
            return Err(AuditError("an fsync failed".into()));
        }
        Ok(())
    }
}

impl Inner {
    fn fail(&self, e: &AuditError) {
        if !self.failed.swap(true, Ordering::Relaxed) {
            tracing::error!("{e}");
        }
        self.synced.send_modify(|s| s.failed = true);
    }
}

/// fsyncs what was written: when a `sync` record asks, and every 100 ms when there is anything.
/// Ends (after a last sync) when the log is dropped.
fn syncer(inner: Weak<Inner>) {
    let mut head_logged = Instant::now();
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        {
            let wanted = inner.wanted.lock().unwrap_or_else(|e| e.into_inner());
            let (mut wanted, _) = inner
                .wake
                .wait_timeout_while(wanted, BUFFERED_SYNC, |w| !*w)
                .unwrap_or_else(|e| e.into_inner());
            *wanted = false;
        }
        let (handle, written) = {
            let state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            (state.sync_handle.clone(), state.lines)
        };
        if written > inner.synced.borrow().lines && !inner.failed.load(Ordering::Relaxed) {
            match handle.sync_data() {
                Ok(()) => inner.synced.send_modify(|s| s.lines = s.lines.max(written)),
                Err(e) => inner.fail(&AuditError(e.to_string())),
            }
        }
        if head_logged.elapsed() >= inner.head_every {
            inner
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .log_head("periodic");
            head_logged = Instant::now();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = state.file.sync_data();
        state.log_head("audit log closed");
    }
}

impl State {
    fn open(path: PathBuf, config: &AuditConfig) -> io::Result<Self> {
        let file = open_append(&path)?;
        let regular = file.metadata()?.is_file();
        let (head, size) = if regular {
            recover(&path, &file)?
        } else {
            // A device (e.g. /dev/full in tests): nothing to read back.
            (GENESIS.to_owned(), 0)
        };
        Ok(Self {
            sync_handle: Arc::new(file.try_clone()?),
            path,
            file,
            regular,
            size,
            head,
            lines: 0,
            max_bytes: config.max_file_bytes,
        })
    }

    fn log_head(&self, what: &str) {
        tracing::info!(
            file = %self.path.display(),
            head = %self.head,
            lines_since_start = self.lines,
            "{what}: audit chain head"
        );
    }

    /// Chains and appends a line; returns its number (since start) for the syncer.
    fn append(&mut self, mut line: Vec<u8>) -> Result<u64, AuditError> {
        let fail = |e: io::Error| AuditError(e.to_string());
        finish_line(&mut line, &self.head);
        let head = hex(&Sha256::digest(&line));
        line.push(b'\n');
        self.file.write_all(&line).map_err(fail)?;
        self.size += line.len() as u64;
        self.head = head;
        self.lines += 1;
        if self.regular && self.size >= self.max_bytes {
            self.rotate().map_err(fail)?;
        }
        Ok(self.lines)
    }

    /// `audit.log` becomes `audit.log.N` (the next free N); the chain goes on in a new file.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        let n = rotated(&self.path)?.last().map_or(1, |(n, _)| n + 1);
        let target = numbered(&self.path, n);
        std::fs::rename(&self.path, &target)?;
        self.file = open_append(&self.path)?;
        self.sync_handle = Arc::new(self.file.try_clone()?);
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.size = 0;
        tracing::info!(rotated_to = %target.display(), head = %self.head, "audit log rotated");
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

fn numbered(path: &Path, n: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The rotated files of `path`, oldest first.
pub fn rotated(path: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = file_name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push((n, dir.join(&file_name)));
        }
    }
    found.sort();
    Ok(found)
}

/// The chain head and size of an existing file: the hash of its last whole line (of the last
/// rotated file when it is empty). A torn last line, never acknowledged, is cut off.
fn recover(path: &Path, file: &File) -> io::Result<(String, u64)> {
    let mut size = file.metadata()?.len();
    let mut source = (path.to_owned(), size);
    if size == 0 {
        match rotated(path)?.pop() {
            Some((_, last)) => {
                let len = std::fs::metadata(&last)?.len();
                source = (last, len);
            }
            None => return Ok((GENESIS.to_owned(), 0)),
        }
    }
    let (tail, cut) = last_line(&source.0, source.1)?;
    if source.0 == path && cut < size {
        tracing::warn!(
            file = %path.display(),
            bytes = size - cut,
            "dropping a torn last audit line (it was never acknowledged)"
        );
        file.set_len(cut)?;
        size = cut;
    }
    Ok((
        tail.map_or_else(|| GENESIS.to_owned(), |l| hex(&Sha256::digest(&l))),
        size,
    ))
}

/// The last complete line of a file of `len` bytes, and the length up to its newline.
fn last_line(path: &Path, len: u64) -> io::Result<(Option<Vec<u8>>, u64)> {
    let mut file = File::open(path)?;
    let window = len.min(1 << 20);
    file.seek(SeekFrom::Start(len - window))?;
    let mut buf = Vec::with_capacity(window as usize);
    file.take(window).read_to_end(&mut buf)?;
    let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
        return Ok((None, len - window));
    };
    let start = buf[..end]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    Ok((
        Some(buf[start..end].to_vec()),
        len - window + end as u64 + 1,
    ))
}

/// Lowercase hex, without a `format!` per byte (this runs under the chain lock).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_cut_and_the_chain_goes_on_from_the_last_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "{\"prev\":\"a\"}\n{\"prev\":\"b\"}\n{\"prev\":\"tor").unwrap();
        let config = crate::Config::with_data_dir("unused").audit;
        let writer = State::open(path.clone(), &config).unwrap();
        assert_eq!(writer.head, hex(&Sha256::digest(b"{\"prev\":\"b\"}")));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with('\n'));

        let empty = dir.path().join("empty.log");
        let writer = State::open(empty, &config).unwrap();
        assert_eq!(writer.head, GENESIS);
    }
}
