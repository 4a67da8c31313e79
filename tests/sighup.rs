//! SIGHUP re-reads the config: callers come and go while a caller in both configs keeps calling
//! on its open connection, without one failure; a broken config keeps the old one in force.

#[path = "common/child.rs"]
mod child;
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use child::{data_dir, ChildServer, Launch};
use common::{add_request, client_with, resolve_request, token_credential};
use credvault::auth::token::TokenHash;
use tonic::Code;

const STAYS: &str = "cvt_stays-in-both-configs-00000000000000000";
const LEAVES: &str = "cvt_leaves-at-the-reload-0000000000000000000";
const ARRIVES: &str = "cvt_arrives-at-the-reload-000000000000000000";

fn caller(name: &str, token: &str) -> String {
    format!(
        "[[callers]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nscopes = [\"write\", \"resolve\"]\nowners = [\"*\"]\n\n",
        TokenHash::of(token).hex()
    )
}

/// Polls `f` until it is true, for at most 10 s.
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_callers_under_load_and_a_broken_config_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("credvault.toml");
    std::fs::write(&config, caller("stays", STAYS) + &caller("leaves", LEAVES)).unwrap();
    let launch = Launch {
        args: vec!["--config".into(), config.display().to_string()],
        ..Launch::default()
    };
    let server = ChildServer::start_with(&data_dir(root.path()), &launch);
    let channel = server.channel().await;
    client_with(channel.clone(), STAYS)
        .add(add_request("acme", "prod", token_credential()))
        .await
        .unwrap();

    // Load: the caller in both configs resolves on one connection throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn({
        let (channel, stop, done) = (channel.clone(), stop.clone(), done.clone());
        async move {
            let mut c = client_with(channel, STAYS);
            while !stop.load(Ordering::Relaxed) {
                c.resolve(resolve_request("acme", "prod")).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, tonic::Status>(())
        }
    });

    let code = |token: &'static str| {
        let channel = channel.clone();
        async move {
            match client_with(channel, token)
                .resolve(resolve_request("acme", "prod"))
                .await
            {
                Ok(_) => Code::Ok,
                Err(e) => e.code(),
            }
        }
    };
    assert_eq!(code(LEAVES).await, Code::Ok);
    assert_eq!(code(ARRIVES).await, Code::Unauthenticated);

    std::fs::write(
        &config,
        caller("stays", STAYS) + &caller("arrives", ARRIVES),
    )
    .unwrap();
    server.sighup();
    eventually("the new caller is let in", async || {
        code(ARRIVES).await == Code::Ok
    })
    .await;
    assert_eq!(code(LEAVES).await, Code::Unauthenticated);

    // A broken config: logged, and the one in force stays.
    std::fs::write(&config, "[[callers]]\nname = \"x\"\ntokn = \"y\"\n").unwrap();
    server.sighup();
    eventually("the broken reload is logged", async || {
        server.log().contains("config reload failed")
    })
    .await;
    assert!(server.log().contains("unknown key `callers.tokn`"));
    assert_eq!(code(ARRIVES).await, Code::Ok);
    assert_eq!(code(LEAVES).await, Code::Unauthenticated);

    let before = done.load(Ordering::Relaxed);
    eventually("the load goes on", async || {
        done.load(Ordering::Relaxed) > before + 10
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await
        .unwrap()
        .expect("a call of the caller in both configs failed");
}
