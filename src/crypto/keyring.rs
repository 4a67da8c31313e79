//! The keyring: the data keys that seal records, stored in the store sealed by the root key.
//!
//! Stored form: a `StoredKeyring` (version, nonce, ciphertext) whose ciphertext is the keyring
//! sealed by the root key with AAD `"credvault/keyring" | version`, so the version it shows
//! in the clear is the one that was sealed. Each data key has an id (never reused), a creation
//! time, a state (active: seals new records; decrypt-only: opens old ones; retired: its material
//! is gone) and an encryption count, an upper bound of the values it ever sealed (see
//! `vault::keys` for how it is reserved). A `Keyring` value is immutable: every change makes the
//! next version, which the store swaps in atomically.

use std::collections::BTreeMap;
use std::time::SystemTime;

use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use prost::Message;
use zeroize::{Zeroize, Zeroizing};

use super::envelope::{Envelope, FORMAT_RECORD, NONCE_LEN};
use super::key_file::KEY_LEN;
use super::{CryptoError, RootKey};
use crate::domain::{from_unix_micros, unix_micros};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    DecryptOnly,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::DecryptOnly => "decrypt-only",
            KeyState::Retired => "retired",
        }
    }
}

/// What may be shown of a data key: everything but its material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: u32,
    pub created_at: SystemTime,
    pub state: KeyState,
    /// Encryptions reserved with this key so far: at least as many as it performed.
    pub encryptions: u64,
}

#[derive(Clone)]
struct DataKey {
    info: KeyInfo,
    /// `None` once retired.
    material: Option<(Zeroizing<[u8; KEY_LEN]>, XChaCha20Poly1305)>,
}

/// The data keys, one of them active. Cheap to share behind an `Arc`; changes make a new one.
#[derive(Clone)]
pub struct Keyring {
    version: u64,
    active: u32,
    keys: BTreeMap<u32, DataKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("version", &self.version)
            .field("active", &self.active)
            .field("keys", &self.infos())
            .finish()
    }
}

impl Keyring {
    /// A first keyring: version 1, one fresh active key (id 1).
    pub fn generate(now: SystemTime) -> Result<Self, CryptoError> {
        let mut ring = Self {
            version: 1,
            active: 1,
            keys: BTreeMap::new(),
        };
        ring.keys.insert(1, DataKey::generate(1, now)?);
        Ok(ring)
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn active(&self) -> &KeyInfo {
        &self.keys[&self.active].info
    }

    pub fn infos(&self) -> Vec<KeyInfo> {
        self.keys.values().map(|k| k.info.clone()).collect()
    }

    pub fn info(&self, id: u32) -> Option<&KeyInfo> {
        self.keys.get(&id).map(|k| &k.info)
    }

    /// The next version, with a fresh active key; the active one becomes decrypt-only.
    pub fn rotated(&self, now: SystemTime) -> Result<Self, CryptoError> {
        let mut next = self.next();
        let id = self.keys.keys().last().map_or(1, |id| id + 1);
        if let Some(old) = next.keys.get_mut(&self.active) {
            old.info.state = KeyState::DecryptOnly;
        }
        next.keys.insert(id, DataKey::generate(id, now)?);
        next.active = id;
        Ok(next)
    }

    /// The next version, with `n` more encryptions reserved on the active key.
    pub fn reserved(&self, n: u64) -> Self {
        let mut next = self.next();
        if let Some(key) = next.keys.get_mut(&self.active) {
            key.info.encryptions = key.info.encryptions.saturating_add(n);
        }
        next
    }

    /// The next version, with key `id` retired: its material is dropped for good. The active key
    /// cannot be retired (rotate first).
    pub fn retired(&self, id: u32) -> Option<Self> {
        if id == self.active || !self.keys.contains_key(&id) {
            return None;
        }
        let mut next = self.next();
        let key = next.keys.get_mut(&id)?;
        key.info.state = KeyState::Retired;
        key.material = None;
        Some(next)
    }

    fn next(&self) -> Self {
        let mut next = self.clone();
        next.version += 1;
        next
    }

    /// Seals a record's plaintext under the active key, for the record named by `context`.
    pub fn seal_record(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (_, aead) = self.keys[&self.active]
            .material
            .as_ref()
            .ok_or(CryptoError::UnknownKey(self.active))?;
        let nonce = super::random_nonce()?;
        let aad = record_aad(self.active, context);
        let ciphertext = super::encrypt(aead, &nonce, &aad, plaintext)?;
        Ok(Envelope::encode(
            FORMAT_RECORD,
            self.active,
            &nonce,
            &ciphertext,
        ))
    }

    /// Opens a record sealed for `context` by any key of the ring that is not retired.
    pub fn open_record(
        &self,
        context: &[u8],
        stored: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let env = Envelope::decode(stored)?;
        if env.format != FORMAT_RECORD {
            return Err(CryptoError::UnknownFormat(env.format));
        }
        let (_, aead) = self
            .keys
            .get(&env.key_id)
            .and_then(|k| k.material.as_ref())
            .ok_or(CryptoError::UnknownKey(env.key_id))?;
        super::decrypt(
            aead,
            &env.nonce,
            &record_aad(env.key_id, context),
            env.ciphertext,
        )
    }

    /// The data key a stored record names, without opening it.
    pub fn key_id_of(stored: &[u8]) -> Result<u32, CryptoError> {
        Ok(Envelope::decode(stored)?.key_id)
    }

    /// The stored form, sealed by `root`.
    pub fn seal(&self, root: &RootKey) -> Result<Vec<u8>, CryptoError> {
        let plain = KeyringProto {
            version: self.version,
            active: self.active,
            keys: self
                .keys
                .values()
                .map(|k| DataKeyProto {
                    id: k.info.id,
                    key: k
                        .material
                        .as_ref()
                        .map(|(m, _)| m.to_vec())
                        .unwrap_or_default(),
                    created_at_micros: unix_micros(k.info.created_at),
                    state: match k.info.state {
                        KeyState::Active => 1,
                        KeyState::DecryptOnly => 2,
                        KeyState::Retired => 3,
                    },
                    encryptions: k.info.encryptions,
                })
                .collect(),
        };
        let bytes = Zeroizing::new(plain.encode_to_vec());
        drop(plain);
        let nonce = super::random_nonce()?;
        let aead = XChaCha20Poly1305::new(root.as_array().into());
        let ciphertext = super::encrypt(&aead, &nonce, &keyring_aad(self.version), &bytes)?;
        Ok(StoredKeyring {
            version: self.version,
            nonce: nonce.to_vec(),
            ciphertext,
            root_key: root.fingerprint(),
        }
        .encode_to_vec())
    }

    /// The fingerprint of the root key that sealed a stored keyring, if it names one (keyrings
    /// stored before fingerprints do not).
    pub fn sealed_by(stored: &[u8]) -> Option<String> {
        StoredKeyring::decode(stored)
            .ok()
            .map(|k| k.root_key)
            .filter(|f| !f.is_empty())
    }

    /// The same keys as the next version (a reseal under another root key).
    pub fn resealed(&self) -> Self {
        self.next()
    }

    /// Opens a stored keyring with `root`. `Unauthentic` means the root key is not the one that
    /// sealed it (or the bytes were altered).
    pub fn open(root: &RootKey, stored: &[u8]) -> Result<Self, CryptoError> {
        let outer = StoredKeyring::decode(stored).map_err(|_| CryptoError::Malformed)?;
        let nonce: [u8; NONCE_LEN] = outer
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Malformed)?;
        let aead = XChaCha20Poly1305::new(root.as_array().into());
        let plain = super::decrypt(
            &aead,
            &nonce,
            &keyring_aad(outer.version),
            &outer.ciphertext,
        )?;
        let inner = KeyringProto::decode(plain.as_slice()).map_err(|_| CryptoError::Malformed)?;
        if inner.version != outer.version {
            return Err(CryptoError::Malformed);
        }
        let mut keys = BTreeMap::new();
        for k in &inner.keys {
            let state = match k.state {
                1 => KeyState::Active,
                2 => KeyState::DecryptOnly,
                3 => KeyState::Retired,
                _ => return Err(CryptoError::Malformed),
            };
            let material = match state {
                KeyState::Retired => None,
                _ => {
                    let bytes: [u8; KEY_LEN] = k
                        .key
                        .as_slice()
                        .try_into()
                        .map_err(|_| CryptoError::Malformed)?;
                    Some(DataKey::material(Zeroizing::new(bytes)))
                }
            };
            let info = KeyInfo {
                id: k.id,
                created_at: from_unix_micros(k.created_at_micros),
                state,
                encryptions: k.encryptions,
            };
            keys.insert(k.id, DataKey { info, material });
        }
        let active_ok = keys
            .get(&inner.active)
            .is_some_and(|k| k.info.state == KeyState::Active);
        if !active_ok {
            return Err(CryptoError::Malformed);
        }
        Ok(Self {
            version: inner.version,
            active: inner.active,
            keys,
        })
    }
}

impl DataKey {
    fn generate(id: u32, now: SystemTime) -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| CryptoError::Rng)?;
        Ok(Self {
            info: KeyInfo {
                id,
                // As stored: to the microsecond.
                created_at: from_unix_micros(unix_micros(now)),
                state: KeyState::Active,
                encryptions: 0,
            },
            material: Some(Self::material(bytes)),
        })
    }

    fn material(bytes: Zeroizing<[u8; KEY_LEN]>) -> (Zeroizing<[u8; KEY_LEN]>, XChaCha20Poly1305) {
        let aead = XChaCha20Poly1305::new((&*bytes).into());
        (bytes, aead)
    }
}

/// `"credvault/record" | format | key id | record key`.
fn record_aad(key_id: u32, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + 5 + context.len());
    aad.extend_from_slice(b"credvault/record");
    aad.push(FORMAT_RECORD);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(context);
    aad
}

fn keyring_aad(version: u64) -> Vec<u8> {
    let mut aad = b"credvault/keyring".to_vec();
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

#[derive(Clone, PartialEq, Message)]
struct StoredKeyring {
    #[prost(uint64, tag = "1")]
    version: u64,
    #[prost(bytes = "vec", tag = "2")]
    nonce: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    ciphertext: Vec<u8>,
    /// The fingerprint of the root key that sealed it (`RootKey::fingerprint`): a hint for the
    /// error when another key is given, never trusted for anything else.
    #[prost(string, tag = "4")]
    root_key: String,
}

#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
struct KeyringProto {
    #[prost(uint64, tag = "1")]
    version: u64,
    #[prost(uint32, tag = "2")]
    active: u32,
    #[prost(message, repeated, tag = "3")]
    keys: Vec<DataKeyProto>,
}

/// Holds key material: wiped on drop, never printed.
#[derive(Clone, PartialEq, Message)]
#[prost(skip_debug)]
struct DataKeyProto {
    #[prost(uint32, tag = "1")]
    id: u32,
    #[prost(bytes = "vec", tag = "2")]
    key: Vec<u8>,
    #[prost(uint64, tag = "3")]
    created_at_micros: u64,
    /// 1 active, 2 decrypt-only, 3 retired.
    #[prost(uint32, tag = "4")]
    state: u32,
    #[prost(uint64, tag = "5")]
    encryptions: u64,
}

impl Drop for DataKeyProto {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for KeyringProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyringProto([REDACTED])")
    }
}

impl std::fmt::Debug for DataKeyProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKeyProto([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(b: u8) -> RootKey {
        RootKey::from_bytes([b; 32])
    }

    #[test]
    fn seals_and_opens_under_the_root_key_only() {
        let ring = Keyring::generate(SystemTime::now()).unwrap();
        let stored = ring.seal(&root(1)).unwrap();
        let back = Keyring::open(&root(1), &stored).unwrap();
        assert_eq!(back.infos(), ring.infos());
        assert!(matches!(
            Keyring::open(&root(2), &stored),
            Err(CryptoError::Unauthentic)
        ));
        // The version in the clear is authenticated: changing it breaks the seal.
        let mut outer = StoredKeyring::decode(stored.as_slice()).unwrap();
        outer.version += 1;
        assert!(Keyring::open(&root(1), &outer.encode_to_vec()).is_err());
    }

    #[test]
    fn records_open_with_their_own_key_after_rotation_until_it_is_retired() {
        let ring = Keyring::generate(SystemTime::now()).unwrap();
        let old = ring.seal_record(b"cred/a/b", b"body").unwrap();
        let next = ring.rotated(SystemTime::now()).unwrap();
        assert_eq!(next.version(), 2);
        assert_eq!(next.active().id, 2);
        assert_eq!(next.info(1).unwrap().state, KeyState::DecryptOnly);
        let new = next.seal_record(b"cred/a/b", b"body").unwrap();
        assert_eq!(Keyring::key_id_of(&new).unwrap(), 2);
        assert_eq!(&*next.open_record(b"cred/a/b", &old).unwrap(), b"body");
        // Moved to another record: refused.
        assert!(matches!(
            next.open_record(b"cred/a/c", &new),
            Err(CryptoError::Unauthentic)
        ));
        let retired = next.retired(1).unwrap();
        assert!(retired.retired(2).is_none(), "the active key stays");
        assert!(matches!(
            retired.open_record(b"cred/a/b", &old),
            Err(CryptoError::UnknownKey(1))
        ));
        let reopened = Keyring::open(&root(3), &retired.seal(&root(3)).unwrap()).unwrap();
        assert_eq!(reopened.info(1).unwrap().state, KeyState::Retired);
        assert_eq!(&*reopened.open_record(b"cred/a/b", &new).unwrap(), b"body");
    }

    #[test]
    fn reservations_count_on_the_active_key_and_debug_shows_no_material() {
        let ring = Keyring::generate(SystemTime::now()).unwrap();
        let next = ring.reserved(1000).reserved(24);
        assert_eq!(next.active().encryptions, 1024);
        assert_eq!(next.version(), 3);
        let shown = format!("{next:?}");
        assert!(shown.contains("encryptions: 1024"), "{shown}");
        let material = next.keys[&1].material.as_ref().unwrap().0.to_vec();
        assert!(!shown.contains(&format!("{material:?}")));
    }
}
