//! List cursors. Opaque to callers: URL-safe base64 of a format byte, a tag naming the owner the
//! token was minted for, and the last label returned.
//!
//! The tag is not a secret or a MAC: a token is only a position, and the owner's records are the
//! only ones a List of that owner reads. It makes a token minted for one owner fail loudly when
//! sent with another (a client mixing up cursors) instead of silently skipping that owner's labels.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::{Invalid, Label, Owner};

/// Format 1 tokens (no owner tag) are refused: List never mints them any more.
const FORMAT: u8 = 2;
const TAG_LEN: usize = 8;

/// Where the next page of a listing starts: after this label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(pub Label);

impl PageToken {
    /// The token for continuing `owner`'s listing after this label.
    pub fn encode(&self, owner: &Owner) -> String {
        let mut raw = Vec::with_capacity(1 + TAG_LEN + self.0.as_str().len());
        raw.push(FORMAT);
        raw.extend_from_slice(&owner_tag(owner));
        raw.extend_from_slice(self.0.as_str().as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Empty input means "first page" (`None`). Anything List did not mint for `owner` is an
    /// error.
    pub fn parse(s: &str, owner: &Owner) -> Result<Option<Self>, Invalid> {
        if s.is_empty() {
            return Ok(None);
        }
        let bad = || Invalid::new("is not a page token that List returned");
        // Longest valid token: base64 of 1 + 8 + 50 bytes.
        if s.len() > 100 {
            return Err(bad());
        }
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let Some((&FORMAT, rest)) = raw.split_first() else {
            return Err(bad());
        };
        if rest.len() <= TAG_LEN {
            return Err(bad());
        }
        let (tag, label) = rest.split_at(TAG_LEN);
        if tag != owner_tag(owner) {
            return Err(Invalid::new(format!(
                "was returned by a List of another owner, not '{owner}'"
            )));
        }
        let label = std::str::from_utf8(label).map_err(|_| bad())?;
        Ok(Some(Self(Label::parse(label).map_err(|_| bad())?)))
    }
}

fn owner_tag(owner: &Owner) -> [u8; TAG_LEN] {
    let digest = Sha256::new()
        .chain_update(b"credvault page token\0")
        .chain_update(owner.as_str().as_bytes())
        .finalize();
    let mut tag = [0; TAG_LEN];
    tag.copy_from_slice(&digest[..TAG_LEN]);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn owner(s: &str) -> Owner {
        Owner::parse(s).unwrap()
    }

    #[test]
    fn round_trip_and_empty() {
        let t = PageToken(Label::parse("abc-1").unwrap());
        let acme = owner("acme");
        assert_eq!(PageToken::parse(&t.encode(&acme), &acme).unwrap(), Some(t));
        assert_eq!(PageToken::parse("", &acme).unwrap(), None);
        // Format 1 (no owner tag) is what an earlier release minted for label "abc".
        let v1 = URL_SAFE_NO_PAD.encode(b"\x01abc");
        for forged in ["!!!", "AA", "Ag", &"A".repeat(200), &v1] {
            assert!(
                PageToken::parse(forged, &acme).is_err(),
                "{forged:?} accepted"
            );
        }
    }

    #[test]
    fn a_token_of_one_owner_is_refused_for_another() {
        let t = PageToken(Label::parse("abc").unwrap()).encode(&owner("acme"));
        let err = PageToken::parse(&t, &owner("globex")).unwrap_err();
        assert!(err.rule.contains("another owner"), "{err}");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,120}") {
            let _ = PageToken::parse(&s, &owner("o"));
        }

        #[test]
        fn every_label_round_trips(l in "[a-z0-9-]{1,50}", o in "[A-Za-z0-9._@:-]{1,128}") {
            let (t, o) = (PageToken(Label::parse(&l).unwrap()), owner(&o));
            prop_assert_eq!(PageToken::parse(&t.encode(&o), &o).unwrap(), Some(t));
        }
    }
}
