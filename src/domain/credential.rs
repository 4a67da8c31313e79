//! A Twilio credential: account, one auth method, one sender.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroize;

use super::{AccountSid, ApiKeySid, Invalid, Location, MessagingServiceSid, PhoneNumber};

/// Secret material (auth token or API key secret): zeroized on drop, redacted in `Debug`.
#[derive(Clone)]
pub struct Secret(SecretString);

/// Secrets shorter than this get no hint: four characters of a short secret are too much of it.
pub const MIN_HINTED_SECRET_LEN: usize = 16;

impl Secret {
    /// The auth token rule, as the proto comments and the README state it. Either case is
    /// accepted (Twilio issues lowercase; an uppercase copy fails at Twilio, not here).
    pub const AUTH_TOKEN_RULE: &'static str = "32 hex digits (0-9, a-f, either case)";
    /// The API key secret rule, as the proto comments and the README state it.
    pub const API_KEY_SECRET_RULE: &'static str = "1-128 printable ASCII characters, no spaces";

    /// A Twilio Auth Token.
    pub fn parse_auth_token(s: &str) -> Result<Self, Invalid> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.into()))
        } else {
            Err(Invalid::must_be(Self::AUTH_TOKEN_RULE))
        }
    }

    /// An API key secret.
    pub fn parse_api_key_secret(s: &str) -> Result<Self, Invalid> {
        if (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(s.into()))
        } else {
            Err(Invalid::must_be(Self::API_KEY_SECRET_RULE))
        }
    }

    /// Takes a secret read back from the vault's own encrypted storage (validated on the way in),
    /// copying it into an exact-size secret buffer and wiping the source.
    pub(crate) fn from_stored(s: &mut String) -> Self {
        let secret = Self(SecretString::from(s.as_str()));
        s.zeroize();
        secret
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The last four characters, to tell two credentials apart; empty for a secret shorter than
    /// [`MIN_HINTED_SECRET_LEN`], where four characters would give away too much of it.
    pub fn hint(&self) -> String {
        let s = self.expose();
        if s.len() < MIN_HINTED_SECRET_LEN {
            return String::new();
        }
        s[s.len() - 4..].to_owned()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// How requests to Twilio authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    AuthToken(Secret),
    ApiKey { sid: ApiKeySid, secret: Secret },
}

impl Auth {
    pub fn secret(&self) -> &Secret {
        match self {
            Auth::AuthToken(secret) | Auth::ApiKey { secret, .. } => secret,
        }
    }
}

/// Where messages are sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    MessagingService(MessagingServiceSid),
    FromNumber(PhoneNumber),
}

/// A complete, validated Twilio credential.
#[derive(Debug, Clone)]
pub struct Credential {
    pub account_sid: AccountSid,
    pub auth: Auth,
    pub sender: Sender,
    /// The Region the auth works in, and the edge its requests take.
    pub location: Location,
}

impl Credential {
    /// HTTP basic-auth user name for the Twilio REST API.
    pub fn username(&self) -> &str {
        match &self.auth {
            Auth::AuthToken(_) => self.account_sid.as_str(),
            Auth::ApiKey { sid, .. } => sid.as_str(),
        }
    }

    /// HTTP basic-auth password for the Twilio REST API.
    pub fn password(&self) -> &Secret {
        self.auth.secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        // Not a substring of the account SID, so a leak cannot hide behind the SID.
        let token = "f00dfeedcafe0123456789abcdef4242";
        let cred = Credential {
            account_sid: AccountSid::parse("AC0123456789abcdef0123456789abcdef").unwrap(),
            auth: Auth::AuthToken(Secret::parse_auth_token(token).unwrap()),
            sender: Sender::FromNumber(PhoneNumber::parse("+14155550100").unwrap()),
            location: Location::default(),
        };
        let shown = format!("{cred:?} {cred:#?}");
        assert!(!shown.contains(token) && shown.contains("REDACTED"));
        assert_eq!(cred.password().hint(), "4242");
    }

    #[test]
    fn secret_rules() {
        assert!(Secret::parse_auth_token("short").is_err());
        assert!(Secret::parse_auth_token(&"g".repeat(32)).is_err());
        assert!(Secret::parse_api_key_secret("has space").is_err());
        assert!(Secret::parse_api_key_secret("").is_err());
        assert!(Secret::parse_api_key_secret(&"x".repeat(129)).is_err());
        assert!(Secret::parse_api_key_secret("aB3xYz9QkLmN0pRsTuVwXyZ123456789").is_ok());
    }

    #[test]
    fn short_secrets_get_no_hint() {
        for (secret, hint) in [
            ("abcd", ""),
            ("abcdefghijklmno", ""),
            ("abcdefghijklmnop", "mnop"),
        ] {
            let s = Secret::parse_api_key_secret(secret).unwrap();
            assert_eq!(s.hint(), hint, "{secret}");
        }
    }

    proptest::proptest! {
        /// Any string: a secret or an error that states the rule and never echoes the input.
        #[test]
        fn secret_parsers_never_panic_or_echo(s in "\\PC{0,200}") {
            for parsed in [Secret::parse_auth_token(&s), Secret::parse_api_key_secret(&s)] {
                match parsed {
                    Ok(secret) => {
                        proptest::prop_assert!(secret.expose().bytes().all(|b| b.is_ascii_graphic()));
                        proptest::prop_assert!(secret.hint().len() <= 4);
                    }
                    Err(e) if s.len() >= 8 => proptest::prop_assert!(!e.rule.contains(&s)),
                    Err(_) => {}
                }
            }
        }
    }
}
