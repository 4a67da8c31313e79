//! What the Admin service asks of the vault: the keyring's status, data key rotation and
//! retirement, root key rotation, and the rewrap that re-seals records under the active key.

use super::keys::KeyStatus;
use super::rewrap::RewrapProgress;
use super::{record, KeyInfo, Vault, VaultError};
use crate::crypto::RootKey;

impl Vault {
    /// Starts re-sealing every record under the active data key in the background (or resumes
    /// the stored pass), unless this instance runs one already; answers its progress at once.
    pub async fn start_rewrap(&self) -> Result<RewrapProgress, VaultError> {
        self.rewrap.start().await
    }

    /// The running rewrap's progress, or the last one's.
    pub fn rewrap_progress(&self) -> RewrapProgress {
        self.rewrap.progress()
    }

    /// The keyring as stored now, with how many records each key seals (a scan of key ids:
    /// nothing is decrypted).
    pub async fn key_status(&self) -> Result<KeyStatus, VaultError> {
        let mut status = self.keys.status().await?;
        status.root_key = self.keys.root_fingerprint();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self
                .store
                .scan(record::PREFIX, after.as_deref(), 1024)
                .await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            for (_, bytes) in &page {
                if let Ok(id) = crate::crypto::Keyring::key_id_of(bytes) {
                    *status.records.entry(id).or_default() += 1;
                }
            }
        }
        Ok(status)
    }

    /// Retires data key `id` once no record is sealed with it (FAILED_PRECONDITION with the
    /// count otherwise).
    pub async fn retire_key(&self, id: u32) -> Result<(KeyInfo, u64), VaultError> {
        let status = self.key_status().await?;
        let records = status.records.get(&id).copied().unwrap_or(0);
        if records > 0 {
            return Err(VaultError::KeyInUse {
                id,
                reason: format!(
                    "{records} record(s) are still sealed with it; re-encrypt them to the active key first"
                ),
            });
        }
        self.keys.retire(id).await
    }

    /// Reseals the keyring under the root key `new` (32 bytes), atomically; returns the keyring
    /// version and the fingerprints of the new and the previous root key.
    pub async fn rotate_root(&self, new: &[u8]) -> Result<(u64, String, String), VaultError> {
        let new = zeroize::Zeroizing::new(
            <[u8; crate::crypto::KEY_LEN]>::try_from(new)
                .map_err(|_| VaultError::BadRootKey(new.len()))?,
        );
        let new = RootKey::from_bytes(*new);
        let previous = self.keys.root_fingerprint();
        let next = new.fingerprint();
        if next == previous {
            return Err(VaultError::SameRootKey);
        }
        let version = self.keys.rotate_root(new).await?;
        Ok((version, next, previous))
    }

    /// A new active data key: new writes use it at once. Returns it and the keyring version.
    pub async fn rotate_key(&self) -> Result<(KeyInfo, u64), VaultError> {
        self.keys.rotate().await
    }
}
