//! Owner and label: the identity of a stored credential.

use std::fmt;

use super::Invalid;

/// The tenant or user a credential belongs to: 1-128 characters of `[A-Za-z0-9._@:-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(String);

/// A credential's name, unique per owner: 1-50 characters of `[a-z0-9-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(String);

impl Owner {
    pub const MAX_LEN: usize = 128;
    /// The rule, as the proto comments and the README state it (tests/field_rules.rs checks).
    pub const RULE: &'static str = "1-128 characters of [A-Za-z0-9._@:-]";

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = (1..=Self::MAX_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@:-".contains(&b));
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

impl Label {
    pub const MAX_LEN: usize = 50;
    /// The rule, as the proto comments and the README state it (tests/field_rules.rs checks).
    pub const RULE: &'static str = "1-50 characters of [a-z0-9-]";

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let ok = (1..=Self::MAX_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
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

macro_rules! show_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
show_as_str!(Owner, Label);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn label_rules() {
        assert!(Label::parse("prod-sender-1").is_ok());
        assert!(Label::parse(&"a".repeat(50)).is_ok());
        for bad in ["", "Prod", "a_b", "a b", "é", &"a".repeat(51)] {
            assert!(Label::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn owner_rules() {
        assert!(Owner::parse("team.sms@example.com:eu-1").is_ok());
        assert!(Owner::parse(&"O".repeat(128)).is_ok());
        for bad in ["", "a b", "a/b", "a\0b", &"o".repeat(129)] {
            assert!(Owner::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic_and_keep_their_charset(s in "\\PC{0,140}") {
            if let Ok(l) = Label::parse(&s) {
                prop_assert!(l.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
            if let Ok(o) = Owner::parse(&s) {
                prop_assert!(!o.as_str().contains('\0') && o.as_str().len() <= 128);
            }
        }
    }
}
