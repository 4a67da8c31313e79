//! The audit log over real gRPC: a line for every CredentialVault RPC, allowed or denied, with
//! no secret, token or full test number; the chain catches each kind of tampering, across
//! rotations and restarts; and an audit log that cannot be written fails the RPC closed.

mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use std::path::{Path, PathBuf};

use common::*;
use credvault::audit::{verify, VerifyError};
use tonic::Code;
use validate_env::*;

const READER: &str = "cvt_reader-token-list-and-resolve-acme-0000";

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test]
async fn every_rpc_allowed_or_denied_gets_a_line_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let mut env = env_with(|c| {
        c.audit.path = Some(log.clone());
        c.callers
            .push(caller("reader", READER, &["resolve"], &["acme"]));
    })
    .await;
    env.add("prod", token_credential()).await;
    env.validate("prod", "+14155550123", "").await.unwrap();
    env.resolve_valid("prod").await.unwrap();
    let channel = env.server.channel().await;
    let e = client_with(channel.clone(), "cvt_nobody-has-this-token-000000000000000")
        .resolve(resolve_request(OWNER, "prod"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = client_with(channel, READER)
        .resolve(resolve_request(OWNER, "prod"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    env.delete("prod").await;
    drop(env);

    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [AUTH_TOKEN, TEST_TOKEN, READER, "4155550123"] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    let got: Vec<_> = lines(&log)
        .iter()
        .map(|l| {
            (
                l["method"].as_str().unwrap().to_owned(),
                l["caller"].as_str().unwrap_or("-").to_owned(),
                l["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("Add", "tests", "OK"),
        ("Validate", "tests", "OK"),
        ("Resolve", "tests", "OK"),
        ("Resolve", "-", "UNAUTHENTICATED"),
        ("Resolve", "reader", "PERMISSION_DENIED"),
        ("Delete", "tests", "OK"),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(m, c, k)| (m.to_string(), c.to_string(), k.to_string()))
        .collect();
    assert_eq!(got, want);
    let validate = &lines(&log)[1];
    assert_eq!(validate["test_recipient"], "+14*******23");
    for l in lines(&log) {
        assert_eq!(l["owner"], OWNER);
        assert!(
            l["request_id"].as_str().is_some_and(|id| !id.is_empty()),
            "{l}"
        );
        assert!(
            l["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.0.0.1:")),
            "{l}"
        );
        assert!(
            l["duration_ms"].as_f64().is_some() && l["time"].is_string(),
            "{l}"
        );
    }
    let v = verify(&[log], None).unwrap();
    assert_eq!((v.lines, v.anchor.as_str()), (6, credvault::audit::GENESIS));
}

/// A log of `n` lines from a real server (Resolve of a missing label: a line each).
async fn log_of(dir: &Path, n: usize, max_file_bytes: Option<u64>) -> PathBuf {
    let log = dir.join("audit.log");
    let mut c = config(dir);
    c.audit.path = Some(log.clone());
    if let Some(max) = max_file_bytes {
        c.audit.max_file_bytes = max;
    }
    let server = TestServer::start(c).await;
    let mut client = server.client().await;
    for _ in 0..n {
        let e = client
            .resolve(resolve_request("acme", "missing"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    }
    drop(client);
    server.stop().await.unwrap();
    log
}

/// One way to tamper with the lines of a log.
type Tamper = fn(&mut Vec<String>);

fn edit(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    f(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn verify_catches_an_edit_a_removal_an_insertion_a_reordering_and_a_cut_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 6, None).await;
    let pristine = std::fs::read(&log).unwrap();
    let head = verify(std::slice::from_ref(&log), None).unwrap().head;

    let cases: [(&str, Tamper); 4] = [
        ("edited", |l| l[2] = l[2].replace("missing", "missinG")),
        ("removed", |l| {
            l.remove(3);
        }),
        ("inserted", |l| {
            let copy = l[1].clone();
            l.insert(4, copy)
        }),
        ("reordered", |l| l.swap(1, 2)),
    ];
    for (what, tamper) in cases {
        std::fs::write(&log, &pristine).unwrap();
        edit(&log, tamper);
        let e = verify(std::slice::from_ref(&log), None).unwrap_err();
        assert!(matches!(e, VerifyError::Broken { .. }), "{what}: {e}");
    }
    // A cut tail leaves a valid chain: only the logged head shows it.
    std::fs::write(&log, &pristine).unwrap();
    edit(&log, |l| {
        l.pop();
    });
    verify(std::slice::from_ref(&log), None).unwrap();
    let e = verify(std::slice::from_ref(&log), Some(&head)).unwrap_err();
    assert!(matches!(e, VerifyError::HeadMissing(_)), "{e}");

    // The CLI: 0 for the pristine file, 1 for a broken one.
    std::fs::write(&log, &pristine).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_credvault"))
            .args(["audit", "verify"])
            .args(args)
            .output()
            .unwrap()
    };
    let path = log.to_str().unwrap();
    let out = run(&[path, "--head", &head]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 6 lines"));
    edit(&log, |l| l.swap(0, 1));
    let out = run(&[path]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{out:?}"
    );
}

#[tokio::test]
async fn the_chain_continues_across_rotations_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(dir.path(), 30, Some(2000)).await;
    log_of(dir.path(), 5, Some(2000)).await;
    let mut files: Vec<PathBuf> = credvault::audit::rotated(&log)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert!(files.len() >= 3, "no rotation: {files:?}");
    files.push(log);
    let v = verify(&files, None).unwrap();
    assert_eq!(v.lines, 35);
    assert_eq!(v.anchor, credvault::audit::GENESIS);
    // Out of order, the files do not chain.
    files.swap(0, 1);
    assert!(verify(&files, None).is_err());
}

#[tokio::test]
async fn an_audit_log_that_cannot_be_written_fails_the_rpc_closed() {
    // Both durabilities: `buffered` writes the line before the answer too; only its fsync waits.
    for durability in [
        credvault::config::AuditDurability::Sync,
        credvault::config::AuditDurability::Buffered,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.audit.path = Some("/dev/full".into());
        c.audit.durability = durability;
        let server = TestServer::start(c).await;
        let mut client = server.client().await;
        let e = client
            .add(add_request("acme", "prod", token_credential()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unavailable, "{durability:?}: {e:?}");
        assert!(e.message().contains("audit log"), "{e:?}");
        // The write itself is durable (the store answered first); its Resolve is refused whole.
        for _ in 0..2 {
            let e = client
                .resolve(resolve_request("acme", "prod"))
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::Unavailable, "{durability:?}: {e:?}");
            assert!(!format!("{e:?}").contains(AUTH_TOKEN));
        }
    }
}
