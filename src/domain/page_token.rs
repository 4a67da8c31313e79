//! List cursors. Opaque to callers: URL-safe base64 of a format byte and the last label returned.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::{Invalid, Label};

const FORMAT: u8 = 1;

/// Where the next page of a listing starts: after this label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(pub Label);

impl PageToken {
    pub fn encode(&self) -> String {
        let mut raw = vec![FORMAT];
        raw.extend_from_slice(self.0.as_str().as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Empty input means "first page" (`None`). Anything we did not mint is an error.
    pub fn parse(s: &str) -> Result<Option<Self>, Invalid> {
        if s.is_empty() {
            return Ok(None);
        }
        let bad = || Invalid::new("is not a page token returned by List");
        // Longest valid token: base64 of 1 + 50 bytes.
        if s.len() > 100 {
            return Err(bad());
        }
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        match raw.split_first() {
            Some((&FORMAT, label)) => {
                let label = std::str::from_utf8(label).map_err(|_| bad())?;
                Ok(Some(Self(Label::parse(label).map_err(|_| bad())?)))
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_empty() {
        let t = PageToken(Label::parse("abc-1").unwrap());
        assert_eq!(PageToken::parse(&t.encode()).unwrap(), Some(t));
        assert_eq!(PageToken::parse("").unwrap(), None);
        for forged in ["!!!", "AA", "Ag", &"A".repeat(200)] {
            assert!(PageToken::parse(forged).is_err(), "{forged:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,120}") {
            let _ = PageToken::parse(&s);
        }

        #[test]
        fn every_label_round_trips(l in "[a-z0-9-]{1,50}") {
            let t = PageToken(Label::parse(&l).unwrap());
            prop_assert_eq!(PageToken::parse(&t.encode()).unwrap(), Some(t));
        }
    }
}
