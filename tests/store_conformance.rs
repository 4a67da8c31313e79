//! The contract every `Store` backend must keep. Runs against sled; the etcd backend will run the
//! same `conformance` function.

use std::sync::Arc;

use credvault::store::{SledStore, Store};

async fn conformance(store: Arc<dyn Store>) {
    // get / put_if_absent
    assert_eq!(store.get(b"p/a").await.unwrap(), None);
    assert!(store.put_if_absent(b"p/a", b"1".to_vec()).await.unwrap());
    assert!(
        !store.put_if_absent(b"p/a", b"2".to_vec()).await.unwrap(),
        "taken key overwritten"
    );
    assert_eq!(store.get(b"p/a").await.unwrap().as_deref(), Some(&b"1"[..]));

    // compare_and_swap: only from the expected value; None deletes.
    assert!(!store
        .compare_and_swap(b"p/a", b"x", Some(b"3".to_vec()))
        .await
        .unwrap());
    assert!(store
        .compare_and_swap(b"p/a", b"1", Some(b"3".to_vec()))
        .await
        .unwrap());
    assert_eq!(store.get(b"p/a").await.unwrap().as_deref(), Some(&b"3"[..]));
    assert!(!store
        .compare_and_swap(b"p/missing", b"3", None)
        .await
        .unwrap());
    assert!(store.compare_and_swap(b"p/a", b"3", None).await.unwrap());
    assert_eq!(store.get(b"p/a").await.unwrap(), None);

    // scan: prefix-bounded, ordered, resumable, limited.
    for k in ["p/c", "p/a", "p/b", "p0", "o/z", "p/d"] {
        assert!(store
            .put_if_absent(k.as_bytes(), k.as_bytes().to_vec())
            .await
            .unwrap());
    }
    let keys = |entries: Vec<(Vec<u8>, Vec<u8>)>| {
        entries
            .into_iter()
            .map(|(k, v)| {
                assert_eq!(k, v);
                String::from_utf8(k).unwrap()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(store.scan(b"p/", None, 10).await.unwrap()),
        ["p/a", "p/b", "p/c", "p/d"]
    );
    assert_eq!(
        keys(store.scan(b"p/", None, 2).await.unwrap()),
        ["p/a", "p/b"]
    );
    assert_eq!(
        keys(store.scan(b"p/", Some(b"p/b"), 10).await.unwrap()),
        ["p/c", "p/d"]
    );
    assert_eq!(
        keys(store.scan(b"p/", Some(b"p/d"), 10).await.unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        keys(store.scan(b"q/", None, 10).await.unwrap()),
        Vec::<String>::new()
    );

    // Create-if-absent is atomic: of 50 concurrent writers of one key exactly one wins.
    let winners = futures_join((0..50).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.put_if_absent(b"race", vec![i]).await.unwrap() })
    }))
    .await;
    assert_eq!(winners.iter().filter(|w| **w).count(), 1);

    // 64 concurrent durable writers all complete (the group-committed flush does not deadlock).
    let done = futures_join((0..64u32).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            for j in 0..20u32 {
                let key = format!("w/{i}/{j}");
                assert!(store.put_if_absent(key.as_bytes(), vec![1]).await.unwrap());
            }
        })
    }))
    .await;
    assert_eq!(done.len(), 64);
    assert_eq!(
        store.scan(b"w/", None, 10_000).await.unwrap().len(),
        64 * 20
    );
    store.flush().await.unwrap();
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_store_keeps_the_contract_and_its_writes_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path(), 8 << 20).unwrap());
    conformance(store.clone()).await;
    drop(store);
    // Everything acknowledged is there after the store is closed and reopened.
    let store = SledStore::open(dir.path(), 8 << 20).unwrap();
    assert_eq!(
        store.scan(b"w/", None, 10_000).await.unwrap().len(),
        64 * 20
    );
}
