//! The contract every `Store` backend must keep: the same `conformance` function against sled
//! and against a real etcd (started on loopback by the test).

#[path = "common/etcd.rs"]
mod etcd;

use std::sync::Arc;

use credvault::store::{EtcdStore, SledStore, Store, Stored};

async fn conformance(store: Arc<dyn Store>) {
    // get / put_if_absent
    assert_eq!(store.get(b"p/a").await.unwrap(), None);
    assert!(store.put_if_absent(b"p/a", b"1".to_vec()).await.unwrap());
    assert!(
        !store.put_if_absent(b"p/a", b"2".to_vec()).await.unwrap(),
        "taken key overwritten"
    );
    assert_eq!(store.get(b"p/a").await.unwrap().as_deref(), Some(&b"1"[..]));

    // compare_and_swap: only from the state read; None deletes.
    let first = store.get(b"p/a").await.unwrap().unwrap();
    assert!(store
        .compare_and_swap(b"p/a", &first, Some(b"3".to_vec()))
        .await
        .unwrap());
    assert_eq!(store.get(b"p/a").await.unwrap().as_deref(), Some(&b"3"[..]));
    assert!(
        !store
            .compare_and_swap(b"p/a", &first, Some(b"4".to_vec()))
            .await
            .unwrap(),
        "a swap from a stale read went through"
    );
    let third = store.get(b"p/a").await.unwrap().unwrap();
    assert!(store.compare_and_swap(b"p/a", &third, None).await.unwrap());
    assert_eq!(store.get(b"p/a").await.unwrap(), None);
    assert!(
        !store.compare_and_swap(b"p/a", &third, None).await.unwrap(),
        "a second delete from the same read reported a swap"
    );
    assert!(
        !store
            .compare_and_swap(b"p/a", &third, Some(b"5".to_vec()))
            .await
            .unwrap(),
        "a swap of a deleted key created it"
    );
    assert_eq!(store.get(b"p/a").await.unwrap(), None);

    // scan: prefix-bounded, ordered, resumable, limited.
    for k in ["p/c", "p/a", "p/b", "p0", "o/z", "p/d"] {
        assert!(store
            .put_if_absent(k.as_bytes(), k.as_bytes().to_vec())
            .await
            .unwrap());
    }
    let keys = |entries: Vec<(Vec<u8>, Stored)>| {
        entries
            .into_iter()
            .map(|(k, v)| {
                assert_eq!(k, *v);
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

    // count: the keys under a prefix, and only those.
    assert_eq!(store.count(b"p/").await.unwrap(), 4);
    assert_eq!(store.count(b"o/").await.unwrap(), 1);
    assert_eq!(store.count(b"q/").await.unwrap(), 0);

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
    assert_eq!(store.count(b"w/").await.unwrap(), 64 * 20);

    // Concurrent writes of which some must fail (etcd gathers them into shared Txns): each
    // answers for itself. Every fourth create finds its key taken; every fourth swap of the
    // others starts from a stale read.
    for n in (0..64u32).step_by(4) {
        assert!(store
            .put_if_absent(format!("m/{n}").as_bytes(), b"taken".to_vec())
            .await
            .unwrap());
    }
    let created = futures_join((0..64u32).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let key = format!("m/{n}");
            (
                n,
                store
                    .put_if_absent(key.as_bytes(), b"new".to_vec())
                    .await
                    .unwrap(),
            )
        })
    }))
    .await;
    for (n, created) in created {
        assert_eq!(created, n % 4 != 0, "m/{n}");
    }
    let mut reads = Vec::new();
    for n in 0..64u32 {
        let key = format!("m/{n}");
        let read = store.get(key.as_bytes()).await.unwrap().unwrap();
        if n % 4 == 1 {
            // Someone else's swap lands first: this read is stale now.
            assert!(store
                .compare_and_swap(key.as_bytes(), &read, Some(b"theirs".to_vec()))
                .await
                .unwrap());
        }
        reads.push(read);
    }
    let swapped = futures_join(reads.into_iter().enumerate().map(|(n, read)| {
        let store = store.clone();
        tokio::spawn(async move {
            let key = format!("m/{n}");
            let new = (n % 2 == 0).then(|| b"ours".to_vec());
            (
                n,
                store
                    .compare_and_swap(key.as_bytes(), &read, new)
                    .await
                    .unwrap(),
            )
        })
    }))
    .await;
    for (n, swapped) in swapped {
        assert_eq!(swapped, n % 4 != 1, "m/{n}");
        let now = store.get(format!("m/{n}").as_bytes()).await.unwrap();
        let expected: Option<&[u8]> = match n % 4 {
            1 => Some(b"theirs"),
            0 | 2 => Some(b"ours"),
            _ => None,
        };
        assert_eq!(now.as_deref(), expected, "m/{n}");
    }

    // 256 concurrent reads of different keys (etcd batches them into shared Txns): each gets
    // its own key's answer, missing keys included.
    for n in 0..128u32 {
        let key = format!("r/{n}");
        assert!(store
            .put_if_absent(key.as_bytes(), n.to_be_bytes().to_vec())
            .await
            .unwrap());
    }
    let reads = futures_join((0..256u32).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let got = store.get(format!("r/{n}").as_bytes()).await.unwrap();
            (n, got.map(|s| s.to_vec()))
        })
    }))
    .await;
    for (n, got) in reads {
        assert_eq!(got, (n < 128).then(|| n.to_be_bytes().to_vec()), "r/{n}");
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_store_keeps_the_contract_and_stays_under_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let Some(etcd) = etcd::Etcd::start(dir.path()) else {
        return;
    };
    let endpoints = [etcd.endpoint.clone()];
    let connect = |prefix: &'static str| {
        let endpoints = endpoints.clone();
        async move {
            EtcdStore::connect(&etcd::store_config(&endpoints, prefix))
                .await
                .unwrap()
        }
    };
    let store = Arc::new(connect("/credvault/").await);
    conformance(store.clone()).await;
    // Another prefix on the same cluster sees none of it.
    let other = connect("/credvault-other/").await;
    assert!(other.scan(b"", None, 10).await.unwrap().is_empty());
    assert!(other.put_if_absent(b"p/a", b"x".to_vec()).await.unwrap());
    // And a second client on the first prefix sees every acknowledged write at once.
    let again = connect("/credvault/").await;
    assert_eq!(
        again.scan(b"w/", None, 10_000).await.unwrap().len(),
        64 * 20
    );
    assert_eq!(
        store.get(b"p/a").await.unwrap().as_deref(),
        Some(&b"p/a"[..])
    );
    assert_eq!(other.get(b"p/a").await.unwrap().as_deref(), Some(&b"x"[..]));
}

/// Two vaults over one etcd prefix, as two instances will be: they share the keyring (the second
/// opens the first's), an Add on A resolves on B, a Delete on B is gone on A at once, and a
/// vault with another root key refuses the prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vaults_on_one_etcd_prefix_share_keyring_and_records() {
    use credvault::crypto::RootKey;
    use credvault::domain::*;
    use credvault::vault::{OpenError, Vault, VaultError};
    let dir = tempfile::tempdir().unwrap();
    let Some(etcd) = etcd::Etcd::start(dir.path()) else {
        return;
    };
    let store = || async {
        let s = EtcdStore::connect(&etcd::store_config(
            std::slice::from_ref(&etcd.endpoint),
            "/credvault/",
        ))
        .await
        .unwrap();
        Arc::new(s) as Arc<dyn Store>
    };
    let a = Vault::open(store().await, RootKey::from_bytes([3; 32]), false)
        .await
        .unwrap();
    let b = Vault::open(store().await, RootKey::from_bytes([3; 32]), true)
        .await
        .unwrap();
    let owner = Owner::parse("acme").unwrap();
    let label = Label::parse("shared").unwrap();
    let cred = Credential {
        account_sid: AccountSid::parse("AC0123456789abcdef0123456789abcdef").unwrap(),
        auth: Auth::AuthToken(
            Secret::parse_auth_token("f00dfeedcafe0123456789abcdef4242").unwrap(),
        ),
        sender: Sender::MessagingService(
            MessagingServiceSid::parse("MG0123456789abcdef0123456789abcdef").unwrap(),
        ),
        location: Default::default(),
    };
    a.add(&owner, &label, &cred, false).await.unwrap();
    let got = b.resolve(&owner, &label, false).await.unwrap();
    assert_eq!(got.version, 1);
    assert!(matches!(
        b.add(&owner, &label, &cred, false).await,
        Err(VaultError::AlreadyExists { .. })
    ));
    b.delete(&owner, &label).await.unwrap();
    assert!(matches!(
        a.resolve(&owner, &label, false).await,
        Err(VaultError::NotFound { .. })
    ));
    let wrong = Vault::open(store().await, RootKey::from_bytes([4; 32]), true).await;
    assert!(
        matches!(
            wrong,
            Err(OpenError::WrongKey(_) | OpenError::OtherRootKey { .. })
        ),
        "another root key must not open the shared keyring"
    );
}

/// A lock of a store one process opens is granted at once and never lost.
#[tokio::test]
async fn a_sled_lock_is_granted_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 8 << 20).unwrap();
    let mut lock = store
        .try_lock("revalidate", std::time::Duration::from_secs(3))
        .await
        .unwrap()
        .expect("granted");
    assert!(lock.is_held());
    let lost = tokio::time::timeout(std::time::Duration::from_millis(100), lock.lost()).await;
    assert!(lost.is_err(), "lost");
}

/// etcd's lock (a key under a lease): one holder among the clients of a prefix, free again at
/// once when released, and reported lost when etcd stops confirming its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_lock_has_one_holder_and_is_lost_when_etcd_stops_renewing_it() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let Some(etcd) = etcd::Etcd::start(dir.path()) else {
        return;
    };
    let config = etcd::store_config(std::slice::from_ref(&etcd.endpoint), "/credvault/");
    let a = EtcdStore::connect(&config).await.unwrap();
    let b = EtcdStore::connect(&config).await.unwrap();
    let ttl = Duration::from_secs(3);

    let held = a.try_lock("revalidate", ttl).await.unwrap().expect("free");
    assert!(held.is_held());
    assert!(
        b.try_lock("revalidate", ttl).await.unwrap().is_none(),
        "two holders"
    );
    assert!(
        a.try_lock("revalidate", ttl).await.unwrap().is_none(),
        "taken twice by one client"
    );
    // Another name is another lock.
    assert!(b.try_lock("other", ttl).await.unwrap().is_some());
    // Still held after several renewals (a third of the TTL each).
    tokio::time::sleep(ttl * 2).await;
    assert!(held.is_held());
    assert!(b.try_lock("revalidate", ttl).await.unwrap().is_none());
    let keys = a.scan(b"lock/", None, 10).await.unwrap();
    assert!(
        keys.iter().any(|(k, _)| k == b"lock/revalidate"),
        "{keys:?}"
    );

    // Released: free for the other client at once, not after the TTL.
    held.release().await;
    let mut taken = b
        .try_lock("revalidate", ttl)
        .await
        .unwrap()
        .expect("free after release");

    // etcd stops answering: the holder says it lost the lock, before the lease can expire.
    etcd.freeze(true);
    let lost = tokio::time::timeout(ttl * 2, taken.lost()).await;
    etcd.freeze(false);
    assert!(
        lost.is_ok(),
        "the lock was not reported lost while etcd was frozen"
    );
    assert!(!taken.is_held());
}
