//! Bearer tokens: 256 random bits behind a `cvt_` prefix (so secret scanners can spot a leaked
//! one), stored by callers' config only as SHA-256 and compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const PREFIX: &str = "cvt_";

/// A new token: `cvt_` and 43 characters of base64url (32 random bytes).
pub fn generate() -> Result<SecretString, getrandom::Error> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut())?;
    Ok(SecretString::from(format!(
        "{PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes.as_ref())
    )))
}

/// The SHA-256 of a token, as configured (`token_sha256`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn of_secret(token: &SecretString) -> Self {
        Self::of(token.expose_secret())
    }

    /// 64 hex digits, either case.
    pub fn parse_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let digit = |b: u8| (b as char).to_digit(16);
            out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Some(Self(out))
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Constant time: how long it takes says nothing about how much of a hash matched.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({})", self.hex())
    }
}

/// The token of an `authorization: Bearer <token>` value (the scheme in any case).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hash_round_trips() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.expose_secret().starts_with(PREFIX));
        assert_eq!(a.expose_secret().len(), PREFIX.len() + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        let h = TokenHash::of_secret(&a);
        assert_eq!(TokenHash::parse_hex(&h.hex()), Some(h));
        assert_eq!(TokenHash::parse_hex(&h.hex().to_uppercase()), Some(h));
        assert!(h.matches(&h) && !h.matches(&TokenHash::of_secret(&b)));
        assert_eq!(TokenHash::parse_hex("zz"), None);
        assert_eq!(TokenHash::parse_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn bearer_values() {
        assert_eq!(bearer("Bearer cvt_x"), Some("cvt_x"));
        assert_eq!(bearer("bearer  cvt_x "), Some("cvt_x"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("cvt_x"), None);
    }
}
