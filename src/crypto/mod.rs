//! Encryption at rest. The only module that touches chacha20poly1305.
//!
//! Two levels of keys, as in Vault: the **root key** (a file, never stored with the data) seals
//! the **keyring** (`keyring.rs`), which is stored in the store and holds the data keys; a data
//! key seals records. Every value is sealed with XChaCha20-Poly1305 under a fresh random 24-byte
//! nonce (random nonces are safe at this size). The associated data names what the value is (a
//! record and which one, or the keyring and its version) and the envelope's header, so a
//! ciphertext copied onto another record, or under another header or key id, fails to open.

mod envelope;
mod key_file;
mod keyring;
mod legacy;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

pub use envelope::{Envelope, FORMAT_RECORD, FORMAT_V1};
pub use key_file::{load_or_create, KeyFileError, RootKey, KEY_LEN};
pub use keyring::{KeyInfo, KeyState, Keyring};
pub use legacy::LegacyCipher;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CryptoError {
    #[error("envelope is truncated or malformed")]
    Malformed,
    #[error("envelope format {0} is not supported")]
    UnknownFormat(u8),
    #[error(
        "sealed with data key {0}, which the keyring does not hold (or holds only as retired)"
    )]
    UnknownKey(u32),
    #[error("ciphertext failed authentication (wrong key, or moved or altered data)")]
    Unauthentic,
    #[error("the operating system's random number generator failed")]
    Rng,
}

fn random_nonce() -> Result<[u8; envelope::NONCE_LEN], CryptoError> {
    let mut nonce = [0u8; envelope::NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| CryptoError::Rng)?;
    Ok(nonce)
}

fn encrypt(
    aead: &XChaCha20Poly1305,
    nonce: &[u8; envelope::NONCE_LEN],
    aad: &[u8],
    msg: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    aead.encrypt(&XNonce::from(*nonce), Payload { msg, aad })
        .map_err(|_| CryptoError::Malformed)
}

fn decrypt(
    aead: &XChaCha20Poly1305,
    nonce: &[u8; envelope::NONCE_LEN],
    aad: &[u8],
    msg: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    aead.decrypt(&XNonce::from(*nonce), Payload { msg, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Unauthentic)
}
