//! The sealing of the first release: only a credential's secret part, under the master key
//! itself (key id 1), with AAD `"credvault" | format 1 | key id | record key`. Read by the
//! upgrade (`vault::upgrade`) and nothing else; the master key of such a data dir is its root key.

use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use zeroize::Zeroizing;

use super::envelope::{Envelope, FORMAT_V1};
use super::{CryptoError, RootKey};

/// The one key id format 1 ever used.
const V1_KEY_ID: u32 = 1;

pub struct LegacyCipher {
    aead: XChaCha20Poly1305,
}

impl LegacyCipher {
    pub fn new(key: &RootKey) -> Self {
        Self {
            aead: XChaCha20Poly1305::new(key.as_array().into()),
        }
    }

    /// Decrypts a format-1 envelope sealed for the record named by `context`.
    pub fn open(&self, context: &[u8], stored: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let env = Envelope::decode(stored)?;
        if env.format != FORMAT_V1 {
            return Err(CryptoError::UnknownFormat(env.format));
        }
        if env.key_id != V1_KEY_ID {
            return Err(CryptoError::UnknownKey(env.key_id));
        }
        super::decrypt(&self.aead, &env.nonce, &aad(context), env.ciphertext)
    }

    /// Seals as the first release did (tests build old stores with it).
    #[doc(hidden)]
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = super::random_nonce()?;
        let ciphertext = super::encrypt(&self.aead, &nonce, &aad(context), plaintext)?;
        Ok(Envelope::encode(FORMAT_V1, V1_KEY_ID, &nonce, &ciphertext))
    }
}

fn aad(context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(9 + 5 + context.len());
    aad.extend_from_slice(b"credvault");
    aad.push(FORMAT_V1);
    aad.extend_from_slice(&V1_KEY_ID.to_be_bytes());
    aad.extend_from_slice(context);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let c = LegacyCipher::new(&RootKey::from_bytes([1; 32]));
        let sealed = c.seal(b"owner\0a", b"secret").unwrap();
        assert_eq!(c.open(b"owner\0a", &sealed).unwrap().as_slice(), b"secret");
        assert!(matches!(
            c.open(b"owner\0b", &sealed),
            Err(CryptoError::Unauthentic)
        ));
        let other = LegacyCipher::new(&RootKey::from_bytes([2; 32]));
        assert!(matches!(
            other.open(b"owner\0a", &sealed),
            Err(CryptoError::Unauthentic)
        ));
    }
}
