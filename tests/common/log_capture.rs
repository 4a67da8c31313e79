//! Every log line of a test binary (all crates, at a chosen level) captured into one buffer, for
//! tests that check what reaches the logs. Installs the binary's global subscriber once.
#![allow(dead_code)] // each test binary uses a different part

use std::sync::{Arc, Mutex, OnceLock};

/// The buffer, after installing the subscriber with `filter` on first use (later calls keep the
/// first filter: a process has one global subscriber).
pub fn captured(filter: &str) -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .init();
        logs
    })
}

/// What was logged so far, as text.
pub fn text(logs: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
