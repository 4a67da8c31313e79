//! The TOML config file, through the real binary: file < environment < flags; an unknown key in
//! the file stops the start (naming key, file and line) before any disk is touched; an unknown
//! CREDVAULT_* variable is only a warning; `config check` prints the effective config.

#[path = "common/child.rs"]
mod child;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use child::{data_dir, ChildServer, Launch};

const BIN: &str = env!("CARGO_BIN_EXE_credvault");

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("credvault.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn credvault(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("CREDVAULT_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_file_is_overridden_by_the_environment_which_is_overridden_by_flags() {
    let root = tempfile::tempdir().unwrap();
    let from_file = root.path().join("from-file");
    let from_flag = root.path().join("from-flag");
    // The harness sets CREDVAULT_LISTEN=127.0.0.1:0 and CREDVAULT_DATA_DIR: the port from the
    // file (1, privileged) must lose to the first, and the flag must win over the second.
    let file = write(
        root.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n\n[store]\ndata_dir = {:?}\n\n[log]\nformat = \"json\"\n",
            from_file.display()
        ),
    );
    let launch = Launch {
        args: vec![
            "--config".into(),
            file,
            "--data-dir".into(),
            from_flag.display().to_string(),
        ],
        ..Launch::default()
    };
    let server = ChildServer::start_with(&data_dir(root.path()), &launch);
    assert_ne!(
        server.addr.port(),
        1,
        "the environment's listen lost to the file"
    );
    assert!(
        from_flag.join("credvault.initialized").exists(),
        "the flag's data dir is not in use"
    );
    assert!(!from_file.exists(), "the file's data dir was used");
    assert!(
        !data_dir(root.path()).exists(),
        "the environment's data dir won over the flag"
    );
    // The file's own setting took effect: JSON lines.
    let log = server.log();
    let first = log.lines().next().unwrap();
    serde_json::from_str::<serde_json::Value>(first).unwrap_or_else(|e| panic!("{e}: {first}"));
}

#[test]
fn an_unknown_key_is_an_error_naming_key_file_and_line_and_touches_no_disk() {
    let cwd = tempfile::tempdir().unwrap();
    let file = write(
        cwd.path(),
        "[limits]\nmax_connections = 10\nmax_conections = 10\n",
    );
    for args in [&["--config", &file][..], &["config", "check", &file]] {
        let out = credvault(cwd.path(), args, &[("CREDVAULT_LISTEN", "127.0.0.1:0")]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{file} line 3")), "{err}");
        assert!(err.contains("unknown key `limits.max_conections`"), "{err}");
        let entries: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "only the config file: {entries:?}");
    }
    // The same holds for CREDVAULT_CONFIG.
    let out = credvault(
        cwd.path(),
        &[],
        &[
            ("CREDVAULT_CONFIG", &file),
            ("CREDVAULT_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn an_unknown_environment_variable_is_a_warning_not_an_error() {
    let root = tempfile::tempdir().unwrap();
    // What Kubernetes injects into every pod when a Service is named credvault.
    let launch = Launch {
        env: vec![
            ("CREDVAULT_PORT".into(), "tcp://10.0.0.7:50051".into()),
            ("CREDVAULT_SERVICE_HOST".into(), "10.0.0.7".into()),
        ],
        ..Launch::default()
    };
    let server = ChildServer::start_with(&data_dir(root.path()), &launch);
    let log = server.log();
    for var in ["CREDVAULT_PORT", "CREDVAULT_SERVICE_HOST"] {
        assert!(
            log.lines().any(|l| l.contains("WARN") && l.contains(var)),
            "no warning for {var}:\n{log}"
        );
    }
}

#[test]
fn config_check_prints_the_effective_config_and_fails_on_a_bad_value() {
    let cwd = tempfile::tempdir().unwrap();
    let file = write(
        cwd.path(),
        "[limits]\nmax_in_flight = 7\nrpc_timeout_ms = 5000\n",
    );
    let out = credvault(
        cwd.path(),
        &["config", "check", &file],
        &[
            ("CREDVAULT_RPC_TIMEOUT_MS", "9000"),
            ("CREDVAULT_PORT", "x"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let shown = String::from_utf8(out.stdout).unwrap();
    let line = |key: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in\n{shown}"))
            .to_owned()
    };
    assert!(line("max_in_flight").contains("= 7 "), "{shown}");
    assert!(
        line("max_in_flight").ends_with(&format!("# {file} line 2")),
        "{shown}"
    );
    assert!(line("rpc_timeout_ms").contains("= 9000 "), "{shown}");
    assert!(
        line("rpc_timeout_ms").ends_with("# env CREDVAULT_RPC_TIMEOUT_MS"),
        "{shown}"
    );
    assert!(line("max_connections").ends_with("# default"), "{shown}");
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("warning: ignoring unknown environment variable CREDVAULT_PORT"));

    // What it printed is itself a valid config file.
    let again = write(cwd.path(), &shown);
    let out = credvault(cwd.path(), &["config", "check", &again], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    for (text, env, needle) in [
        (
            "[server]\nlisten = \"nope\"\n",
            None,
            "line 2: invalid server.listen",
        ),
        (
            "",
            Some(("CREDVAULT_MAX_CONNECTIONS", "0")),
            "CREDVAULT_MAX_CONNECTIONS: invalid",
        ),
        (
            "[twilio]\napi_base = \"http://api.twilio.com\"\n",
            None,
            "http://",
        ),
        (
            "[tls]\ncert_file = \"/nonexistent/cert.pem\"\nkey_file = \"/nonexistent/key.pem\"\n",
            None,
            "/nonexistent/cert.pem",
        ),
    ] {
        let file = write(cwd.path(), text);
        let env: Vec<_> = env.into_iter().collect();
        let out = credvault(cwd.path(), &["config", "check", &file], &env);
        assert_eq!(out.status.code(), Some(2), "{text}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}
