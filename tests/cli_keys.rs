//! The key-management and backup subcommands of the real binary against a real server: `keys
//! status|rotate|rewrap|retire|rotate-root`, `backup` and `restore`, their output and exit codes.

#[path = "common/cli_run.rs"]
mod cli_run;
mod common;
#[path = "common/fake_twilio/mod.rs"]
mod fake_twilio;
#[path = "common/validate_env.rs"]
mod validate_env;

use std::process::Command;

use cli_run::*;
use common::bin::*;
use common::*;
use validate_env::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_status_and_rotate() {
    let env = env().await;
    exits(
        &cli(&env, &add_args("keyed", &[]), Some(AUTH_TOKEN)).await,
        0,
    );
    let out = cli(&env, &["keys", "status"], None).await;
    exits(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("active key 1"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("1 ") && l.contains("active")),
        "{text}"
    );

    let out = cli(&env, &["keys", "rotate"], None).await;
    exits(&out, 0);
    assert!(
        stdout(&out).contains("data key 2 is active"),
        "{}",
        stdout(&out)
    );

    let out = cli(&env, &["keys", "status", "-o", "json"], None).await;
    exits(&out, 0);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["activeKeyId"], 2, "{status}");
    let keys = status["keys"].as_array().unwrap();
    assert_eq!(keys[0]["state"], "DATA_KEY_STATE_DECRYPT_ONLY");
    assert_eq!(keys[0]["records"], "1", "uint64 is a string in proto3 JSON");
    assert_eq!(keys[1]["state"], "DATA_KEY_STATE_ACTIVE");
}

#[tokio::test]
async fn keys_rewrap_follows_the_pass_to_the_end_and_retire_then_succeeds() {
    let env = env().await;
    exits(
        &cli(&env, &add_args("wrapped", &[]), Some(AUTH_TOKEN)).await,
        0,
    );
    exits(&cli(&env, &["keys", "rotate"], None).await, 0);
    let out = cli(&env, &["keys", "retire", "1"], None).await;
    exits(&out, 7);
    assert!(stderr(&out).contains("1 record(s)"), "{}", stderr(&out));

    let out = cli(&env, &["keys", "rewrap"], None).await;
    exits(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("rewrap done: 1 record(s), 1 re-encrypted to data key 2"),
        "{text}"
    );

    let out = cli(&env, &["keys", "rewrap", "--detach", "-o", "json"], None).await;
    exits(&out, 0);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["targetKeyId"], 2, "{status}");

    exits(&cli(&env, &["keys", "retire", "1"], None).await, 0);
    exits(&cli(&env, &["resolve", OWNER, "wrapped"], None).await, 0);
}

#[tokio::test]
async fn backup_then_restore_into_a_new_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("root.key");
    std::fs::write(&key, [0x5a; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = env_with(|c| c.master_key_file = Some(key.clone())).await;
    exits(
        &cli(&env, &add_args("saved", &[]), Some(AUTH_TOKEN)).await,
        0,
    );
    let out_file = keys.path().join("vault.backup");
    let out_arg = out_file.display().to_string();
    let out = cli(&env, &["backup", "--out", &out_arg, "-o", "json"], None).await;
    exits(&out, 0);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["records"], 1, "{report}");
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    let mode = std::fs::metadata(&out_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Never over an existing file.
    exits(&cli(&env, &["backup", "--out", &out_arg], None).await, 2);

    let restore = |dir: &std::path::Path| {
        Command::new(BIN)
            .args(["restore", "--in", &out_arg, "--data-dir"])
            .arg(dir)
            .env("CREDVAULT_MASTER_KEY_FILE", &key)
            .output()
            .unwrap()
    };
    let target = keys.path().join("restored");
    let out = restore(&target);
    exits(&out, 0);
    assert!(
        stdout(&out).contains("restored 1 credential(s)"),
        "{}",
        stdout(&out)
    );
    // Again into the same (now full) dir: refused, exit 7.
    let out = restore(&target);
    exits(&out, 7);
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
}

#[tokio::test]
async fn keys_rotate_root_makes_the_new_key_file_and_names_it() {
    let keys = tempfile::tempdir().unwrap();
    let env = env().await;
    let new_key = keys.path().join("root-2.key");
    let arg = new_key.display().to_string();
    let out = cli(
        &env,
        &["keys", "rotate-root", "--new-root-key-file", &arg],
        None,
    )
    .await;
    exits(&out, 0);
    assert!(
        stdout(&out).contains("keyring resealed under root key"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains(&arg), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("wrote a new root key"),
        "{}",
        stderr(&out)
    );
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&new_key).unwrap();
    assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (32, 0o600));
    // The same file again: it is the key in use now.
    let out = cli(
        &env,
        &["keys", "rotate-root", "--new-root-key-file", &arg],
        None,
    )
    .await;
    exits(&out, 7);
    let out = cli(&env, &["keys", "status", "-o", "json"], None).await;
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["rootKeyFingerprint"].as_str().unwrap().len(), 16);
}
