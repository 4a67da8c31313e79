//! The store under injected faults, over real gRPC: a failed fsync makes it fail-stop, and answers
//! that report another writer's change (ALREADY_EXISTS, Delete's NOT_FOUND) wait until that
//! change is durable.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::bin::cli_at;
use common::*;
use credvault::crypto::RootKey;
use credvault::proto::v1 as pb;
use credvault::store::SledStore;
use credvault::twilio::TwilioClient;
use credvault::vault::Vault;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};

/// This binary's log lines, for the fail-stop message.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    log_capture::captured("info")
}

/// A server over a store the test keeps a handle to, for its fault injection.
struct Env {
    store: Arc<SledStore>,
    addr: std::net::SocketAddr,
    channel: Channel,
    _task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    std::fs::create_dir_all(&config.data_dir).unwrap();
    let store = Arc::new(SledStore::open(&config.data_dir, 8 << 20).unwrap());
    let cipher = RootKey::from_bytes([9; 32]);
    let vault = Arc::new(Vault::open(store.clone(), cipher, false).await.unwrap());
    let twilio = TwilioClient::new(&config.twilio).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = credvault::run(listener, &config, vault, twilio, std::future::pending()).await;
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Env {
        store,
        addr,
        channel,
        _task: task,
        _dir: dir,
    }
}

impl Env {
    fn client(&self) -> Client {
        client_for(self.channel.clone())
    }

    async fn health(&self, service: &str) -> ServingStatus {
        let reply = HealthClient::new(self.channel.clone())
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap();
        reply.into_inner().status()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_fsync_no_write_is_acknowledged_and_health_says_not_serving() {
    let env = env().await;
    let mut c = env.client();
    c.add(add_request("acme", "before", token_credential()))
        .await
        .unwrap();
    assert_eq!(
        env.health("credvault.v1.CredentialVault").await,
        ServingStatus::Serving
    );

    env.store.faults().fail_next_flush();
    let err = c
        .add(add_request("acme", "failed", token_credential()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    // The disk would take the next flush, but what the failed one held may be gone: every later
    // write is refused, whatever its kind.
    let err = c
        .add(add_request("acme", "later", api_key_credential()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("until credvault is restarted"),
        "{err:?}"
    );
    let mut replace = add_request("acme", "before", api_key_credential());
    replace.replace = true;
    assert_eq!(c.add(replace).await.unwrap_err().code(), Code::Unavailable);
    assert_eq!(
        c.delete(delete_request("acme", "before"))
            .await
            .unwrap_err()
            .code(),
        Code::Unavailable
    );
    let err = c
        .resolve(resolve_request("acme", "later"))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "a refused write was applied: {err:?}"
    );

    for service in ["", "credvault.v1.CredentialVault"] {
        let mut status = env.health(service).await;
        for _ in 0..50 {
            if status == ServingStatus::NotServing {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            status = env.health(service).await;
        }
        assert_eq!(status, ServingStatus::NotServing, "service {service:?}");
    }
    // What a container's health check runs sees it too.
    let cli = cli_at(env.addr, &["health", "--timeout", "5s"], None).await;
    assert_eq!(cli.status.code(), Some(1), "credvault health: {cli:?}");
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), "NOT_SERVING");
    // Reads still answer.
    let got = c
        .resolve(resolve_request("acme", "before"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.password, AUTH_TOKEN);
    let logs = log_capture::text(logs());
    assert!(
        logs.contains("no further write will be acknowledged") && logs.contains("Restart"),
        "no log line says why and what to do:\n{logs}"
    );
}

/// Resolves `label` until `want` holds (the in-memory apply comes before the flush).
async fn until(
    c: &mut Client,
    label: &str,
    want: impl Fn(&Result<tonic::Response<pb::ResolveResponse>, tonic::Status>) -> bool,
) {
    for _ in 0..500 {
        if want(&c.resolve(resolve_request("acme", label)).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{label} never reached the wanted state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_exists_and_not_found_wait_until_what_they_report_is_durable() {
    let env = env().await;
    let mut c = env.client();

    // Writer A's Add is applied in memory, its flush held. Writer B's Add of the same label must
    // not answer ALREADY_EXISTS before A's write is durable: a crash now would undo A.
    let hold = env.store.faults().hold_flushes();
    let a = tokio::spawn({
        let mut c = env.client();
        async move { c.add(add_request("acme", "x", token_credential())).await }
    });
    until(&mut c, "x", |r| r.is_ok()).await;
    let b = tokio::spawn({
        let mut c = env.client();
        async move { c.add(add_request("acme", "x", api_key_credential())).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !b.is_finished(),
        "ALREADY_EXISTS reported an unflushed write"
    );
    drop(hold);
    assert!(a.await.unwrap().is_ok());
    assert_eq!(b.await.unwrap().unwrap_err().code(), Code::AlreadyExists);

    // The same for Delete: B's NOT_FOUND waits for A's Delete to be durable.
    let hold = env.store.faults().hold_flushes();
    let a = tokio::spawn({
        let mut c = env.client();
        async move { c.delete(delete_request("acme", "x")).await }
    });
    until(&mut c, "x", |r| {
        r.as_ref().is_err_and(|e| e.code() == Code::NotFound)
    })
    .await;
    let b = tokio::spawn({
        let mut c = env.client();
        async move { c.delete(delete_request("acme", "x")).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b.is_finished(), "NOT_FOUND reported an unflushed Delete");
    drop(hold);
    assert!(a.await.unwrap().is_ok());
    assert_eq!(b.await.unwrap().unwrap_err().code(), Code::NotFound);
}
