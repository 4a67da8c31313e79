//! Running the real `credvault` binary's client subcommands against a Validate test bench, and
//! reading what they printed: shared by the CLI test binaries (the runner itself is
//! `common::bin`).
#![allow(dead_code)] // each test binary uses a different part

use std::process::Output;

use crate::common::bin::cli_at;
use crate::common::*;
use crate::validate_env::{Env, OWNER};

/// Runs `credvault ARGS` against `env`'s server, off the runtime (the server keeps serving).
pub async fn cli(env: &Env, args: &[&str], stdin: Option<&str>) -> Output {
    cli_at(env.server.addr, args, stdin).await
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[track_caller]
pub fn exits(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

pub fn add_args<'a>(label: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "add",
        OWNER,
        label,
        "--account-sid",
        ACCOUNT_SID,
        "--messaging-service-sid",
        MG_SID,
        "--secret-stdin",
    ];
    args.extend_from_slice(extra);
    args
}
