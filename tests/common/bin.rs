//! Running the real `credvault` binary against a test server, off the runtime.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::TEST_TOKEN;

pub const BIN: &str = env!("CARGO_BIN_EXE_credvault");

/// A file holding `token`, for `--token-file` (kept for the test binary's life). Written once,
/// by rename, so a concurrent test never reads it half-written.
pub fn token_file(token: &str) -> String {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let hash = credvault::auth::token::TokenHash::of(token).hex();
    let path = dir.path().join(format!("{hash}.token"));
    if !path.exists() {
        let tmp = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        std::fs::write(tmp.path(), format!("{token}\n")).unwrap();
        tmp.persist(&path).unwrap();
    }
    path.display().to_string()
}

/// Runs `credvault ARGS` against the server at `addr` (or where none is, any more).
pub async fn cli_at(addr: std::net::SocketAddr, args: &[&str], stdin: Option<&str>) -> Output {
    let addr = format!("http://{addr}");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .args(&args)
            .env("CREDVAULT_ADDR", addr)
            .env("CREDVAULT_TIMEOUT", "20s")
            .env("CREDVAULT_TOKEN_FILE", token_file(TEST_TOKEN))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}
