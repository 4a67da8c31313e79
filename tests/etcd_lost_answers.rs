//! A write to etcd whose answer is lost (applied by etcd, never heard by credvault) is retried,
//! and the retry recognises its own write: a create does not come back as "already exists", a
//! swap does not come back as "changed meanwhile". The answers are lost by a proxy between
//! credvault and a real etcd.

mod common;
#[path = "common/etcd.rs"]
mod etcd;
#[path = "common/lossy_proxy.rs"]
mod lossy_proxy;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use credvault::store::{EtcdStore, Store};
use lossy_proxy::LossyProxy;

async fn through_proxy(dir: &std::path::Path) -> Option<(etcd::Etcd, LossyProxy)> {
    let etcd = etcd::Etcd::start(&dir.join("etcd"))?;
    let proxy = LossyProxy::start(etcd.endpoint.trim_start_matches("http://").to_owned()).await;
    Some((etcd, proxy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_writes_whose_answer_was_lost_report_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_etcd, proxy)) = through_proxy(dir.path()).await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(&credvault::config::EtcdConfig {
            dial_timeout: Duration::from_secs(2),
            ..etcd::store_config(std::slice::from_ref(&proxy.endpoint), "/t/")
        })
        .await
        .unwrap(),
    );

    proxy.lose_next_answers();
    assert!(
        store.put_if_absent(b"k", b"mine".to_vec()).await.unwrap(),
        "a create retried after its lost answer said the key was taken"
    );
    let lost = proxy.swallowed();
    assert!(
        lost > 0,
        "the proxy lost no answer: the test proved nothing"
    );
    assert_eq!(
        store.get(b"k").await.unwrap().as_deref(),
        Some(&b"mine"[..])
    );
    // Someone else's value is still someone else's: a retried create of another value fails.
    assert!(!store.put_if_absent(b"k", b"theirs".to_vec()).await.unwrap());

    let read = store.get(b"k").await.unwrap().unwrap();
    proxy.lose_next_answers();
    assert!(
        store
            .compare_and_swap(b"k", &read, Some(b"next".to_vec()))
            .await
            .unwrap(),
        "a swap retried after its lost answer said the key had changed"
    );
    assert!(proxy.swallowed() > lost, "the swap's answer was not lost");
    assert_eq!(
        store.get(b"k").await.unwrap().as_deref(),
        Some(&b"next"[..])
    );

    let read = store.get(b"k").await.unwrap().unwrap();
    let lost = proxy.swallowed();
    proxy.lose_next_answers();
    assert!(store.compare_and_swap(b"k", &read, None).await.unwrap());
    assert!(proxy.swallowed() > lost, "the delete's answer was not lost");
    assert_eq!(store.get(b"k").await.unwrap(), None);

    // Creates that etcd applied together in one Txn whose answer was lost: each, retried,
    // finds its own value and says it was written. Values of 100 bytes make a Txn of many
    // creates the only upload of 1000 bytes or more, so it is the batch's answer that is lost.
    let lost = proxy.swallowed();
    proxy.lose_answer_to_next_upload_of(1000);
    let value = |n: u8| vec![n; 100];
    let creates: Vec<_> = (0..32u8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.put_if_absent(&[b'c', n], value(n)).await.unwrap() })
        })
        .collect();
    for (n, create) in creates.into_iter().enumerate() {
        assert!(
            create.await.unwrap(),
            "create {n} came back as taken after a lost answer"
        );
    }
    assert!(proxy.swallowed() > lost, "no batch's answer was lost");
    for n in 0..32u8 {
        assert_eq!(
            store.get(&[b'c', n]).await.unwrap().as_deref(),
            Some(value(n).as_slice())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_whose_store_answer_was_lost_succeeds_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_etcd, proxy)) = through_proxy(dir.path()).await else {
        return;
    };
    let mut config = config(dir.path());
    config.backend = credvault::config::Backend::Etcd;
    config.etcd.endpoints = vec![proxy.endpoint.clone()];
    let server = TestServer::start(config).await;
    let mut c = server.client().await;

    // The first Add writes the keyring too: done first, so the lost answer is the record's.
    c.add(add_request("acme", "first", token_credential()))
        .await
        .unwrap();
    // A sealed record makes the Txn's upload larger than any read's.
    proxy.lose_answer_to_next_upload_of(200);
    let added = c
        .add(add_request("acme", "sms", token_credential()))
        .await
        .expect("the Add came back as an error after its lost store answer")
        .into_inner();
    assert!(proxy.swallowed() > 0, "no answer was lost");
    assert_eq!(added.credential.unwrap().version, 1);
    let reply = c
        .resolve(resolve_request("acme", "sms"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.password, AUTH_TOKEN);
    server.stop().await.unwrap();
}
