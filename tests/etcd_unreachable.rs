//! A server on etcd while etcd goes away: health turns NOT_SERVING, RPCs answer UNAVAILABLE with
//! a message that says so, and once etcd is back the same server serves again by itself. A
//! server started before its etcd waits for it.

mod common;
#[path = "common/etcd.rs"]
mod etcd;

use std::time::{Duration, Instant};

use common::*;
use tonic::Code;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};

async fn health(channel: tonic::transport::Channel) -> ServingStatus {
    HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "credvault.v1.CredentialVault".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

async fn until(channel: &tonic::transport::Channel, want: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(channel.clone()).await != want {
        assert!(Instant::now() < deadline, "health never became {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_etcd_is_gone_rpcs_are_unavailable_and_the_server_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut etcd) = etcd::Etcd::start(&dir.path().join("etcd")) else {
        return;
    };
    let mut config = config(dir.path());
    config.backend = credvault::config::Backend::Etcd;
    config.etcd.endpoints = vec![etcd.endpoint.clone()];
    config.etcd.request_timeout = Duration::from_secs(2);
    config.etcd.dial_timeout = Duration::from_secs(1);
    let server = TestServer::start(config).await;
    let channel = server.channel().await;
    let mut c = server.client().await;
    c.add(add_request("acme", "kept", token_credential()))
        .await
        .unwrap();
    assert_eq!(health(channel.clone()).await, ServingStatus::Serving);

    etcd.kill();
    until(&channel, ServingStatus::NotServing).await;
    let e = c
        .resolve(resolve_request("acme", "kept"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("unreachable"), "{}", e.message());
    let e = c
        .add(add_request("acme", "lost", token_credential()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");

    etcd.restart();
    until(&channel, ServingStatus::Serving).await;
    let reply = c
        .resolve(resolve_request("acme", "kept"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.password, AUTH_TOKEN);
    c.add(add_request("acme", "after", token_credential()))
        .await
        .unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_before_etcd_waits_for_it_then_serves() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut etcd) = etcd::Etcd::prepare(&dir.path().join("etcd")) else {
        return;
    };
    let mut config = config(dir.path());
    config.backend = credvault::config::Backend::Etcd;
    config.etcd.endpoints = vec![etcd.endpoint.clone()];
    config.etcd.dial_timeout = Duration::from_millis(500);
    config.etcd.request_timeout = Duration::from_secs(1);
    let server = TestServer::start(config).await;
    // Longer than one wait round (2 s) and than a request's timeout: still waiting, not gone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!server.finished(), "the server gave up on etcd");
    etcd.restart();
    let mut c = server.client().await;
    c.add(add_request("acme", "late", token_credential()))
        .await
        .unwrap();
    let reply = c
        .resolve(resolve_request("acme", "late"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.password, AUTH_TOKEN);
    server.stop().await.unwrap();
}
