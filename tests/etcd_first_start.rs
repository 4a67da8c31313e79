//! An instance remembers (in its data dir) the etcd prefixes it completed a first start on, as a
//! sled data dir remembers its own: a prefix found emptied later, or endpoints that point at
//! another (empty) cluster, stop the start with a message saying so, instead of serving a new,
//! empty vault in its place.

mod common;
#[path = "common/etcd.rs"]
mod etcd;

use common::*;
use credvault::store::etcd_pb::etcdserverpb::{kv_client::KvClient, DeleteRangeRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_prefix_is_refused_not_served_as_a_new_vault() {
    let dir = tempfile::tempdir().unwrap();
    let Some(etcd) = etcd::Etcd::start(&dir.path().join("etcd")) else {
        return;
    };
    let mut config = config(dir.path());
    let data = config.data_dir.clone();
    config.backend = credvault::config::Backend::Etcd;
    config.etcd.endpoints = vec![etcd.endpoint.clone()];
    let server = TestServer::start(config.clone()).await;
    server
        .client()
        .await
        .add(add_request("acme", "sms", token_credential()))
        .await
        .unwrap();
    server.stop().await.unwrap();
    // A restart over the same prefix is a restart, not a first start.
    let server = TestServer::start(config.clone()).await;
    server
        .client()
        .await
        .resolve(resolve_request("acme", "sms"))
        .await
        .unwrap();
    server.stop().await.unwrap();

    // Someone empties the prefix.
    let mut kv = KvClient::connect(etcd.endpoint.clone()).await.unwrap();
    let deleted = kv
        .delete_range(DeleteRangeRequest {
            key: b"/credvault/".to_vec(),
            range_end: b"/credvault0".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.deleted >= 2, "{deleted:?}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = credvault::serve(listener, config.clone(), std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("etcd prefix /credvault/ holds no keyring")
            && e.contains("credvault.etcd-initialized"),
        "{e}"
    );

    // The way out it names: remove the marker, and a new vault starts there.
    std::fs::remove_file(data.join("credvault.etcd-initialized")).unwrap();
    let server = TestServer::start(config).await;
    let e = server
        .client()
        .await
        .resolve(resolve_request("acme", "sms"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    // And the data dir holds no sled marker: it never held a sled store.
    assert!(!data.join("credvault.initialized").exists());
    server.stop().await.unwrap();
}
