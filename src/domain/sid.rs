//! Twilio SIDs: a two-letter type prefix followed by 32 lowercase hex digits.

use std::fmt;

use super::Invalid;

macro_rules! sid_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            /// The rule, as the proto comments and the README state it.
            pub const RULE: &'static str =
                concat!("\"", $prefix, "\" followed by 32 lowercase hex digits");

            /// Accepts exactly the prefix and 32 lowercase hex digits.
            pub fn parse(s: &str) -> Result<Self, Invalid> {
                parse_sid(s, $prefix, Self::RULE).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

sid_type!(
    /// A Twilio Account SID (`AC…`).
    AccountSid,
    "AC"
);
sid_type!(
    /// A Twilio API Key SID (`SK…`).
    ApiKeySid,
    "SK"
);
sid_type!(
    /// A Twilio Messaging Service SID (`MG…`).
    MessagingServiceSid,
    "MG"
);
sid_type!(
    /// A Twilio SMS Message SID (`SM…`), returned for a test SMS.
    MessageSid,
    "SM"
);

fn parse_sid(s: &str, prefix: &str, rule: &str) -> Result<String, Invalid> {
    let ok = s.len() == 34
        && s.starts_with(prefix)
        && s.as_bytes()[2..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(Invalid::must_be(rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = "AC0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_well_formed() {
        assert_eq!(AccountSid::parse(GOOD).unwrap().as_str(), GOOD);
    }

    #[test]
    fn rejects_wrong_prefix_case_and_length() {
        for bad in [
            "",
            "AC",
            "SK0123456789abcdef0123456789abcdef",
            "AC0123456789ABCDEF0123456789ABCDEF",
            "AC0123456789abcdef0123456789abcde",
            "AC0123456789abcdef0123456789abcdef0",
            "ac0123456789abcdef0123456789abcdef",
        ] {
            assert!(AccountSid::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_only_accepts_the_shape(s in "\\PC{0,40}") {
            if let Ok(sid) = ApiKeySid::parse(&s) {
                prop_assert!(sid.as_str().starts_with("SK") && sid.as_str().len() == 34);
            }
        }

        #[test]
        fn accepts_every_hex_body(body in "[0-9a-f]{32}") {
            let s = format!("MG{body}");
            prop_assert!(MessagingServiceSid::parse(&s).is_ok());
        }
    }
}
