//! The vault core: Add, List, Delete, Resolve and recorded validation over an encrypted store.
//! Knows nothing of gRPC; speaks domain types.

mod admission;
mod backup;
mod census;
mod error;
mod key_admin;
mod keys;
mod quota;
mod record;
mod revalidate;
mod rewrap;
mod upgrade;
mod validate;

use std::sync::Arc;
use std::time::SystemTime;

pub use crate::crypto::{KeyInfo, KeyState};
pub use admission::QueueFull;
pub use backup::{plan as plan_restore, restore, RestoreError, RestorePlan};
pub use error::{OpenError, VaultError};
pub use keys::{KeyPolicy, KeyStatus, REWRAP_PER_SECOND};
pub use quota::QuotaExceeded;
pub use record::{key as record_key, RecordBody};
pub use revalidate::Revalidation;
pub use rewrap::{RewrapProgress, RewrapState};
pub use upgrade::V1Record;
pub use validate::{ValidateError, Validated, Validator};

use crate::crypto::RootKey;
use crate::domain::{
    Credential, Label, Metadata, Owner, PageToken, ValidationState, ValidationStatus, WriteId,
};
use crate::store::Store;
use keys::Keys;

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

/// Which read `fetch` makes: linearizable, or one the store may answer from its own recent copy.
#[derive(Clone, Copy)]
enum Read {
    Current,
    Recent,
}

pub struct Vault {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
    rewrap: rewrap::Rewrap,
    census: Arc<census::Census>,
}

impl Vault {
    /// Opens the vault with the default key policy; see `open_with`.
    pub async fn open(
        store: Arc<dyn Store>,
        root: RootKey,
        initialized: bool,
    ) -> Result<Self, OpenError> {
        Self::open_with(store, root, KeyPolicy::default(), initialized).await
    }

    /// Opens the vault: loads the keyring with `root` (refusing a root key that does not open
    /// it), and upgrades a store of the first release in place.
    ///
    /// `initialized`: this data dir completed a first start, so its keyring must be there. sled
    /// opens a truncated or emptied log as a shorter (or new) one without complaint; without this
    /// check a store whose files lost their contents would come up as an empty vault. A store
    /// that never completed a first start (a crash before the keyring was durable) and holds no
    /// credential is new: it gets its keyring now instead of refusing every later start.
    pub async fn open_with(
        store: Arc<dyn Store>,
        root: RootKey,
        policy: KeyPolicy,
        initialized: bool,
    ) -> Result<Self, OpenError> {
        if store.get(backup::RESTORING_KEY).await?.is_some() {
            return Err(OpenError::RestoreUnfinished);
        }
        let keys = Keys::load(store.clone(), root, policy, initialized).await?;
        keys.reserve()
            .await
            .map_err(|e| OpenError::Keyring(e.to_string()))?;
        if store.get(upgrade::CANARY_KEY).await?.is_some() {
            let upgraded = upgrade::run(&store, &keys, &keys.legacy()).await?;
            tracing::info!(
                records = upgraded,
                "store upgraded: every record is now sealed whole under the keyring's data key"
            );
        }
        let census = census::Census::open(store.clone()).await?;
        let keys = Arc::new(keys);
        let rewrap = rewrap::Rewrap::new(store.clone(), keys.clone(), policy.rewrap_per_second);
        rewrap
            .resume_if_stored()
            .await
            .map_err(|e| OpenError::Keyring(format!("resuming the rewrap: {e}")))?;
        Ok(Self {
            store,
            keys,
            rewrap,
            census,
        })
    }

    /// The gauges a metrics scrape reads: the credentials stored (kept, not scanned: see
    /// `census.rs`) and this instance's rewrap.
    pub fn metrics_reading(&self) -> crate::metrics::Reading {
        let rewrap = self.rewrap.progress();
        crate::metrics::Reading {
            stored_credentials: self.census.current(),
            rewrap: crate::metrics::RewrapReading {
                state: rewrap.state.name(),
                target_key: rewrap.target,
                planned: rewrap.total,
                passed: rewrap.done,
                unreadable: rewrap.unreadable,
            },
        }
    }

    /// A consistent snapshot of the sealed keyring and every sealed record, taken while serving
    /// (see `backup.rs`).
    pub async fn snapshot(&self) -> Result<crate::backup::Snapshot, VaultError> {
        backup::snapshot(&self.store, &self.keys).await
    }

    /// Stops background work (a running rewrap stops where it is; its cursor resumes it).
    pub async fn stop_background(&self) {
        self.rewrap.stop().await;
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
        for _ in 0..MAX_CAS_ATTEMPTS {
            let now = SystemTime::now();
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
                    let body = RecordBody::new(cred, write_id, 1, now, now);
                    let sealed = self.keys.seal(&key, &body.encode_plain()).await?;
                    let created = self.store.put_if_absent(&key, sealed).await?;
                    if !created && !replace {
                        return Err(self.already_exists(owner, label).await);
                    }
                    if created {
                        self.census.added();
                    }
                    // A replace that lost the race to create the label retries as a replace.
                    created.then_some(body)
                }
                // Only read (and so only `Some`) with `replace`.
                Some(old_bytes) => {
                    // A replace is how an unreadable record is overwritten: it starts over.
                    let (version, created) =
                        match self.open_body(owner, label, &key, old_bytes).await {
                            Ok(old) => (old.version + 1, old.created_at()),
                            Err(VaultError::Corrupt { reason, .. }) => {
                                tracing::warn!(%owner, %label, %reason,
                                    "replacing an unreadable record; its version restarts at 1");
                                (1, now)
                            }
                            Err(e) => return Err(e),
                        };
                    let body = RecordBody::new(cred, write_id, version, created, now);
                    let sealed = self.keys.seal(&key, &body.encode_plain()).await?;
                    self.store
                        .compare_and_swap(&key, old_bytes, Some(sealed))
                        .await?
                        .then_some(body)
                }
            };
            if let Some(body) = written {
                return self.metadata(owner, label, &body);
            }
        }
        Err(VaultError::Contended {
            owner: owner.clone(),
            label: label.clone(),
        })
    }

    /// One page of an owner's credentials, ordered by label. Each record is opened: its
    /// metadata is sealed with its secret.
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
            let body = self.open_body(owner, &label, &key, &value).await?;
            items.push(self.metadata(owner, &label, &body)?);
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
            // A record that no longer opens can still be deleted.
            let version = self
                .open_body(owner, label, &key, &current)
                .await
                .map_or(0, |b| b.version);
            if self.store.compare_and_swap(&key, &current, None).await? {
                self.census.deleted();
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
        // The one read that may come from the store's own copy (etcd's cached read mode).
        let mut body = self.fetch(owner, label, &key, Read::Recent).await?;
        let state = body.validation_state();
        if require_valid && state != ValidationState::Valid {
            return Err(VaultError::NotValid {
                owner: owner.clone(),
                label: label.clone(),
                state,
            });
        }
        let credential = body.credential().map_err(|e| VaultError::Corrupt {
            owner: owner.clone(),
            label: label.clone(),
            reason: e.to_string(),
        })?;
        Ok(Resolved {
            credential,
            version: body.version,
            write_id: body.write_id(),
        })
    }

    /// A credential's metadata (its record is opened, its secret not returned).
    pub async fn describe(&self, owner: &Owner, label: &Label) -> Result<Metadata, VaultError> {
        let key = record::key(owner, label);
        let body = self.fetch(owner, label, &key, Read::Current).await?;
        self.metadata(owner, label, &body)
    }

    /// Reads and opens the record stored under `key` (`owner`/`label`).
    async fn fetch(
        &self,
        owner: &Owner,
        label: &Label,
        key: &[u8],
        read: Read,
    ) -> Result<RecordBody, VaultError> {
        let stored = match read {
            Read::Current => self.store.get(key).await?,
            Read::Recent => self.store.get_recent(key).await?,
        };
        let bytes = stored.ok_or_else(|| VaultError::NotFound {
            owner: owner.clone(),
            label: label.clone(),
        })?;
        self.open_body(owner, label, key, &bytes).await
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
            let mut body = self.open_body(owner, label, &key, &current).await?;
            if body.write_id() != checked {
                return Ok(None);
            }
            body.set_validation(status);
            let sealed = self.keys.seal(&key, &body.encode_plain()).await?;
            if self
                .store
                .compare_and_swap(&key, &current, Some(sealed))
                .await?
            {
                return self.metadata(owner, label, &body).map(Some);
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

    /// Opens stored record bytes: DATA_LOSS (for this record only) when they do not open under
    /// the keyring or do not decode.
    async fn open_body(
        &self,
        owner: &Owner,
        label: &Label,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<RecordBody, VaultError> {
        let corrupt = |reason: String| VaultError::Corrupt {
            owner: owner.clone(),
            label: label.clone(),
            reason,
        };
        let plain = self
            .keys
            .open(key, bytes)
            .await
            .map_err(|e| corrupt(e.to_string()))?;
        RecordBody::decode_plain(&plain).map_err(|e| corrupt(e.to_string()))
    }

    fn metadata(
        &self,
        owner: &Owner,
        label: &Label,
        body: &RecordBody,
    ) -> Result<Metadata, VaultError> {
        body.metadata(owner, label)
            .map_err(|e| VaultError::Corrupt {
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
