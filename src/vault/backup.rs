//! Backup and restore of the store's sealed contents: the keyring and every record, never
//! decrypted on the way out, checked whole before anything is written on the way in.
//!
//! **A snapshot is consistent** in what matters for a restore: every record in it opens under the
//! keyring in it. Records are read first and the keyring after, so keys made meanwhile are in
//! it; a record whose key was retired meanwhile (a rewrap moved it) is read again. Every write
//! acknowledged before the backup started is in it (at that version or a later one).
//!
//! **A restore** goes into an empty store only. It writes a marker (`meta/restoring`, naming the
//! file's checksum) first, the records next and the keyring last, then removes the marker: a
//! store cut short by a crash holds records without a keyring, which no server opens (it says
//! to finish the restore), and running the same restore again completes it.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::task::JoinSet;

use super::keys::{Keys, KEYRING_KEY};
use super::record::PREFIX;
use super::VaultError;
use crate::backup::{Snapshot, Verified};
use crate::crypto::{CryptoError, KeyState, Keyring, RootKey};
use crate::store::{Store, StoreError};

pub(super) const RESTORING_KEY: &[u8] = b"meta/restoring";
/// Passes over records whose key was retired while the snapshot was read.
const MAX_PASSES: usize = 10;
/// Records written at once by a restore (they share group commits).
const WRITERS: usize = 128;

/// Reads a snapshot of `store` while it serves.
pub(super) async fn snapshot(store: &Arc<dyn Store>, keys: &Keys) -> Result<Snapshot, VaultError> {
    let mut records = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = store.scan(PREFIX, after.as_deref(), 1024).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        records.extend(page);
    }
    for _ in 0..MAX_PASSES {
        let (keyring, ring) = keys.read_stored().await?;
        let mut stale = false;
        let mut kept = Vec::with_capacity(records.len());
        for (key, value) in records {
            if opens_with(&ring, &value) {
                kept.push((key, value));
                continue;
            }
            // Moved off a key retired since it was read? Read it again. Unchanged, it is
            // unreadable in the store too (DATA_LOSS there): copied as it is.
            match store.get(&key).await? {
                Some(now) if now == value => kept.push((key, value)),
                Some(now) => {
                    stale = true;
                    kept.push((key, now));
                }
                None => {}
            }
        }
        records = kept;
        if !stale {
            // Whatever the backup holds is durable in the store too.
            store.flush().await?;
            return Ok(Snapshot {
                created_at: SystemTime::now(),
                written_by: crate::VERSION.to_string(),
                keyring: keyring.into_value(),
                keyring_version: ring.version(),
                records: records
                    .into_iter()
                    .map(|(key, value)| (key, value.into_value()))
                    .collect(),
            });
        }
    }
    Err(VaultError::Keyring(
        "the keyring changed under every pass of the backup; retry".into(),
    ))
}

/// Whether the record's key is in `ring` with its material.
fn opens_with(ring: &Keyring, value: &[u8]) -> bool {
    Keyring::key_id_of(value)
        .ok()
        .and_then(|id| ring.info(id))
        .is_some_and(|k| k.state != KeyState::Retired)
}

/// What a restore found in the file, before it writes anything.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    /// The keyring to store: the backup's, with a new active data key, so the copy never seals
    /// under a key its source still uses.
    keyring: Vec<u8>,
    pub keyring_version: u64,
    pub active_key: u32,
    pub records: u64,
    /// Records that do not open under the backup's keyring (unreadable in the source too):
    /// restored as they are.
    pub unreadable: u64,
    marker: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the root key does not open the backup's keyring ({0}): it is not the root key of the store this backup was taken from")]
    WrongKey(CryptoError),
    #[error("the backup holds an entry that is not a credential record")]
    NotARecord,
    #[error("the target store is not empty (it holds {0}); restore only goes into a new data dir (or an empty etcd prefix): move the old one aside first")]
    NotEmpty(String),
    #[error("a restore of another backup was cut short in this store; finish that one, or start over with an empty data dir")]
    OtherRestore,
    #[error("sealing the keyring failed: {0}")]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a verified backup against `root`: the keyring opens, and every record is a credential
/// record (records that do not open are counted). Writes nothing.
pub fn plan(root: &RootKey, backup: &Verified) -> Result<RestorePlan, RestoreError> {
    let snap = &backup.snapshot;
    let ring = Keyring::open(root, &snap.keyring).map_err(RestoreError::WrongKey)?;
    let mut unreadable = 0;
    for (key, value) in &snap.records {
        if !key.starts_with(PREFIX) {
            return Err(RestoreError::NotARecord);
        }
        if ring.open_record(key, value).is_err() {
            unreadable += 1;
        }
    }
    let fresh = ring.rotated(SystemTime::now())?;
    Ok(RestorePlan {
        keyring: fresh.seal(root)?,
        keyring_version: fresh.version(),
        active_key: fresh.active().id,
        records: snap.records.len() as u64,
        unreadable,
        marker: backup.sha256.to_vec(),
    })
}

/// Writes a planned restore into `store`, which must be empty (or hold this same restore, cut
/// short: it is completed).
pub async fn restore(
    store: Arc<dyn Store>,
    plan: &RestorePlan,
    backup: &Verified,
) -> Result<(), RestoreError> {
    match store.get(RESTORING_KEY).await? {
        Some(marker) if *marker == *plan.marker => {
            tracing::info!("completing a restore of this backup that was cut short");
        }
        Some(_) => return Err(RestoreError::OtherRestore),
        None => {
            if let Some((key, _)) = store.scan(b"", None, 1).await?.first() {
                return Err(RestoreError::NotEmpty(describe(key)));
            }
            if !store
                .put_if_absent(RESTORING_KEY, plan.marker.clone())
                .await?
            {
                return Err(RestoreError::OtherRestore);
            }
        }
    }
    let mut writers = JoinSet::new();
    for (key, value) in backup.snapshot.records.iter().cloned() {
        if writers.len() >= WRITERS {
            joined(writers.join_next().await)?;
        }
        let store = store.clone();
        // Present already: written by the restore that was cut short.
        writers.spawn(async move { store.put_if_absent(&key, value).await.map(drop) });
    }
    while let Some(done) = writers.join_next().await {
        joined(Some(done))?;
    }
    // Last: a store with its keyring is a whole one.
    store
        .put_if_absent(KEYRING_KEY, plan.keyring.clone())
        .await?;
    if let Some(marker) = store.get(RESTORING_KEY).await? {
        store.compare_and_swap(RESTORING_KEY, &marker, None).await?;
    }
    store.flush().await?;
    Ok(())
}

fn joined(
    done: Option<Result<Result<(), StoreError>, tokio::task::JoinError>>,
) -> Result<(), RestoreError> {
    match done {
        Some(Ok(result)) => Ok(result?),
        Some(Err(e)) => Err(RestoreError::Store(StoreError::Backend(format!(
            "a restore writer failed: {e}"
        )))),
        None => Ok(()),
    }
}

fn describe(key: &[u8]) -> String {
    if key.starts_with(PREFIX) {
        "credentials".into()
    } else if key == KEYRING_KEY {
        "a keyring: a server has started on it".into()
    } else {
        format!("'{}'", String::from_utf8_lossy(key))
    }
}
