//! Races on one label: concurrent Adds, replace vs Delete vs Resolve vs List, and validation
//! results racing replaces. Every write encodes a unique id into every field, so an answer that
//! mixed two writes' fields (or paired a write with another write's version) is caught.

mod common;
#[path = "common/workload.rs"]
mod workload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::{client_for, TestServer};
use credvault::crypto::RootKey;
use credvault::domain::{
    AccountSid, Auth, Credential, Label, MessagingServiceSid, Owner, Secret, Sender,
    ValidationState, ValidationStatus,
};
use credvault::proto::v1 as pb;
use credvault::store::SledStore;
use credvault::vault::Vault;
use tokio::sync::Barrier;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_adds_of_one_label_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(common::config(dir.path())).await;
    let channels = [server.channel().await, server.channel().await];
    for round in 0..4 {
        let label = format!("contested-{round}");
        let barrier = Arc::new(Barrier::new(50));
        let mut tasks = Vec::new();
        for i in 0..50u64 {
            let mut client = client_for(channels[i as usize % 2].clone());
            let (barrier, label) = (barrier.clone(), label.clone());
            tasks.push(tokio::spawn(async move {
                let req = pb::AddRequest {
                    owner: "racer".into(),
                    label,
                    credential: Some(workload::credential(0, i)),
                    ..Default::default()
                };
                barrier.wait().await;
                (i, client.add(req).await.map(|r| r.into_inner()))
            }));
        }
        let mut winners = Vec::new();
        let mut refused = 0;
        for task in tasks {
            match task.await.unwrap() {
                (i, Ok(reply)) => {
                    assert_eq!(reply.credential.unwrap().version, 1);
                    winners.push(i);
                }
                (_, Err(s)) if s.code() == Code::AlreadyExists => {
                    assert!(s.message().contains(&label), "{}", s.message());
                    refused += 1;
                }
                (_, Err(s)) => panic!("unexpected status: {s:?}"),
            }
        }
        assert_eq!((winners.len(), refused), (1, 49), "{label}");
        // The stored credential is the winner's, whole.
        let mut client = client_for(channels[0].clone());
        let got = client
            .resolve(common::resolve_request("racer", &label))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got, workload::expected_resolve(0, winners[0], 1));
    }
    server.stop().await.unwrap();
}

/// What readers saw: (write id, version) pairs, to check against what the writers were told.
type Seen = Arc<Mutex<Vec<(u64, u64)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_delete_resolve_list_answers_are_never_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(common::config(dir.path())).await;
    let channel = server.channel().await;
    let (owner, label) = ("racer", "hot");
    let acked: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
    let seen: Seen = Arc::default();
    let mut tasks = Vec::new();

    for writer in 0..4u64 {
        let (mut client, acked) = (client_for(channel.clone()), acked.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..120u64 {
                let write = writer * 1_000_000 + n + 1;
                let reply = client
                    .add(pb::AddRequest {
                        owner: owner.into(),
                        label: label.into(),
                        credential: Some(workload::credential(0, write)),
                        replace: true,
                        ..Default::default()
                    })
                    .await
                    .expect("replace never fails")
                    .into_inner();
                let version = reply.credential.unwrap().version;
                acked.lock().unwrap().insert(write, version);
            }
        }));
    }
    for _ in 0..2 {
        let mut client = client_for(channel.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..120 {
                let req = pb::DeleteRequest {
                    owner: owner.into(),
                    label: label.into(),
                };
                match client.delete(req).await {
                    Ok(_) => {}
                    Err(s) if s.code() == Code::NotFound => {}
                    Err(s) => panic!("delete: {s:?}"),
                }
            }
        }));
    }
    for _ in 0..3 {
        let (mut client, seen) = (client_for(channel.clone()), seen.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..300 {
                match client.resolve(common::resolve_request(owner, label)).await {
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        let write = workload::write_of(&reply).expect("known write");
                        // Every field from one write, with the version the answer claims.
                        assert_eq!(reply, workload::expected_resolve(0, write, reply.version));
                        seen.lock().unwrap().push((write, reply.version));
                    }
                    Err(s) if s.code() == Code::NotFound => {}
                    Err(s) => panic!("resolve: {s:?}"),
                }
            }
        }));
    }
    {
        let (mut client, seen) = (client_for(channel.clone()), seen.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..150 {
                let page = client
                    .list(pb::ListRequest {
                        owner: owner.into(),
                        ..Default::default()
                    })
                    .await
                    .expect("list")
                    .into_inner();
                for m in page.credentials {
                    let write = u64::from_str_radix(&m.account_sid[2..18], 16).unwrap();
                    let want = workload::expected_resolve(0, write, m.version);
                    // Secrets under 16 characters get no hint.
                    let hint = match want.password.len() {
                        n if n >= 16 => &want.password[n - 4..],
                        _ => "",
                    };
                    assert_eq!(m.secret_hint, hint);
                    let sender = match m.sender.unwrap() {
                        pb::credential_metadata::Sender::FromNumber(n) => n,
                        pb::credential_metadata::Sender::MessagingServiceSid(s) => s,
                    };
                    let want_sender = match want.sender.unwrap() {
                        pb::resolve_response::Sender::FromNumber(n) => n,
                        pb::resolve_response::Sender::MessagingServiceSid(s) => s,
                    };
                    assert_eq!(sender, want_sender, "List mixed two writes");
                    seen.lock().unwrap().push((write, m.version));
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    // A reader may see a write before its writer got the ack, but never a version other than
    // the one that write was acknowledged with.
    let acked = acked.lock().unwrap().clone();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(acked.len(), 480);
    for (write, version) in seen.iter() {
        assert_eq!(
            acked.get(write),
            Some(version),
            "write {write} was read at version {version}"
        );
    }
    println!(
        "{} reads, each one consistent write at its acknowledged version",
        seen.len()
    );
    assert!(!seen.is_empty(), "readers never saw a credential");
    server.stop().await.unwrap();
}

fn domain_credential(n: u64) -> Credential {
    Credential {
        account_sid: AccountSid::parse(&format!("AC{n:032x}")).unwrap(),
        auth: Auth::AuthToken(Secret::parse_auth_token(&format!("{:032x}", n + 1)).unwrap()),
        sender: Sender::MessagingService(
            MessagingServiceSid::parse(&format!("MG{n:032x}")).unwrap(),
        ),
        location: Default::default(),
    }
}

fn outcome(version: u64, valid: bool) -> ValidationStatus {
    ValidationStatus {
        state: if valid {
            ValidationState::Valid
        } else {
            ValidationState::Invalid
        },
        checked_at: Some(std::time::SystemTime::now()),
        twilio_error_code: if valid { 0 } else { 20003 },
        message: format!("checked version {version}"),
        key_type: None,
    }
}

/// Library level (the Validate RPC calls `record_validation` with the version it checked): a
/// result for an old version never lands on a newer one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_results_never_overwrite_a_newer_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), 16 << 20).unwrap();
    let vault = Arc::new(
        Vault::open(Arc::new(store), RootKey::from_bytes([3; 32]), false)
            .await
            .unwrap(),
    );
    let owner = Owner::parse("racer").unwrap();
    let label = Label::parse("validated").unwrap();
    vault
        .add(&owner, &label, &domain_credential(0), false)
        .await
        .unwrap();

    let mut tasks = Vec::new();
    {
        let (vault, owner, label) = (vault.clone(), owner.clone(), label.clone());
        tasks.push(tokio::spawn(async move {
            for n in 1..=150 {
                vault
                    .add(&owner, &label, &domain_credential(n), true)
                    .await
                    .unwrap();
            }
        }));
    }
    let recorded = Arc::new(Mutex::new((0u32, 0u32)));
    for validator in 0..4 {
        let (vault, owner, label) = (vault.clone(), owner.clone(), label.clone());
        let recorded = recorded.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..150 {
                // Like Validate: read the write, check it (elsewhere), record the outcome.
                let resolved = vault.resolve(&owner, &label, false).await.unwrap();
                let (version, write) = (resolved.version, resolved.write_id);
                tokio::task::yield_now().await;
                let status = outcome(version, (i + validator) % 2 == 0);
                match vault
                    .record_validation(&owner, &label, write, &status)
                    .await
                    .unwrap()
                {
                    Some(meta) => {
                        assert_eq!(meta.version, version);
                        // Stored at microsecond precision: compare what the outcome says.
                        let v = &meta.validation;
                        assert_eq!(
                            (v.state, v.twilio_error_code),
                            (status.state, status.twilio_error_code)
                        );
                        assert_eq!(v.message, status.message);
                        recorded.lock().unwrap().0 += 1;
                    }
                    None => recorded.lock().unwrap().1 += 1,
                }
                // Whatever is stored now: a recorded outcome belongs to the stored version.
                let meta = vault.describe(&owner, &label).await.unwrap();
                if meta.validation.state != ValidationState::Unvalidated {
                    assert_eq!(
                        meta.validation.message,
                        format!("checked version {}", meta.version),
                        "an outcome landed on another version"
                    );
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (landed, dropped) = *recorded.lock().unwrap();
    println!("validation outcomes: {landed} recorded, {dropped} dropped as stale");
    assert!(landed > 0);

    // Deterministically: an outcome for an older write is dropped and changes nothing.
    let current = vault.describe(&owner, &label).await.unwrap();
    assert_eq!(current.version, 151);
    let older = vault
        .add(&owner, &label, &domain_credential(152), true)
        .await
        .unwrap();
    let stale = vault
        .record_validation(&owner, &label, current.write_id, &outcome(151, true))
        .await
        .unwrap();
    assert!(stale.is_none());
    let after = vault.describe(&owner, &label).await.unwrap();
    assert_eq!(after, older);
    // A deleted credential takes no outcome, and neither does one added again under the label:
    // it is version 1 again, but not the write that was checked (ABA).
    vault.delete(&owner, &label).await.unwrap();
    let gone = vault
        .record_validation(&owner, &label, after.write_id, &outcome(152, true))
        .await
        .unwrap();
    assert!(gone.is_none());
    let first = vault
        .add(&owner, &label, &domain_credential(0), false)
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    vault.delete(&owner, &label).await.unwrap();
    let again = vault
        .add(&owner, &label, &domain_credential(1), false)
        .await
        .unwrap();
    assert_eq!(again.version, 1);
    let aba = vault
        .record_validation(&owner, &label, first.write_id, &outcome(1, true))
        .await
        .unwrap();
    assert!(
        aba.is_none(),
        "a result for a deleted write landed on its successor"
    );
    assert_eq!(
        vault
            .describe(&owner, &label)
            .await
            .unwrap()
            .validation
            .state,
        ValidationState::Unvalidated
    );
}
