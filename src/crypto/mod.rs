//! Encryption at rest. The only module that touches chacha20poly1305.
//!
//! Each value is sealed with XChaCha20-Poly1305 under a fresh random 24-byte nonce (random nonces
//! are safe at this size). The associated data binds the ciphertext to the envelope header and to
//! its record, so a ciphertext copied onto another record, or under another header, fails to open.

mod envelope;
mod key_file;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

pub use envelope::{Envelope, FORMAT_V1};
pub use key_file::{load_or_create, KeyFileError, MasterKey};

/// Key id of the key held in the master key file. A future keyring gives further keys new ids.
pub const MASTER_KEY_ID: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("envelope is truncated or malformed")]
    Malformed,
    #[error("envelope format {0} is not supported")]
    UnknownFormat(u8),
    #[error("envelope was sealed with key id {0}, which this vault does not hold")]
    UnknownKey(u32),
    #[error("ciphertext failed authentication (wrong key, or moved or altered data)")]
    Unauthentic,
    #[error("the operating system's random number generator failed")]
    Rng,
}

/// Seals and opens envelopes with the vault's key.
pub struct Cipher {
    key_id: u32,
    aead: XChaCha20Poly1305,
}

impl Cipher {
    pub fn new(key: &MasterKey) -> Self {
        Self {
            key_id: MASTER_KEY_ID,
            aead: XChaCha20Poly1305::new(key.as_array().into()),
        }
    }

    /// Encrypts `plaintext` for the record named by `context`.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; envelope::NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Rng)?;
        let aad = aad(FORMAT_V1, self.key_id, context);
        let ciphertext = self
            .aead
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Malformed)?;
        Ok(Envelope::encode(self.key_id, &nonce, &ciphertext))
    }

    /// Decrypts an envelope sealed for the record named by `context`.
    pub fn open(&self, context: &[u8], stored: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let env = Envelope::decode(stored)?;
        if env.key_id != self.key_id {
            return Err(CryptoError::UnknownKey(env.key_id));
        }
        let aad = aad(env.format, env.key_id, context);
        self.aead
            .decrypt(
                &XNonce::from(env.nonce),
                Payload {
                    msg: env.ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Unauthentic)
    }
}

/// `"credvault" | format | key id | context`: the header is authenticated along with the record.
fn aad(format: u8, key_id: u32, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(9 + 5 + context.len());
    aad.extend_from_slice(b"credvault");
    aad.push(format);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(context);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(byte: u8) -> Cipher {
        Cipher::new(&MasterKey::from_bytes([byte; 32]))
    }

    #[test]
    fn round_trip_and_fresh_nonce() {
        let c = cipher(1);
        let a = c.seal(b"ctx", b"secret").unwrap();
        let b = c.seal(b"ctx", b"secret").unwrap();
        assert_ne!(a, b, "nonce must differ per write");
        assert_eq!(c.open(b"ctx", &a).unwrap().as_slice(), b"secret");
    }

    #[test]
    fn wrong_context_key_or_tamper_fails() {
        let c = cipher(1);
        let sealed = c.seal(b"owner\0a", b"secret").unwrap();
        assert!(matches!(
            c.open(b"owner\0b", &sealed),
            Err(CryptoError::Unauthentic)
        ));
        assert!(matches!(
            cipher(2).open(b"owner\0a", &sealed),
            Err(CryptoError::Unauthentic)
        ));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            c.open(b"owner\0a", &flipped),
            Err(CryptoError::Unauthentic)
        ));
        let mut other_key = sealed;
        other_key[4] = 9;
        assert!(matches!(
            c.open(b"owner\0a", &other_key),
            Err(CryptoError::UnknownKey(9))
        ));
    }
}
