//! The stored envelope: `[format][key id: u32 BE][nonce: 24 bytes][ciphertext + 16-byte tag]`.
//!
//! Format 1 (releases before key management) sealed only a credential's secret part, always under
//! the master key (id 1); it is read once more, by the upgrade. Format 2 seals a whole record
//! under a data key of the keyring, named by its id.

use super::CryptoError;

/// The secret part of a record of the first release, under the master key.
pub const FORMAT_V1: u8 = 1;
/// A whole record (metadata and secret) under a data key.
pub const FORMAT_RECORD: u8 = 2;
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
    pub fn encode(format: u8, key_id: u32, nonce: &[u8; NONCE_LEN], ciphertext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(format);
        out.extend_from_slice(&key_id.to_be_bytes());
        out.extend_from_slice(nonce);
        out.extend_from_slice(ciphertext);
        out
    }

    /// Parses without trusting the input: any byte string gives an envelope or an error.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, CryptoError> {
        let (&format, rest) = bytes.split_first().ok_or(CryptoError::Malformed)?;
        if format != FORMAT_V1 && format != FORMAT_RECORD {
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
                       ct in proptest::collection::vec(any::<u8>(), 16..64),
                       whole in any::<bool>()) {
            let format = if whole { FORMAT_RECORD } else { FORMAT_V1 };
            let bytes = Envelope::encode(format, key_id, &nonce, &ct);
            let env = Envelope::decode(&bytes).unwrap();
            prop_assert_eq!(env, Envelope { format, key_id, nonce, ciphertext: &ct });
        }
    }

    #[test]
    fn rejects_unknown_format_and_truncation() {
        let bytes = Envelope::encode(FORMAT_RECORD, 1, &[7; 24], &[0; 16]);
        assert!(Envelope::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut other = bytes.clone();
        other[0] = 3;
        assert!(matches!(
            Envelope::decode(&other),
            Err(CryptoError::UnknownFormat(3))
        ));
    }
}
