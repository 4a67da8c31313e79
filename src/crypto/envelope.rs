//! The stored envelope: `[format][key id: u32 BE][nonce: 24 bytes][ciphertext + 16-byte tag]`.
//!
//! The key id is in every envelope so a keyring can hold several keys and rotate online; format 1
//! only ever uses the key of the master key file (id 1).

use super::CryptoError;

pub const FORMAT_V1: u8 = 1;
pub const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// A parsed envelope, borrowing the ciphertext from the stored bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub format: u8,
    pub key_id: u32,
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: &'a [u8],
}

impl<'a> Envelope<'a> {
    pub fn encode(key_id: u32, nonce: &[u8; NONCE_LEN], ciphertext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&key_id.to_be_bytes());
        out.extend_from_slice(nonce);
        out.extend_from_slice(ciphertext);
        out
    }

    /// Parses without trusting the input: any byte string gives an envelope or an error.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, CryptoError> {
        let (&format, rest) = bytes.split_first().ok_or(CryptoError::Malformed)?;
        if format != FORMAT_V1 {
            return Err(CryptoError::UnknownFormat(format));
        }
        if rest.len() < 4 + NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let (key_id, rest) = rest.split_at(4);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        Ok(Self {
            format,
            key_id: u32::from_be_bytes(key_id.try_into().map_err(|_| CryptoError::Malformed)?),
            nonce: nonce.try_into().map_err(|_| CryptoError::Malformed)?,
            ciphertext,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = Envelope::decode(&bytes);
        }

        #[test]
        fn round_trips(key_id in any::<u32>(), nonce in any::<[u8; 24]>(),
                       ct in proptest::collection::vec(any::<u8>(), 16..64)) {
            let bytes = Envelope::encode(key_id, &nonce, &ct);
            let env = Envelope::decode(&bytes).unwrap();
            prop_assert_eq!(env, Envelope { format: FORMAT_V1, key_id, nonce, ciphertext: &ct });
        }
    }

    #[test]
    fn rejects_unknown_format_and_truncation() {
        let bytes = Envelope::encode(1, &[7; 24], &[0; 16]);
        assert!(Envelope::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(matches!(
            Envelope::decode(&other),
            Err(CryptoError::UnknownFormat(2))
        ));
    }
}
