//! Errors of the vault core. `grpc::status` maps each to a gRPC status, once.

use crate::crypto::CryptoError;
use crate::domain::{Label, Owner, ValidationState};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("credential with label '{label}' already exists for owner '{owner}'")]
    AlreadyExists { owner: Owner, label: Label },
    #[error("no credential with label '{label}' for owner '{owner}'")]
    NotFound { owner: Owner, label: Label },
    #[error(
        "credential '{label}' of owner '{owner}' is {state}, and require_valid needs VALIDATION_STATE_VALID: validate it first"
    )]
    NotValid {
        owner: Owner,
        label: Label,
        state: ValidationState,
    },
    /// A stored record failed to decrypt or decode: it was altered, moved, or written under
    /// another key. The reason is for logs; callers only learn that the record is unreadable.
    #[error("credential '{label}' of owner '{owner}' is unreadable: {reason}")]
    Corrupt {
        owner: Owner,
        label: Label,
        reason: String,
    },
    #[error("too many concurrent writers on label '{label}' of owner '{owner}'; retry")]
    Contended { owner: Owner, label: Label },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sealing failed: {0}")]
    Crypto(#[from] CryptoError),
    #[error("the keyring has no data key {0}")]
    NoSuchKey(u32),
    /// A data key that may not be retired yet, and why.
    #[error("data key {id} cannot be retired: {reason}")]
    KeyInUse { id: u32, reason: String },
    #[error("new_root_key must be exactly 32 random bytes (it has {0})")]
    BadRootKey(usize),
    #[error("the new root key is the one in use; give a new one (32 random bytes)")]
    SameRootKey,
    /// The keyring could not be read or changed (the store is damaged, or far too contended).
    #[error("keyring: {0}")]
    Keyring(String),
}

/// Why the vault cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The root key is not the one this store was sealed with (`lib.rs` names the file).
    #[error("the root key does not open this store's keyring ({0}): it is not the key this data was sealed with")]
    WrongKey(CryptoError),
    /// The keyring names the root key that sealed it, and it is another one.
    #[error("the root key does not open this store's keyring: the keyring is sealed by root key {sealed_by}, and this root key is {given} (after `keys rotate-root`, the store needs the new root key file)")]
    OtherRootKey { sealed_by: String, given: String },
    #[error("the store's keyring record is gone although the data dir completed its first start or holds credentials: its files were truncated, emptied or replaced; restore the data dir from a backup")]
    KeyringMissing,
    #[error("a restore into this store was cut short: run the same `credvault restore` again to finish it")]
    RestoreUnfinished,
    #[error("upgrading the store to sealed records failed: {0}")]
    Upgrade(String),
    #[error("the keyring could not be updated at start: {0}")]
    Keyring(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}
