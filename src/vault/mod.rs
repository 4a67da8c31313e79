//! The vault core: Add, List, Delete, Resolve and recorded validation over an encrypted store.
//! Knows nothing of gRPC; speaks domain types.

mod admission;
mod error;
mod quota;
mod record;
mod validate;

use std::sync::Arc;
use std::time::SystemTime;

pub use admission::QueueFull;
pub use error::{OpenError, VaultError};
pub use quota::QuotaExceeded;
pub use record::{key as record_key, StoredRecord};
pub use validate::{ValidateError, Validated, Validator};

use crate::crypto::Cipher;
use crate::domain::{
    Credential, Label, Metadata, Owner, PageToken, ValidationState, ValidationStatus, WriteId,
};
use crate::store::Store;
use record::SealedCredential;

const CANARY_KEY: &[u8] = b"meta/canary";
const CANARY_PLAINTEXT: &[u8] = b"credvault canary v1";
/// A CAS loop that loses this many times in a row gives up with ABORTED instead of spinning.
const MAX_CAS_ATTEMPTS: usize = 1000;

/// A decrypted credential and the write it belongs to.
#[derive(Debug)]
pub struct Resolved {
    pub credential: Credential,
    pub version: u64,
    pub write_id: WriteId,
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Metadata>,
    pub next: Option<PageToken>,
}

pub struct Vault {
    store: Arc<dyn Store>,
    cipher: Cipher,
}

impl Vault {
    /// Opens the vault, refusing a master key that does not open the canary record. The canary is
    /// written on first start, so a wrong key fails at startup instead of on every Resolve.
    ///
    /// `initialized`: this data dir completed a first start, so its canary must be there. sled
    /// opens a truncated or emptied log as a shorter (or new) one without complaint; without this
    /// check a store whose files lost their contents would come up as an empty vault. A store
    /// that never completed a first start (a crash before the canary was durable) and holds no
    /// credential is new: it gets its canary now instead of refusing every later start.
    pub async fn open(
        store: Arc<dyn Store>,
        cipher: Cipher,
        initialized: bool,
    ) -> Result<Self, OpenError> {
        match store.get(CANARY_KEY).await? {
            Some(sealed) => {
                cipher
                    .open(CANARY_KEY, &sealed)
                    .map_err(OpenError::WrongKey)?;
            }
            None if initialized => return Err(OpenError::CanaryMissing),
            None => {
                if !store.scan(record::PREFIX, None, 1).await?.is_empty() {
                    return Err(OpenError::CanaryMissing);
                }
                let sealed = cipher.seal(CANARY_KEY, CANARY_PLAINTEXT)?;
                store.put_if_absent(CANARY_KEY, sealed).await?;
            }
        }
        Ok(Self { store, cipher })
    }

    /// Stores `cred`; with `replace`, overwrites an existing one and bumps its version.
    pub async fn add(
        &self,
        owner: &Owner,
        label: &Label,
        cred: &Credential,
        replace: bool,
    ) -> Result<Metadata, VaultError> {
        let key = record::key(owner, label);
        let plain = SealedCredential::encode(cred);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let now = SystemTime::now();
            let sealed = self.cipher.seal(&key, &plain)?;
            let write_id = new_write_id()?;
            // Without `replace` there is nothing to read first: the atomic create-if-absent
            // below tells whether the label is taken. Saves a store lookup on every new label.
            let current = if replace {
                self.store.get(&key).await?
            } else {
                None
            };
            let written = match &current {
                None => {
                    let rec = StoredRecord::new(cred, sealed, write_id, 1, now, now);
                    let bytes = prost::Message::encode_to_vec(&rec);
                    let created = self.store.put_if_absent(&key, bytes).await?;
                    if !created && !replace {
                        return Err(self.already_exists(owner, label).await);
                    }
                    // A replace that lost the race to create the label retries as a replace.
                    created.then_some(rec)
                }
                // Only read (and so only `Some`) with `replace`.
                Some(old_bytes) => {
                    let old = self.decode(owner, label, old_bytes)?;
                    let (version, created) = (old.version + 1, old.created_at());
                    let rec = StoredRecord::new(cred, sealed, write_id, version, created, now);
                    let bytes = prost::Message::encode_to_vec(&rec);
                    self.store
                        .compare_and_swap(&key, old_bytes, Some(bytes))
                        .await?
                        .then_some(rec)
                }
            };
            if let Some(rec) = written {
                return self.metadata(owner, label, &rec);
            }
        }
        Err(VaultError::Contended {
            owner: owner.clone(),
            label: label.clone(),
        })
    }

    /// One page of an owner's credentials, ordered by label.
    pub async fn list(
        &self,
        owner: &Owner,
        page_size: usize,
        after: Option<PageToken>,
    ) -> Result<Page, VaultError> {
        let prefix = record::owner_prefix(owner);
        let after_key = after.map(|t| record::key(owner, &t.0));
        // One extra entry tells whether another page follows.
        let entries = self
            .store
            .scan(&prefix, after_key.as_deref(), page_size + 1)
            .await?;
        let more = entries.len() > page_size;
        let mut items = Vec::with_capacity(page_size.min(entries.len()));
        for (key, value) in entries.into_iter().take(page_size) {
            let label = label_of(owner, &prefix, &key)?;
            let rec = self.decode(owner, &label, &value)?;
            items.push(self.metadata(owner, &label, &rec)?);
        }
        let next = if more {
            items.last().map(|m| PageToken(m.label.clone()))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Erases a credential; returns the version that was erased.
    pub async fn delete(&self, owner: &Owner, label: &Label) -> Result<u64, VaultError> {
        let key = record::key(owner, label);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(current) = self.store.get(&key).await? else {
                // Maybe another writer's Delete, applied but not yet durable: report it only
                // once it is, or a crash could bring back what we called deleted.
                self.store.flush().await?;
                return Err(VaultError::NotFound {
                    owner: owner.clone(),
                    label: label.clone(),
                });
            };
            // A record that no longer decodes can still be deleted.
            let version = self.decode(owner, label, &current).map_or(0, |r| r.version);
            if self.store.compare_and_swap(&key, &current, None).await? {
                return Ok(version);
            }
        }
        Err(VaultError::Contended {
            owner: owner.clone(),
            label: label.clone(),
        })
    }

    /// Decrypts a credential. With `require_valid`, only one whose last validation was VALID.
    pub async fn resolve(
        &self,
        owner: &Owner,
        label: &Label,
        require_valid: bool,
    ) -> Result<Resolved, VaultError> {
        let key = record::key(owner, label);
        // The hot path: no Metadata (its clones) is built, only the two fields Resolve needs.
        let rec = self.fetch(owner, label, &key).await?;
        let state = rec.validation_state();
        if require_valid && state != ValidationState::Valid {
            return Err(VaultError::NotValid {
                owner: owner.clone(),
                label: label.clone(),
                state,
            });
        }
        let corrupt = |reason: String| VaultError::Corrupt {
            owner: owner.clone(),
            label: label.clone(),
            reason,
        };
        let plain = self
            .cipher
            .open(&key, &rec.sealed)
            .map_err(|e| corrupt(e.to_string()))?;
        let credential =
            SealedCredential::decode_credential(&plain).map_err(|e| corrupt(e.to_string()))?;
        Ok(Resolved {
            credential,
            version: rec.version,
            write_id: rec.write_id(),
        })
    }

    /// A credential's metadata, without opening its secret.
    pub async fn describe(&self, owner: &Owner, label: &Label) -> Result<Metadata, VaultError> {
        let key = record::key(owner, label);
        let rec = self.fetch(owner, label, &key).await?;
        self.metadata(owner, label, &rec)
    }

    /// Reads and decodes the record stored under `key` (`owner`/`label`).
    async fn fetch(
        &self,
        owner: &Owner,
        label: &Label,
        key: &[u8],
    ) -> Result<StoredRecord, VaultError> {
        let bytes = self
            .store
            .get(key)
            .await?
            .ok_or_else(|| VaultError::NotFound {
                owner: owner.clone(),
                label: label.clone(),
            })?;
        self.decode(owner, label, &bytes)
    }

    /// Records a validation outcome for the write `checked`. If the credential was replaced or
    /// deleted meanwhile (even if re-added since, at the same version number), the outcome is
    /// stale: it is dropped and `None` is returned.
    pub async fn record_validation(
        &self,
        owner: &Owner,
        label: &Label,
        checked: WriteId,
        status: &ValidationStatus,
    ) -> Result<Option<Metadata>, VaultError> {
        let key = record::key(owner, label);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(current) = self.store.get(&key).await? else {
                return Ok(None);
            };
            let mut rec = self.decode(owner, label, &current)?;
            if rec.write_id() != checked {
                return Ok(None);
            }
            rec.set_validation(status);
            let bytes = prost::Message::encode_to_vec(&rec);
            if self
                .store
                .compare_and_swap(&key, &current, Some(bytes))
                .await?
            {
                return self.metadata(owner, label, &rec).map(Some);
            }
        }
        Err(VaultError::Contended {
            owner: owner.clone(),
            label: label.clone(),
        })
    }

    /// Makes every acknowledged write durable (shutdown).
    pub async fn flush(&self) -> Result<(), VaultError> {
        Ok(self.store.flush().await?)
    }

    /// ALREADY_EXISTS for a label that is taken, once the write that took it is durable: it may
    /// be another writer's, applied in memory but not yet flushed, and a crash would undo it.
    pub(crate) async fn already_exists(&self, owner: &Owner, label: &Label) -> VaultError {
        match self.store.flush().await {
            Ok(()) => VaultError::AlreadyExists {
                owner: owner.clone(),
                label: label.clone(),
            },
            Err(e) => e.into(),
        }
    }

    /// Follows whether the store takes writes.
    pub fn store_health(&self) -> tokio::sync::watch::Receiver<crate::store::Health> {
        self.store.health()
    }

    fn decode(
        &self,
        owner: &Owner,
        label: &Label,
        bytes: &[u8],
    ) -> Result<StoredRecord, VaultError> {
        StoredRecord::decode_bytes(bytes).map_err(|e| VaultError::Corrupt {
            owner: owner.clone(),
            label: label.clone(),
            reason: e.to_string(),
        })
    }

    fn metadata(
        &self,
        owner: &Owner,
        label: &Label,
        rec: &StoredRecord,
    ) -> Result<Metadata, VaultError> {
        rec.metadata(owner, label).map_err(|e| VaultError::Corrupt {
            owner: owner.clone(),
            label: label.clone(),
            reason: e.to_string(),
        })
    }
}

fn new_write_id() -> Result<WriteId, VaultError> {
    let mut id = [0; 16];
    getrandom::fill(&mut id).map_err(|_| crate::crypto::CryptoError::Rng)?;
    Ok(WriteId(id))
}

fn label_of(owner: &Owner, prefix: &[u8], key: &[u8]) -> Result<Label, VaultError> {
    std::str::from_utf8(&key[prefix.len()..])
        .ok()
        .and_then(|s| Label::parse(s).ok())
        .ok_or_else(|| VaultError::Corrupt {
            owner: owner.clone(),
            label: Label::parse("unknown").expect("literal label is valid"),
            reason: "stored key is not a valid label".into(),
        })
}
