//! The etcd store's cached read mode (`etcd.read = "cached"`) against a real etcd: Resolve's
//! reads come from a watch-fed copy, which shows another instance's writes within the staleness
//! bound, this instance's own writes at once, goes back to etcd (and so to UNAVAILABLE) once it
//! can no longer confirm itself, and recovers by itself.

mod common;
#[path = "common/etcd.rs"]
mod etcd;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use credvault::config::{EtcdConfig, EtcdRead};
use credvault::proto::v1 as pb;
use credvault::store::{EtcdStore, Store, StoreError};
use tonic::Code;

const BOUND: Duration = Duration::from_millis(200);

fn cached(endpoint: &str, prefix: &str) -> EtcdConfig {
    EtcdConfig {
        read: EtcdRead::Cached,
        cache_staleness: BOUND,
        request_timeout: Duration::from_secs(1),
        ..etcd::store_config(&[endpoint.to_owned()], prefix)
    }
}

async fn recent(store: &dyn Store, key: &str) -> Option<Vec<u8>> {
    store
        .get_recent(key.as_bytes())
        .await
        .unwrap()
        .map(|s| s.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_reads_show_other_writers_within_the_bound_and_own_writes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut etcd) = etcd::Etcd::start(dir.path()) else {
        return;
    };
    let endpoint = etcd.endpoint.clone();
    let other: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(&etcd::store_config(std::slice::from_ref(&endpoint), "/c/"))
            .await
            .unwrap(),
    );
    // Written before the cached store starts: the copy's load has it.
    assert!(other.put_if_absent(b"k1", b"v1".to_vec()).await.unwrap());
    let store: Arc<dyn Store> =
        Arc::new(EtcdStore::connect(&cached(&endpoint, "/c/")).await.unwrap());
    assert_eq!(recent(&*store, "k1").await.as_deref(), Some(&b"v1"[..]));

    // Its own writes, read back at once (create, replace, delete).
    assert!(store.put_if_absent(b"own", b"x".to_vec()).await.unwrap());
    assert_eq!(recent(&*store, "own").await.as_deref(), Some(&b"x"[..]));
    let now = store.get(b"own").await.unwrap().unwrap();
    assert!(store
        .compare_and_swap(b"own", &now, Some(b"y".to_vec()))
        .await
        .unwrap());
    assert_eq!(recent(&*store, "own").await.as_deref(), Some(&b"y"[..]));
    let now = store.get(b"own").await.unwrap().unwrap();
    assert!(store.compare_and_swap(b"own", &now, None).await.unwrap());
    assert_eq!(recent(&*store, "own").await, None);

    // Another writer's create, replace and delete: seen once the bound has passed since each
    // was acknowledged (the documented guarantee, whether the copy or etcd answers).
    assert!(other.put_if_absent(b"k2", b"v2".to_vec()).await.unwrap());
    tokio::time::sleep(BOUND).await;
    assert_eq!(recent(&*store, "k2").await.as_deref(), Some(&b"v2"[..]));
    let now = other.get(b"k1").await.unwrap().unwrap();
    assert!(other
        .compare_and_swap(b"k1", &now, Some(b"v1b".to_vec()))
        .await
        .unwrap());
    tokio::time::sleep(BOUND).await;
    assert_eq!(recent(&*store, "k1").await.as_deref(), Some(&b"v1b"[..]));
    let now = other.get(b"k1").await.unwrap().unwrap();
    assert!(other.compare_and_swap(b"k1", &now, None).await.unwrap());
    tokio::time::sleep(BOUND).await;
    assert_eq!(recent(&*store, "k1").await, None);

    // A compaction does not disturb a live watch: later writes still arrive.
    for i in 0..20u8 {
        let now = other.get(b"k2").await.unwrap().unwrap();
        assert!(other
            .compare_and_swap(b"k2", &now, Some(vec![i]))
            .await
            .unwrap());
    }
    etcd.compact();
    assert!(other.put_if_absent(b"k3", b"v3".to_vec()).await.unwrap());
    tokio::time::sleep(BOUND).await;
    assert_eq!(recent(&*store, "k3").await.as_deref(), Some(&b"v3"[..]));
    assert_eq!(recent(&*store, "k2").await, Some(vec![19]));

    // The answers above came from the copy: with etcd frozen (connections open, no answers),
    // it still answers, confirmed less than a bound ago, while a linearizable read cannot...
    tokio::time::sleep(BOUND).await;
    etcd.freeze(true);
    assert_eq!(recent(&*store, "k3").await.as_deref(), Some(&b"v3"[..]));
    // ...and once it has not confirmed itself for a bound, it stops answering: reads go to
    // etcd, which does not answer.
    tokio::time::sleep(BOUND * 2).await;
    let e = store.get_recent(b"k3").await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    etcd.freeze(false);

    // etcd killed and back: the copy reloads by itself and follows again.
    etcd.kill();
    assert!(store.get_recent(b"k3").await.is_err());
    etcd.restart();
    assert!(other.put_if_absent(b"k4", b"v4".to_vec()).await.unwrap());
    // Served by the copy again (etcd frozen a second time, the answer still comes), once it
    // has reloaded: within its longest back-off (1 s) and a bound.
    tokio::time::sleep(Duration::from_secs(2)).await;
    etcd.freeze(true);
    assert_eq!(recent(&*store, "k4").await.as_deref(), Some(&b"v4"[..]));
    etcd.freeze(false);
}

/// Over gRPC: instance B reads its cache, instance A writes linearizably.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_on_a_cached_instance_follows_adds_and_deletes_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let Some(etcd) = etcd::Etcd::start(&dir.path().join("etcd")) else {
        return;
    };
    let key = etcd::shared_root_key(dir.path());
    let server = |name: &str, read: EtcdRead| {
        let mut c = config(&dir.path().join(name));
        c.backend = credvault::config::Backend::Etcd;
        c.etcd = EtcdConfig {
            read,
            ..cached(&etcd.endpoint, "/credvault/")
        };
        c.master_key_file = Some(key.clone());
        c
    };
    let a = TestServer::start(server("a", EtcdRead::Linearizable)).await;
    let (mut on_a, mut on_b);
    on_a = a.client().await;
    on_a.add(add_request("acme", "sms", token_credential()))
        .await
        .unwrap();
    let b = TestServer::start(server("b", EtcdRead::Cached)).await;
    on_b = b.client().await;

    let got = on_b
        .resolve(resolve_request("acme", "sms"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.password, AUTH_TOKEN);

    // B's own replace: B resolves the new secret at once.
    let mut replace = add_request("acme", "sms", api_key_credential());
    replace.replace = true;
    on_b.add(replace).await.unwrap();
    let got = on_b
        .resolve(resolve_request("acme", "sms"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.password.as_str(), got.version), (API_KEY_SECRET, 2));

    // A's delete: gone on B once the bound has passed.
    on_a.delete(pb::DeleteRequest {
        owner: "acme".into(),
        label: "sms".into(),
    })
    .await
    .unwrap();
    tokio::time::sleep(BOUND).await;
    let e = on_b
        .resolve(resolve_request("acme", "sms"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
}
