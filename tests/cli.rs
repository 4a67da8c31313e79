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
    for command in [
        &["serve"][..],
        &["config", "check"],
        &["add"],
        &["list"],
        &["validate"],
        &["resolve"],
        &["delete"],
        &["health"],
    ] {
        let args = [command, &["--help"]].concat();
        let help = String::from_utf8(run(cwd.path(), &args).stdout).unwrap();
        assert!(help.contains("Example"), "{args:?} has no example:\n{help}");
    }
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

#[path = "common/child.rs"]
mod child;
mod common;

/// Every line of a request carries its id (the caller's `x-request-id`, or one made by the
/// server), the reply echoes it, and a write ends with one INFO line naming RPC, owner, label,
/// peer, code and duration. Reads stay at DEBUG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_logged_and_echoed_and_writes_log_one_line_each() {
    let root = tempfile::tempdir().unwrap();
    let launch = child::Launch {
        env: vec![("CREDVAULT_LOG_FORMAT".into(), "json".into())],
        ..Default::default()
    };
    let server = child::ChildServer::start_with(&child::data_dir(root.path()), &launch);
    let mut client = server.client().await;
    let mut add = tonic::Request::new(common::add_request(
        "acme",
        "prod",
        common::token_credential(),
    ));
    add.metadata_mut()
        .insert("x-request-id", "req-abc-123".parse().unwrap());
    let reply = client.add(add).await.unwrap();
    assert_eq!(reply.metadata().get("x-request-id").unwrap(), "req-abc-123");
    // An error reply echoes it too, and a request without one gets one made up.
    let err = client
        .add(common::add_request(
            "acme",
            "prod",
            common::token_credential(),
        ))
        .await
        .unwrap_err();
    let made = err
        .metadata()
        .get("x-request-id")
        .expect("an id is made up");
    assert!(!made.is_empty() && made != "req-abc-123");
    client
        .resolve(common::resolve_request("acme", "prod"))
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let lines: Vec<serde_json::Value> = loop {
        let lines: Vec<serde_json::Value> = server
            .log()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let dones = lines
            .iter()
            .filter(|v| v["fields"]["message"] == "rpc done")
            .count();
        if dones >= 2 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let of = |id: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|v| v["span"]["request_id"] == id)
            .collect()
    };
    let first = of("req-abc-123");
    assert!(
        first
            .iter()
            .any(|v| v["fields"]["message"] == "credential stored"),
        "{first:?}"
    );
    let done = first
        .iter()
        .find(|v| v["fields"]["message"] == "rpc done")
        .unwrap_or_else(|| panic!("no completion line: {first:?}"));
    assert_eq!(done["level"], "INFO");
    assert_eq!(done["span"]["rpc"], "/credvault.v1.CredentialVault/Add");
    assert_eq!(
        (
            done["span"]["owner"].as_str(),
            done["span"]["label"].as_str()
        ),
        (Some("acme"), Some("prod"))
    );
    assert!(
        done["span"]["peer"]
            .as_str()
            .is_some_and(|p| p.contains("127.0.0.1")),
        "{done}"
    );
    assert_eq!(done["fields"]["code"], "Ok");
    assert!(done["fields"]["elapsed_ms"].is_number());
    let second = of(made.to_str().unwrap());
    assert!(
        second
            .iter()
            .any(|v| v["fields"]["message"] == "rpc done" && v["fields"]["code"] == "AlreadyExists"),
        "{second:?}"
    );
    // The Resolve (a hot read) logged nothing at INFO.
    assert!(
        !lines
            .iter()
            .any(|v| v["span"]["rpc"] == "/credvault.v1.CredentialVault/Resolve"),
        "a read logged at INFO"
    );
}
