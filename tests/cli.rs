//! The `credvault` command line, driven as a user would: help and version touch no disk, usage
//! errors exit 2, and the server's logs read well in a file (no ANSI) and as JSON.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_credvault");

/// Runs the binary in the empty dir `cwd` (so a stray data dir would show up there).
fn run(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("CREDVAULT_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .output()
        .expect("run credvault")
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn help_and_version_print_and_exit_0_without_touching_the_disk() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["-h"],
        &["--version"],
        &["-V"],
        &["serve", "--help"],
        &["help", "serve"],
    ] {
        let out = run(cwd.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(!out.stdout.is_empty(), "{args:?} printed nothing");
        assert_eq!(
            entries(cwd.path()),
            Vec::<String>::new(),
            "{args:?} wrote files"
        );
    }
    let version = String::from_utf8(run(cwd.path(), &["--version"]).stdout).unwrap();
    assert!(
        version.starts_with(&format!("credvault {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // Built from this git checkout: the commit is named.
    assert!(version.contains("(commit "), "{version}");
    let help = String::from_utf8(run(cwd.path(), &["serve", "--help"]).stdout).unwrap();
    assert!(help.contains("Example:"), "{help}");
}

#[test]
fn usage_errors_exit_2_with_clap_s_message_and_touch_no_disk() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        &["--bogus"][..],
        &["frobnicate"],
        &["serve", "--listen", "not-an-address"],
        &["--log-format", "xml"],
    ] {
        let out = run(cwd.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error:") && err.contains("--help"),
            "{args:?}: {err}"
        );
        assert_eq!(
            entries(cwd.path()),
            Vec::<String>::new(),
            "{args:?} wrote files"
        );
    }
}

/// Starts the server with `args` and stderr piped, returns the lines logged until it serves,
/// then stops it.
fn logs_until_serving(args: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir.path())
        .env("CREDVAULT_LISTEN", "127.0.0.1:0")
        .env("CREDVAULT_TWILIO_API_BASE", "http://127.0.0.1:9")
        .env("CREDVAULT_TWILIO_MESSAGING_BASE", "http://127.0.0.1:9")
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("CREDVAULT_LOG_FORMAT")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("credvault serving");
        lines.push(line);
        if done || Instant::now() > deadline {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.contains("credvault serving")),
        "never served: {lines:?}"
    );
    lines
}

#[test]
fn text_logs_to_a_pipe_carry_no_ansi_escapes_and_name_the_version() {
    let lines = logs_until_serving(&[]);
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "ANSI escape in {line:?}");
    }
    let serving = lines.last().unwrap();
    assert!(
        serving.contains(env!("CARGO_PKG_VERSION")),
        "the start-up line does not name the version: {serving}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let lines = logs_until_serving(&["serve", "--log-format", "json"]);
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
    }
    let serving: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(serving["fields"]["message"], "credvault serving");
    assert!(serving["fields"]["addr"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
}
