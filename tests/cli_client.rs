//! The client subcommands of the real binary against a real server (with a fake Twilio): the
//! secret comes from stdin and is never in argv, the environment or a log; `list -o json` is one
//! object per line; each documented exit code comes out where it should.

#[path = "common/cli_run.rs"]
mod cli_run;
mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cli_run::*;
use common::bin::*;
use common::*;
use validate_env::*;

#[tokio::test]
async fn the_secret_comes_from_stdin_and_never_shows_in_argv_environ_output_or_logs() {
    let env = env().await;
    let addr = format!("http://{}", env.server.addr);
    let args: Vec<String> = add_args("prod", &["-o", "json"])
        .iter()
        .map(|a| a.to_string())
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .args(&args)
            .env("CREDVAULT_ADDR", addr)
            .env("CREDVAULT_TOKEN_FILE", token_file(TEST_TOKEN))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // While it waits for the secret, what `ps` (and /proc) can see of it holds none.
        let proc_dir = format!("/proc/{}", child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read(format!("{proc_dir}/cmdline"))
            .map(|c| !c.windows(3).any(|w| w == b"add"))
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "the child never showed up");
            std::thread::sleep(Duration::from_millis(10));
        }
        for file in ["cmdline", "environ"] {
            let seen = std::fs::read(format!("{proc_dir}/{file}")).unwrap();
            no_secret(&String::from_utf8_lossy(&seen));
        }
        let ps = Command::new("ps").args(["-eo", "args"]).output();
        if let Ok(ps) = ps {
            no_secret(&String::from_utf8_lossy(&ps.stdout));
        }
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{AUTH_TOKEN}").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    exits(&out, 0);
    // The hint is the last four characters; the newline was not taken into the secret.
    let reply: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(reply["credential"]["secretHint"], &AUTH_TOKEN[28..]);
    no_secret(&stdout(&out));
    no_secret(&stderr(&out));

    // The stored secret is exactly what was piped in.
    let resolved = cli(&env, &["resolve", OWNER, "prod", "-o", "json"], None).await;
    exits(&resolved, 0);
    let resolved: serde_json::Value = serde_json::from_str(stdout(&resolved).trim()).unwrap();
    assert_eq!(resolved["password"], AUTH_TOKEN);
    // The table hides it unless asked.
    let table = cli(&env, &["resolve", OWNER, "prod"], None).await;
    exits(&table, 0);
    no_secret(&stdout(&table));
    assert!(
        stdout(&table).contains(&AUTH_TOKEN[28..]),
        "{}",
        stdout(&table)
    );
    let shown = cli(&env, &["resolve", OWNER, "prod", "--show-secrets"], None).await;
    assert!(stdout(&shown).contains(AUTH_TOKEN));

    no_secret(&log_capture::text(logs()));
}

#[tokio::test]
async fn list_pages_through_everything_as_json_lines_or_one_page_when_asked() {
    let env = env().await;
    for label in ["a", "b", "c"] {
        exits(&cli(&env, &add_args(label, &[]), Some(AUTH_TOKEN)).await, 0);
    }
    let labels = |out: &Output| -> Vec<String> {
        stdout(out)
            .lines()
            .map(|line| {
                let m: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(m["owner"], OWNER);
                assert_eq!(m["validation"]["state"], "VALIDATION_STATE_UNVALIDATED");
                m["label"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let all = cli(&env, &["list", OWNER, "-o", "json"], None).await;
    exits(&all, 0);
    assert_eq!(labels(&all), ["a", "b", "c"]);

    let first = cli(
        &env,
        &["list", OWNER, "-o", "json", "--page-size", "2"],
        None,
    )
    .await;
    exits(&first, 0);
    assert_eq!(labels(&first), ["a", "b"]);
    let token = stderr(&first)
        .trim()
        .strip_prefix("next page: --page-token ")
        .unwrap_or_else(|| panic!("{}", stderr(&first)))
        .to_owned();
    let rest = cli(
        &env,
        &[
            "list",
            OWNER,
            "-o",
            "json",
            "--page-size",
            "2",
            "--page-token",
            &token,
        ],
        None,
    )
    .await;
    exits(&rest, 0);
    assert_eq!(labels(&rest), ["c"]);
    assert_eq!(stderr(&rest), "", "the last page has no next token");

    let table = cli(&env, &["list", OWNER], None).await;
    exits(&table, 0);
    let lines: Vec<_> = stdout(&table).lines().map(str::to_owned).collect();
    assert!(lines[0].starts_with("LABEL"), "{lines:?}");
    assert_eq!(lines.len(), 4, "{lines:?}");
}

#[tokio::test]
async fn each_documented_exit_code_and_the_server_s_details() {
    let env = env().await;
    exits(
        &cli(&env, &add_args("prod", &[]), Some(AUTH_TOKEN)).await,
        0,
    );

    // 4: ALREADY_EXISTS.
    let taken = cli(&env, &add_args("prod", &[]), Some(AUTH_TOKEN)).await;
    exits(&taken, 4);
    assert!(
        stderr(&taken).starts_with("error: ALREADY_EXISTS:"),
        "{}",
        stderr(&taken)
    );
    assert!(
        stderr(&taken).contains("request id: "),
        "{}",
        stderr(&taken)
    );

    // 5: INVALID_ARGUMENT, each field named from the BadRequest detail.
    let bad = cli(&env, &add_args("Bad Label", &[]), Some("short")).await;
    exits(&bad, 5);
    let err = stderr(&bad);
    assert!(err.contains("  field label: "), "{err}");
    assert!(
        err.contains("  field credential.auth_token.auth_token: "),
        "{err}"
    );
    assert!(!err.contains("short"), "the secret is echoed: {err}");

    // 7: FAILED_PRECONDITION (never validated).
    let unvalidated = cli(&env, &["resolve", OWNER, "prod", "--require-valid"], None).await;
    exits(&unvalidated, 7);

    // 8: Twilio rejects the credential (an OK RPC), then 0 once it accepts it again.
    env.fake.update(|a| a.status = "suspended");
    let invalid = cli(&env, &["validate", OWNER, "prod"], None).await;
    exits(&invalid, 8);
    assert!(stdout(&invalid).contains("valid:"), "{}", stdout(&invalid));
    env.fake.update(|a| a.status = "active");
    let valid = cli(&env, &["validate", OWNER, "prod", "-o", "json"], None).await;
    exits(&valid, 0);
    let reply: serde_json::Value = serde_json::from_str(stdout(&valid).trim()).unwrap();
    assert_eq!(reply["result"]["valid"], true);
    exits(
        &cli(&env, &["resolve", OWNER, "prod", "--require-valid"], None).await,
        0,
    );

    // 0 then 3: NOT_FOUND.
    exits(&cli(&env, &["delete", OWNER, "prod"], None).await, 0);
    let gone = cli(&env, &["delete", OWNER, "prod"], None).await;
    exits(&gone, 3);
    assert!(
        stderr(&gone).starts_with("error: NOT_FOUND:"),
        "{}",
        stderr(&gone)
    );

    // 2: usage, before anything is sent: a missing argument, or no way to read the secret.
    exits(&cli(&env, &["delete", OWNER], None).await, 2);
    let no_secret_source = cli(&env, &add_args("x", &[])[..7], None).await;
    exits(&no_secret_source, 2);
    assert!(stderr(&no_secret_source).contains("--secret-stdin"));

    // 0 and then 1: health, then a server that is not there (a transport error).
    let health = cli(&env, &["health"], None).await;
    exits(&health, 0);
    assert_eq!(stdout(&health).trim(), "SERVING");
    let addr = env.server.addr;
    drop(env);
    let out = cli_at(addr, &["health", "--timeout", "2s"], None).await;
    exits(&out, 1);
    assert!(
        stderr(&out).contains("cannot connect to"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn unauthenticated_and_permission_denied_exit_6() {
    let env = env_with(|c| {
        c.callers.push(caller(
            "lister",
            "cvt_lister-token-000000000000000000000000",
            &["list"],
            &["other"],
        ))
    })
    .await;
    let run = |token: Option<&str>, args: &'static [&'static str]| {
        let addr = format!("http://{}", env.server.addr);
        let file = token.map(token_file);
        async move {
            tokio::task::spawn_blocking(move || {
                let mut c = Command::new(BIN);
                c.args(args)
                    .env("CREDVAULT_ADDR", addr)
                    .stdin(Stdio::null());
                match file {
                    Some(f) => c.env("CREDVAULT_TOKEN_FILE", f),
                    None => c
                        .env_remove("CREDVAULT_TOKEN_FILE")
                        .env("CREDVAULT_DATA_DIR", "/nonexistent"),
                };
                c.output().unwrap()
            })
            .await
            .unwrap()
        }
    };
    // No token file at all: a usage error, before anything is sent.
    let out = run(None, &["list", "team-a"]).await;
    exits(&out, 2);
    assert!(stderr(&out).contains("--token-file"), "{}", stderr(&out));
    // An unknown token: UNAUTHENTICATED.
    let out = run(
        Some("cvt_not-a-known-token-0000000000000000000000"),
        &["list", "team-a"],
    )
    .await;
    exits(&out, 6);
    assert!(
        stderr(&out).starts_with("error: UNAUTHENTICATED:"),
        "{}",
        stderr(&out)
    );
    // A known caller without the scope, or without the owner: PERMISSION_DENIED.
    let lister = "cvt_lister-token-000000000000000000000000";
    let out = run(Some(lister), &["resolve", "other", "prod"]).await;
    exits(&out, 6);
    assert!(
        stderr(&out).contains("lacks the 'resolve' scope"),
        "{}",
        stderr(&out)
    );
    let out = run(Some(lister), &["list", "team-a"]).await;
    exits(&out, 6);
    assert!(
        stderr(&out).starts_with("error: PERMISSION_DENIED:"),
        "{}",
        stderr(&out)
    );
    exits(&run(Some(lister), &["list", "other"]).await, 0);
}

/// `credvault list acme -o json | head -1`: the reader goes away; the CLI ends quietly with
/// 141 (as SIGPIPE would), not with a panic.
#[tokio::test]
async fn a_closed_stdout_pipe_ends_the_cli_quietly() {
    let mut env = env().await;
    for i in 0..400 {
        env.add(&format!("piped-{i:03}"), token_credential()).await;
    }
    let addr = format!("http://{}", env.server.addr);
    let (code, err) = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut child = Command::new(BIN)
            .args(["list", OWNER, "-o", "json"])
            .env("CREDVAULT_ADDR", addr)
            .env("CREDVAULT_TOKEN_FILE", token_file(TEST_TOKEN))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("piped-000"), "{first}");
        // The reader is dropped here: the pipe closes with most of the listing unread.
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(code, Some(141), "{err}");
}
