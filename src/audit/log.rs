//! The audit file: one JSON line per RPC, each carrying the SHA-256 of the line before, written
//! by one thread with group commit. `sync`: a record is acknowledged after its batch's
//! fdatasync; `buffered`: after the write, fsynced within 100 ms. Files rotate by size and the
//! chain continues across them. After a failed write or sync the log is fail-stop: every later
//! record fails (and so does its RPC) until a restart, which drops a torn last line.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::record::Event;
use crate::config::{AuditConfig, AuditDurability};

/// The `prev` of the very first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Buffered records reach the disk within this.
const BUFFERED_SYNC: Duration = Duration::from_millis(100);
/// Records written per batch at most.
const MAX_BATCH: usize = 1024;

#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log cannot be written ({0}); RPCs are refused until it can (restart credvault)")]
pub struct AuditError(String);

struct Job {
    event: Event,
    done: oneshot::Sender<Result<(), AuditError>>,
}

/// The handle RPCs record through. Dropping the last one stops the writer after a final sync.
#[derive(Clone)]
pub struct AuditLog {
    jobs: mpsc::Sender<Job>,
    failed: Arc<AtomicBool>,
}

impl AuditLog {
    pub fn open(config: &AuditConfig, data_dir: &Path) -> Result<Self, AuditError> {
        let path = config
            .path
            .clone()
            .unwrap_or_else(|| data_dir.join("audit.log"));
        let writer = Writer::open(path, config).map_err(|e| AuditError(e.to_string()))?;
        let (jobs, rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        std::thread::Builder::new()
            .name("credvault-audit".into())
            .spawn(move || writer.run(rx, flag))
            .map_err(|e| AuditError(e.to_string()))?;
        Ok(Self { jobs, failed })
    }

    /// Waits until `event` is written (and, with `sync`, on disk).
    pub async fn record(&self, event: Event) -> Result<(), AuditError> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(AuditError("an earlier write failed".into()));
        }
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job { event, done })
            .map_err(|_| AuditError("the writer stopped".into()))?;
        answer
            .await
            .unwrap_or_else(|_| Err(AuditError("the writer stopped".into())))
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    regular: bool,
    size: u64,
    head: String,
    lines: u64,
    sync: bool,
    max_bytes: u64,
    head_every: Duration,
}

impl Writer {
    fn open(path: PathBuf, config: &AuditConfig) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)?;
        let meta = file.metadata()?;
        let regular = meta.is_file();
        let (head, size) = if regular {
            recover(&path, &file)?
        } else {
            // A device (e.g. /dev/null, or /dev/full in tests): nothing to read back.
            (GENESIS.to_owned(), 0)
        };
        let writer = Self {
            path,
            file,
            regular,
            size,
            head,
            lines: 0,
            sync: config.durability == AuditDurability::Sync,
            max_bytes: config.max_file_bytes,
            head_every: config.head_interval,
        };
        writer.log_head("audit log open");
        Ok(writer)
    }

    fn log_head(&self, what: &str) {
        tracing::info!(
            file = %self.path.display(),
            head = %self.head,
            lines_since_start = self.lines,
            "{what}: audit chain head"
        );
    }

    fn run(mut self, jobs: mpsc::Receiver<Job>, failed: Arc<AtomicBool>) {
        let mut dirty_since: Option<Instant> = None;
        let mut head_logged = Instant::now();
        loop {
            let wait = match dirty_since {
                Some(t) => BUFFERED_SYNC.saturating_sub(t.elapsed()),
                None => self.head_every.saturating_sub(head_logged.elapsed()),
            };
            let first = match jobs.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.file.sync_data();
                    self.log_head("audit log closed");
                    return;
                }
            };
            let mut batch: Vec<Job> = first.into_iter().collect();
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let result = if failed.load(Ordering::Relaxed) {
                Err(AuditError("an earlier write failed".into()))
            } else {
                self.write(&batch, &mut dirty_since)
            };
            if let Err(e) = &result {
                if !failed.swap(true, Ordering::Relaxed) {
                    tracing::error!("{e}");
                }
            }
            for job in batch {
                let _ = job.done.send(result.clone());
            }
            if head_logged.elapsed() >= self.head_every {
                self.log_head("periodic");
                head_logged = Instant::now();
            }
        }
    }

    /// Writes a batch (if any), syncing as the durability asks; rotates past the size bound.
    fn write(
        &mut self,
        batch: &[Job],
        dirty_since: &mut Option<Instant>,
    ) -> Result<(), AuditError> {
        let fail = |e: io::Error| AuditError(e.to_string());
        if !batch.is_empty() {
            let now = SystemTime::now();
            let mut buf = Vec::with_capacity(batch.len() * 320);
            let mut head = self.head.clone();
            for job in batch {
                let line = job.event.to_line(now, &head);
                head = hex(&Sha256::digest(&line));
                buf.extend_from_slice(&line);
                buf.push(b'\n');
            }
            self.file.write_all(&buf).map_err(fail)?;
            self.size += buf.len() as u64;
            self.head = head;
            self.lines += batch.len() as u64;
            if self.sync {
                self.file.sync_data().map_err(fail)?;
            } else if dirty_since.is_none() {
                *dirty_since = Some(Instant::now());
            }
        }
        if dirty_since.is_some_and(|t| t.elapsed() >= BUFFERED_SYNC) {
            self.file.sync_data().map_err(fail)?;
            *dirty_since = None;
        }
        if self.regular && self.size >= self.max_bytes {
            self.rotate().map_err(fail)?;
            *dirty_since = None;
        }
        Ok(())
    }

    /// `audit.log` becomes `audit.log.N` (the next free N); the chain goes on in a new file.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        let n = rotated(&self.path)?.last().map_or(1, |(n, _)| n + 1);
        let target = numbered(&self.path, n);
        std::fs::rename(&self.path, &target)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.size = 0;
        tracing::info!(rotated_to = %target.display(), head = %self.head, "audit log rotated");
        Ok(())
    }
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

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        let writer = Writer::open(path.clone(), &config).unwrap();
        assert_eq!(writer.head, hex(&Sha256::digest(b"{\"prev\":\"b\"}")));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with('\n'));

        let empty = dir.path().join("empty.log");
        let writer = Writer::open(empty, &config).unwrap();
        assert_eq!(writer.head, GENESIS);
    }
}
