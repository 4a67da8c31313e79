//! The first start stays two commands: with no callers configured the real binary writes
//! `<data dir>/admin.token` (0600) and accepts it, logging only its path. Once callers are
//! configured it is accepted only if listed. `credvault token create` makes a caller's token and
//! the block to paste.

#[path = "common/child.rs"]
mod child;
mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use child::{data_dir, ChildServer, Launch};
use common::{add_request, client_with, token_credential};
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_credvault");

/// `credvault token create ...`: (token, the [[callers]] block).
fn token_create(args: &[&str]) -> (String, String) {
    let out = Command::new(BIN)
        .args(["token", "create"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    (token, String::from_utf8(out.stderr).unwrap())
}

fn with_config(path: &std::path::Path) -> Launch {
    Launch {
        args: vec!["--config".into(), path.display().to_string()],
        ..Launch::default()
    }
}

// Multi-threaded: `wait_exit` blocks this thread while the clients' connections answer the
// server's GOAWAY on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_token_works_until_callers_are_configured() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(root.path());
    let mut server = ChildServer::start(&data);
    let token_path = data.join("admin.token");
    let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let admin = server.admin_token();
    assert!(admin.starts_with("cvt_"), "{admin}");
    let log = server.log();
    assert!(log.contains(&token_path.display().to_string()), "{log}");
    assert!(!log.contains(&admin), "the token is in the log");

    server
        .client()
        .await
        .add(add_request("acme", "prod", token_credential()))
        .await
        .unwrap();
    let mut no_token = credvault::proto::v1::credential_vault_client::CredentialVaultClient::new(
        server.channel().await,
    );
    let e = no_token
        .resolve(common::resolve_request("acme", "prod"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    server.sigterm();
    server
        .wait_exit(std::time::Duration::from_secs(15))
        .unwrap();

    // A configured caller replaces the bootstrap token.
    let (sender, block) =
        token_create(&["--name", "sender", "--scope", "resolve", "--owner", "acme"]);
    assert!(
        sender.starts_with("cvt_") && !block.contains(&sender),
        "{block}"
    );
    let config = root.path().join("credvault.toml");
    std::fs::write(&config, &block).unwrap();
    let check = Command::new(BIN)
        .args(["config", "check", &config.display().to_string()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{check:?}");

    let mut server = ChildServer::start_with(&data, &with_config(&config));
    let channel = server.channel().await;
    let e = client_with(channel.clone(), &admin)
        .resolve(common::resolve_request("acme", "prod"))
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::Unauthenticated,
        "the bootstrap token still works"
    );
    client_with(channel.clone(), &sender)
        .resolve(common::resolve_request("acme", "prod"))
        .await
        .unwrap();
    server.sigterm();
    server
        .wait_exit(std::time::Duration::from_secs(15))
        .unwrap();

    // Listed, the bootstrap token works again.
    let hash = credvault::auth::token::TokenHash::of(&admin).hex();
    std::fs::write(
        &config,
        format!("{block}\n[[callers]]\nname = \"admin\"\ntoken_sha256 = \"{hash}\"\nscopes = [\"resolve\"]\nowners = [\"*\"]\n"),
    )
    .unwrap();
    let server = ChildServer::start_with(&data, &with_config(&config));
    client_with(server.channel().await, &admin)
        .resolve(common::resolve_request("acme", "prod"))
        .await
        .unwrap();
}

#[test]
fn token_create_refuses_a_bad_caller() {
    let out = Command::new(BIN)
        .args([
            "token", "create", "--name", "x", "--scope", "root", "--owner", "acme",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "a token was printed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope"));
}
