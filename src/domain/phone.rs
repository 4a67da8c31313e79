//! E.164 phone numbers.

use std::fmt;

use super::Invalid;

/// An E.164 number: `+`, then 2-15 digits, the first not 0.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// The rule, as the proto comments and the README state it (tests/field_rules.rs checks).
    pub const RULE: &'static str = "an E.164 number: '+' then 2-15 digits, not starting with 0";

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let digits = s.strip_prefix('+').unwrap_or("");
        let ok = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::must_be(Self::RULE))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn e164_rules() {
        assert!(PhoneNumber::parse("+14155550100").is_ok());
        assert!(PhoneNumber::parse("+6591234567").is_ok());
        for bad in [
            "",
            "+",
            "14155550100",
            "+0123",
            "+1 415 555",
            "+1234567890123456",
            "+1-415",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            if let Ok(p) = PhoneNumber::parse(&s) {
                prop_assert!(p.as_str().starts_with('+'));
            }
        }
    }
}
