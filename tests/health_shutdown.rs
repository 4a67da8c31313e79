//! grpc.health.v1 while shutting down: a watcher of the vault service (a load balancer, a
//! kubelet) sees NOT_SERVING as soon as shutdown begins, before in-flight RPCs have drained.

mod common;

use std::time::Duration;

use common::*;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

#[tokio::test]
async fn health_turns_not_serving_when_shutdown_begins() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(config(dir.path())).await;
    let mut health = HealthClient::new(server.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "credvault.v1.CredentialVault".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    let stopping = tokio::spawn(async move { server.shutdown().await });
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("no health update within 5 s of shutdown")
        .unwrap()
        .expect("the watch ended without saying NOT_SERVING");
    assert_eq!(next.status(), ServingStatus::NotServing);
    // The open watch is the last in-flight RPC: closing it lets the drain finish.
    drop(watch);
    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("shutdown did not finish")
        .unwrap()
        .unwrap();
}
