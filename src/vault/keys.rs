//! The keyring in the store: loaded at open (created on a new store, made from the master key's
//! store by the upgrade), changed by compare-and-swap so instances sharing a store never lose
//! each other's changes, and re-read when a record names a key this instance does not know.
//!
//! **Encryption counts.** Every seal counts against the active key. Counting each one in the
//! stored keyring would add a write to every write, so an instance *reserves* a block of
//! encryptions (stored first, then used): the stored count is always at least the true one, and a
//! crash or restart only loses the unused rest of a block. When a reservation would take the
//! active key past `rotate_after_encryptions` (default 2^32, far below XChaCha20-Poly1305's
//! random-nonce bound), or the key is older than `max_age`, the reservation rotates first.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;

use super::record::PREFIX;
use super::upgrade::CANARY_KEY;
use super::{OpenError, VaultError};
use crate::crypto::{CryptoError, KeyInfo, KeyState, Keyring, LegacyCipher, RootKey};
use crate::store::{Store, Stored};

pub(super) const KEYRING_KEY: &[u8] = b"meta/keyring";
/// The most encryptions one reservation takes.
const MAX_BLOCK: u64 = 1 << 20;
const MAX_CAS_ATTEMPTS: usize = 100;

/// When data keys rotate by themselves, and how fast a rewrap re-seals records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Rotate before a key has sealed more than this many values.
    pub rotate_after_encryptions: u64,
    /// Rotate a key this old (off when `None`).
    pub max_age: Option<Duration>,
    /// Records a rewrap re-seals per second, at most.
    pub rewrap_per_second: u32,
}

/// `keys.rewrap_per_second`'s default: BENCHMARKS.md measures what it costs Resolve.
pub const REWRAP_PER_SECOND: u32 = 1000;

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            rotate_after_encryptions: 1 << 32,
            max_age: None,
            rewrap_per_second: REWRAP_PER_SECOND,
        }
    }
}

impl KeyPolicy {
    /// Encryptions reserved at a time: small enough that a bound set low (tests) is honoured.
    fn block(&self) -> u64 {
        (self.rotate_after_encryptions / 1024).clamp(1, MAX_BLOCK)
    }
}

/// What `keys status` shows.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub keyring_version: u64,
    pub active: u32,
    pub keys: Vec<KeyInfo>,
    /// Records sealed with each key id (filled in by `Vault::key_status`, which scans).
    pub records: std::collections::BTreeMap<u32, u64>,
    /// The fingerprint of the root key in use.
    pub root_key: String,
}

/// Encryptions this instance reserved and has not used yet, on key `key`.
#[derive(Default)]
struct Window {
    key: u32,
    left: u64,
}

pub struct Keys {
    store: Arc<dyn Store>,
    /// Swapped by `rotate_root` (under `updating`).
    root: RwLock<Arc<RootKey>>,
    current: RwLock<Arc<Keyring>>,
    window: Mutex<Window>,
    /// One keyring change at a time from this instance (others are caught by the CAS).
    updating: tokio::sync::Mutex<()>,
    policy: KeyPolicy,
}

impl Keys {
    /// Loads the keyring, or makes the first one: on a new store, or on a store of the first
    /// release once its canary proves `root` is its master key. Refuses a root key that does not
    /// open the keyring, and a store that lost its keyring.
    pub(super) async fn load(
        store: Arc<dyn Store>,
        root: RootKey,
        policy: KeyPolicy,
        initialized: bool,
    ) -> Result<Self, OpenError> {
        let ring = match store.get(KEYRING_KEY).await? {
            Some(stored) => open_with(&root, &stored)?,
            None => {
                match store.get(CANARY_KEY).await? {
                    Some(canary) => {
                        LegacyCipher::new(&root)
                            .open(CANARY_KEY, &canary)
                            .map_err(OpenError::WrongKey)?;
                    }
                    None if initialized => return Err(OpenError::KeyringMissing),
                    None => {
                        if !store.scan(PREFIX, None, 1).await?.is_empty() {
                            return Err(OpenError::KeyringMissing);
                        }
                    }
                }
                let ring = Keyring::generate(SystemTime::now())?;
                if store.put_if_absent(KEYRING_KEY, ring.seal(&root)?).await? {
                    ring
                } else {
                    // Another instance on a shared store made it first: use theirs.
                    let stored = store
                        .get(KEYRING_KEY)
                        .await?
                        .ok_or(OpenError::KeyringMissing)?;
                    open_with(&root, &stored)?
                }
            }
        };
        Ok(Self {
            store,
            root: RwLock::new(Arc::new(root)),
            current: RwLock::new(Arc::new(ring)),
            window: Mutex::new(Window::default()),
            updating: tokio::sync::Mutex::new(()),
            policy,
        })
    }

    /// Opens the first release's envelopes (the upgrade).
    pub(super) fn legacy(&self) -> LegacyCipher {
        LegacyCipher::new(&self.root())
    }

    fn root(&self) -> Arc<RootKey> {
        self.root.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The id of the key new records are sealed with.
    pub(super) fn active_id(&self) -> u32 {
        self.current().active().id
    }

    fn current(&self) -> Arc<Keyring> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `ring` current unless a newer one already is.
    fn install(&self, ring: Keyring) -> Arc<Keyring> {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if ring.version() > current.version() {
            *current = Arc::new(ring);
        }
        current.clone()
    }

    /// Seals a record's plaintext under the active key, counted.
    pub async fn seal(&self, context: &[u8], plain: &[u8]) -> Result<Vec<u8>, VaultError> {
        loop {
            if let Some(ring) = self.take_one() {
                return Ok(ring.seal_record(context, plain)?);
            }
            self.reserve().await?;
        }
    }

    /// Opens a record; a key id this instance does not know makes it re-read the keyring once
    /// (another instance may have rotated) before the record counts as unreadable.
    pub async fn open(
        &self,
        context: &[u8],
        stored: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        match self.current().open_record(context, stored) {
            Err(CryptoError::UnknownKey(id)) => match self.reload().await {
                Ok(ring) => ring.open_record(context, stored),
                Err(e) => {
                    tracing::warn!(error = %e, "re-reading the keyring failed");
                    Err(CryptoError::UnknownKey(id))
                }
            },
            other => other,
        }
    }

    /// Reads the stored keyring again.
    pub async fn reload(&self) -> Result<Arc<Keyring>, VaultError> {
        let (_, ring) = self.read_stored().await?;
        Ok(self.install(ring))
    }

    /// The stored keyring: its bytes (for a compare-and-swap) and what they open to.
    pub(super) async fn read_stored(&self) -> Result<(Stored, Keyring), VaultError> {
        let stored = self
            .store
            .get(KEYRING_KEY)
            .await?
            .ok_or_else(|| VaultError::Keyring("the keyring record is gone".into()))?;
        let root = self.root();
        let ring = Keyring::open(&root, &stored).map_err(|e| {
            let why = match Keyring::sealed_by(&stored) {
                Some(by) if by != root.fingerprint() => format!(
                    "it is sealed by root key {by} now (another instance rotated the root key?), this instance has {}: restart it with that root key file",
                    root.fingerprint()
                ),
                _ => e.to_string(),
            };
            VaultError::Keyring(format!("the stored keyring does not open: {why}"))
        })?;
        Ok((stored, ring))
    }

    /// The keyring as stored now.
    pub async fn status(&self) -> Result<KeyStatus, VaultError> {
        let ring = self.reload().await?;
        Ok(KeyStatus {
            keyring_version: ring.version(),
            active: ring.active().id,
            keys: ring.infos(),
            records: Default::default(),
            root_key: self.root_fingerprint(),
        })
    }

    /// A new active data key; the old one becomes decrypt-only. New writes use it at once.
    /// Returns it and the keyring version that made it.
    pub async fn rotate(&self) -> Result<(KeyInfo, u64), VaultError> {
        let one = self.updating.lock().await;
        let ring = self
            .update(&one, |ring| Ok(Some(ring.rotated(SystemTime::now())?)))
            .await?;
        let active = ring.active().clone();
        tracing::info!(
            key = active.id,
            keyring_version = ring.version(),
            "data key rotated"
        );
        Ok((active, ring.version()))
    }

    /// Drops key `id`'s material for good (the caller checked that no record uses it).
    /// Returns it and the keyring version.
    pub async fn retire(&self, id: u32) -> Result<(KeyInfo, u64), VaultError> {
        let one = self.updating.lock().await;
        let ring = self
            .update(&one, |ring| match ring.info(id).map(|k| k.state) {
                None => Err(VaultError::NoSuchKey(id)),
                Some(KeyState::Retired) => Ok(None),
                Some(KeyState::Active) => Err(VaultError::KeyInUse {
                    id,
                    reason: "it is the active key; rotate first".into(),
                }),
                Some(KeyState::DecryptOnly) => Ok(ring.retired(id)),
            })
            .await?;
        tracing::info!(
            key = id,
            keyring_version = ring.version(),
            "data key retired"
        );
        let info = ring.info(id).cloned().ok_or(VaultError::NoSuchKey(id))?;
        Ok((info, ring.version()))
    }

    /// Reseals the keyring under `new`, in one compare-and-swap: before it the store opens with
    /// the old root key only, after it with the new one only. This instance uses `new` from then
    /// on. Returns the keyring version.
    pub async fn rotate_root(&self, new: RootKey) -> Result<u64, VaultError> {
        let one = self.updating.lock().await;
        let new = Arc::new(new);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (stored, ring) = self.read_stored().await?;
            let next = ring.resealed();
            let sealed = next.seal(&new)?;
            if self
                .store
                .compare_and_swap(KEYRING_KEY, &stored, Some(sealed))
                .await?
            {
                *self.root.write().unwrap_or_else(|e| e.into_inner()) = new.clone();
                let version = self.install(next).version();
                drop(one);
                tracing::info!(
                    root_key = %new.fingerprint(),
                    keyring_version = version,
                    "keyring resealed under a new root key: start this store with that key file from now on"
                );
                return Ok(version);
            }
        }
        Err(VaultError::Keyring(
            "the keyring changed under every attempt to reseal it; retry".into(),
        ))
    }

    /// The fingerprint of the root key in use.
    pub fn root_fingerprint(&self) -> String {
        self.root().fingerprint()
    }

    fn too_old(&self, ring: &Keyring) -> bool {
        self.policy.max_age.is_some_and(|age| {
            ring.active()
                .created_at
                .checked_add(age)
                .is_some_and(|due| due <= SystemTime::now())
        })
    }

    /// One encryption of this instance's reservation, with the ring to seal under.
    fn take_one(&self) -> Option<Arc<Keyring>> {
        let ring = self.current();
        if self.too_old(&ring) {
            return None;
        }
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if window.key != ring.active().id || window.left == 0 {
            return None;
        }
        window.left -= 1;
        Some(ring)
    }

    /// Whether this instance holds unused encryptions on `ring`'s active key.
    fn window_open(&self, ring: &Keyring) -> bool {
        let window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        window.key == ring.active().id && window.left > 0 && !self.too_old(ring)
    }

    /// Reserves the next block of encryptions, rotating first when the active key has done its
    /// share (or is too old). A no-op when this instance already holds a block on the active key:
    /// writers that found the window empty together reserve one block, not one each. Called at
    /// open too, so the first write does not wait for a keyring write of its own.
    pub(super) async fn reserve(&self) -> Result<(), VaultError> {
        let block = self.policy.block();
        let bound = self.policy.rotate_after_encryptions;
        let mut rotated = None;
        let mut reserved = false;
        // Held until the window is set, so a writer waiting behind us sees it.
        let one = self.updating.lock().await;
        let ring = self
            .update(&one, |ring| {
                if self.window_open(ring) {
                    return Ok(None);
                }
                reserved = true;
                let active = ring.active();
                let full = active.encryptions.saturating_add(block) > bound;
                let base = if full || self.too_old(ring) {
                    let next = ring.rotated(SystemTime::now())?;
                    rotated = Some((active.id, active.encryptions, next.active().id));
                    next
                } else {
                    ring.clone()
                };
                Ok(Some(base.reserved(block)))
            })
            .await?;
        if let Some((old, count, new)) = rotated {
            tracing::info!(
                old_key = old,
                encryptions = count,
                new_key = new,
                "data key rotated automatically (encryption bound or age)"
            );
        }
        if reserved {
            let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
            *window = Window {
                key: ring.active().id,
                left: block,
            };
        }
        Ok(())
    }

    /// Applies `change` to the stored keyring by compare-and-swap, retrying on a lost race
    /// (another instance changed it). `None` from `change`: nothing to write. The caller holds
    /// `updating` (one change at a time from this instance).
    async fn update(
        &self,
        _one: &tokio::sync::MutexGuard<'_, ()>,
        mut change: impl FnMut(&Keyring) -> Result<Option<Keyring>, VaultError>,
    ) -> Result<Arc<Keyring>, VaultError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (stored, ring) = self.read_stored().await?;
            let Some(next) = change(&ring)? else {
                return Ok(self.install(ring));
            };
            let sealed = next.seal(&self.root())?;
            if self
                .store
                .compare_and_swap(KEYRING_KEY, &stored, Some(sealed))
                .await?
            {
                return Ok(self.install(next));
            }
        }
        Err(VaultError::Keyring(
            "the keyring changed under every attempt to update it; retry".into(),
        ))
    }
}

/// Opens the stored keyring with `root`; a refusal names both keys when the keyring says which
/// one sealed it.
fn open_with(root: &RootKey, stored: &[u8]) -> Result<Keyring, OpenError> {
    Keyring::open(root, stored).map_err(|e| match Keyring::sealed_by(stored) {
        Some(sealed_by) if sealed_by != root.fingerprint() => OpenError::OtherRootKey {
            sealed_by,
            given: root.fingerprint(),
        },
        _ => OpenError::WrongKey(e),
    })
}
