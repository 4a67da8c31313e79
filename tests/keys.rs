//! Key management over real gRPC: status and rotation (admin scope and every owner), rotation by
//! encryption count, and a record whose key this instance does not know yet.

mod common;

use std::sync::Arc;

use common::*;
use credvault::crypto::RootKey;
use credvault::domain::{Label, Owner};
use credvault::proto::v1 as pb;
use credvault::store::{SledStore, Store};
use credvault::vault::{KeyPolicy, Vault};
use tonic::Code;

use common::key_status as status;

#[tokio::test]
async fn rotation_makes_a_new_active_key_and_old_records_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    let mut a = admin(server.channel().await, TEST_TOKEN);

    let first = status(&mut a).await;
    assert_eq!(first.active_key_id, 1);
    assert_eq!(first.keys.len(), 1);
    assert_eq!(first.keys[0].state, pb::DataKeyState::Active as i32);
    assert!(first.keys[0].encryptions >= 1, "reserved before use");

    for label in ["a", "b", "c"] {
        c.add(add_request("acme", label, token_credential()))
            .await
            .unwrap();
    }
    assert_eq!(records_on(&status(&mut a).await, 1), 3);

    let rotated = a
        .rotate_data_key(pb::RotateDataKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    let active = rotated.active.unwrap();
    assert_eq!(active.id, 2);
    assert!(rotated.keyring_version > first.keyring_version);
    c.add(add_request("acme", "d", api_key_credential()))
        .await
        .unwrap();

    let now = status(&mut a).await;
    assert_eq!(now.active_key_id, 2);
    let old = now.keys.iter().find(|k| k.id == 1).unwrap();
    assert_eq!(old.state, pb::DataKeyState::DecryptOnly as i32);
    assert_eq!((records_on(&now, 1), records_on(&now, 2)), (3, 1));
    for label in ["a", "b", "c", "d"] {
        c.resolve(resolve_request("acme", label)).await.unwrap();
    }
    let listed = c
        .list(pb::ListRequest {
            owner: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.credentials.len(), 4);
    server.stop().await.unwrap();

    // A restart keeps the rotation.
    let server = TestServer::start(config(dir.path())).await;
    let mut a = admin(server.channel().await, TEST_TOKEN);
    assert_eq!(status(&mut a).await.active_key_id, 2);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn only_admin_callers_of_every_owner_manage_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.callers.push(caller(
        "resolver",
        "cvt_resolver-token-000000000000000000000000",
        &["list", "write", "validate", "resolve"],
        &["*"],
    ));
    config.callers.push(caller(
        "acme-admin",
        "cvt_acme-admin-token-0000000000000000000000",
        &["admin"],
        &["acme"],
    ));
    let server = TestServer::start(config).await;
    let channel = server.channel().await;
    let mut none =
        credvault::client::admin_client(channel.clone(), credvault::client::Bearer::none());
    let err = none
        .get_key_status(pb::GetKeyStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    for token in [
        "cvt_resolver-token-000000000000000000000000",
        "cvt_acme-admin-token-0000000000000000000000",
    ] {
        let mut a = admin(channel.clone(), token);
        let err = a
            .rotate_data_key(pb::RotateDataKeyRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{token}: {err:?}");
        let err = a
            .get_key_status(pb::GetKeyStatusRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{token}: {err:?}");
    }
    let mut a = admin(channel, TEST_TOKEN);
    assert_eq!(status(&mut a).await.active_key_id, 1, "nothing rotated");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_key_rotates_by_itself_before_its_encryption_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.keys.rotate_after_encryptions = 4;
    let server = TestServer::start(config).await;
    let mut c = server.client().await;
    for i in 0..10 {
        c.add(add_request("acme", &format!("l{i}"), token_credential()))
            .await
            .unwrap();
    }
    let mut a = admin(server.channel().await, TEST_TOKEN);
    let now = status(&mut a).await;
    assert!(now.keys.len() >= 3, "{now:?}");
    for k in &now.keys {
        assert!(k.encryptions <= 4, "key {} counted {}", k.id, k.encryptions);
        assert!(k.records <= 4);
    }
    assert_eq!(now.keys.iter().map(|k| k.records).sum::<u64>(), 10);
    for i in 0..10 {
        c.resolve(resolve_request("acme", &format!("l{i}")))
            .await
            .unwrap();
    }
    server.stop().await.unwrap();
}

/// Two vaults over one store, as instances sharing etcd will be: B learns of A's rotation when
/// it meets a record sealed with the new key. A key id nobody has is DATA_LOSS for that record.
#[tokio::test]
async fn an_unknown_key_id_rereads_the_keyring_once_then_is_data_loss() {
    let dir = tempfile::tempdir().unwrap();
    let sled = Arc::new(SledStore::open(dir.path(), 8 << 20).unwrap());
    let store: Arc<dyn Store> = sled.clone();
    let root = || RootKey::from_bytes([5; 32]);
    let a = Vault::open_with(store.clone(), root(), KeyPolicy::default(), false)
        .await
        .unwrap();
    let b = Vault::open_with(store.clone(), root(), KeyPolicy::default(), true)
        .await
        .unwrap();
    let owner = Owner::parse("acme").unwrap();
    let cred = |label: &str| (Label::parse(label).unwrap(), sample_credential());

    let (old, c) = cred("old");
    a.add(&owner, &old, &c, false).await.unwrap();
    a.rotate_key().await.unwrap();
    let (new, c) = cred("new");
    a.add(&owner, &new, &c, false).await.unwrap();
    // B's keyring is from before the rotation.
    b.resolve(&owner, &new, false).await.unwrap();
    b.resolve(&owner, &old, false).await.unwrap();

    // Key id 99 in the envelope header: no keyring has it.
    let key = credvault::vault::record_key(&owner, &old);
    let mut bytes = sled.tree().get(&key).unwrap().unwrap().to_vec();
    bytes[1..5].copy_from_slice(&99u32.to_be_bytes());
    sled.tree().insert(&key, bytes).unwrap();
    let err = b.resolve(&owner, &old, false).await.unwrap_err();
    assert!(
        matches!(err, credvault::vault::VaultError::Corrupt { ref reason, .. } if reason.contains("99")),
        "{err:?}"
    );
    b.resolve(&owner, &new, false).await.unwrap();
}

fn sample_credential() -> credvault::domain::Credential {
    use credvault::domain::*;
    Credential {
        account_sid: AccountSid::parse(ACCOUNT_SID).unwrap(),
        auth: Auth::AuthToken(Secret::parse_auth_token(AUTH_TOKEN).unwrap()),
        sender: Sender::MessagingService(MessagingServiceSid::parse(MG_SID).unwrap()),
        location: Default::default(),
    }
}

#[tokio::test]
async fn a_key_is_retired_only_once_no_record_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config(dir.path())).await;
    let mut c = server.client().await;
    let mut a = admin(server.channel().await, TEST_TOKEN);
    for label in ["a", "b"] {
        c.add(add_request("acme", label, token_credential()))
            .await
            .unwrap();
    }
    a.rotate_data_key(pb::RotateDataKeyRequest {})
        .await
        .unwrap();
    let retire = |id| pb::RetireDataKeyRequest { id };

    let err = a.retire_data_key(retire(1)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("2 record(s)"), "{}", err.message());
    let err = a.retire_data_key(retire(2)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("active"), "{}", err.message());
    let err = a.retire_data_key(retire(99)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Replacing both moves them to the active key; then key 1 can go.
    for label in ["a", "b"] {
        let mut add = add_request("acme", label, api_key_credential());
        add.replace = true;
        c.add(add).await.unwrap();
    }
    let retired = a
        .retire_data_key(retire(1))
        .await
        .unwrap()
        .into_inner()
        .retired
        .unwrap();
    assert_eq!(retired.state, pb::DataKeyState::Retired as i32);
    // Again: a no-op.
    a.retire_data_key(retire(1)).await.unwrap();
    for label in ["a", "b"] {
        c.resolve(resolve_request("acme", label)).await.unwrap();
    }
    server.stop().await.unwrap();

    let server = TestServer::start(config(dir.path())).await;
    let mut a = admin(server.channel().await, TEST_TOKEN);
    let now = status(&mut a).await;
    let states: Vec<_> = now.keys.iter().map(|k| (k.id, k.state)).collect();
    assert_eq!(
        states,
        [
            (1, pb::DataKeyState::Retired as i32),
            (2, pb::DataKeyState::Active as i32)
        ]
    );
    server.stop().await.unwrap();
}

/// Writers that find this instance's reservation used up at the same moment reserve one block
/// between them (one keyring write), not one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_one_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path(), 8 << 20).unwrap());
    let vault = Arc::new(
        Vault::open_with(
            store,
            RootKey::from_bytes([6; 32]),
            KeyPolicy::default(),
            false,
        )
        .await
        .unwrap(),
    );
    // A fresh active key: nobody holds encryptions on it yet.
    vault.rotate_key().await.unwrap();
    let owner = Owner::parse("acme").unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..32 {
        let (vault, owner) = (vault.clone(), owner.clone());
        writers.spawn(async move {
            let label = Label::parse(&format!("w{i}")).unwrap();
            vault
                .add(&owner, &label, &sample_credential(), false)
                .await
                .unwrap();
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    let status = vault.key_status().await.unwrap();
    let active = status.keys.iter().find(|k| k.id == status.active).unwrap();
    assert_eq!(status.records.get(&status.active), Some(&32));
    assert_eq!(
        active.encryptions,
        1 << 20,
        "one block of 2^20, reserved once"
    );
}
