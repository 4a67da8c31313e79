//! A caller as the config declares it (`[[callers]]`): who it is (a token's hash and/or a
//! certificate identity), what it may do (scopes) and to whose credentials (owners).

use std::fmt;

use super::token::TokenHash;
use crate::domain::{Owner, PhoneNumber};

/// What an RPC needs. Health and reflection need none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// List.
    List,
    /// Add, Delete.
    Write,
    /// Validate.
    Validate,
    /// Resolve.
    Resolve,
    /// Key and backup administration (the commands that come next).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::List,
        Scope::Write,
        Scope::Validate,
        Scope::Resolve,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::List => "list",
            Scope::Write => "write",
            Scope::Validate => "validate",
            Scope::Resolve => "resolve",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exact value, or a prefix written with a trailing `*` (`*` alone: everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn parse(s: &str) -> Self {
        match s.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(s.to_owned()),
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact == value,
            Pattern::Prefix(prefix) => value.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(s) => f.write_str(s),
            Pattern::Prefix(s) => write!(f, "{s}*"),
        }
    }
}

/// One `[[callers]]` entry, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub token_sha256: Option<TokenHash>,
    /// A certificate's URI SAN (a SPIFFE ID) or DNS SAN.
    pub cert_identity: Option<String>,
    scopes: u8,
    pub owners: Vec<Pattern>,
    /// `None`: any recipient (the quotas still apply). `Some`: only these numbers or prefixes.
    pub test_recipients: Option<Vec<Pattern>>,
}

/// The config's text of one caller, before it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerSpec {
    pub name: String,
    pub token_sha256: Option<String>,
    pub cert_identity: Option<String>,
    pub scopes: Vec<String>,
    pub owners: Vec<String>,
    pub test_recipients: Option<Vec<String>>,
}

impl CallerSpec {
    /// The caller, or what is wrong with the spec (naming the key).
    pub fn check(&self) -> Result<Caller, String> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("name must be 1-64 printable characters, no spaces".into());
        }
        let token_sha256 = match &self.token_sha256 {
            Some(hex) => Some(TokenHash::parse_hex(hex).ok_or(
                "token_sha256 must be 64 hex digits: the SHA-256 of the token (credvault token create prints it)",
            )?),
            None => None,
        };
        if token_sha256.is_none() && self.cert_identity.is_none() {
            return Err("needs token_sha256 or cert_identity (or both)".into());
        }
        if let Some(id) = &self.cert_identity {
            if id.is_empty() || id.contains(char::is_whitespace) {
                return Err("cert_identity must be a URI SAN (e.g. spiffe://campaigns/sender) or a DNS name".into());
            }
        }
        let mut scopes = 0;
        for s in &self.scopes {
            let scope = Scope::parse(s).ok_or_else(|| {
                format!(
                    "unknown scope {s:?} (scopes: {})",
                    Scope::ALL.map(Scope::as_str).join(", ")
                )
            })?;
            scopes |= scope.bit();
        }
        if scopes == 0 {
            return Err("scopes must name at least one scope".into());
        }
        if self.owners.is_empty() {
            return Err("owners must name at least one owner or pattern (\"*\" for all)".into());
        }
        let owners = self
            .owners
            .iter()
            .map(|o| {
                let pattern = Pattern::parse(o);
                let text = match &pattern {
                    Pattern::Exact(s) => s.as_str(),
                    Pattern::Prefix(s) if s.is_empty() => return Ok(pattern),
                    Pattern::Prefix(s) => s.as_str(),
                };
                // A prefix must itself be made of owner characters (so it can match something).
                Owner::parse(text)
                    .map(|_| pattern.clone())
                    .map_err(|e| format!("owners: {o:?}: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let test_recipients = match &self.test_recipients {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|r| {
                        let pattern = Pattern::parse(r);
                        let ok = match &pattern {
                            Pattern::Exact(n) => PhoneNumber::parse(n).is_ok(),
                            Pattern::Prefix(p) => {
                                p.len() >= 2
                                    && p.starts_with('+')
                                    && p[1..].bytes().all(|b| b.is_ascii_digit())
                            }
                        };
                        ok.then_some(pattern).ok_or_else(|| {
                            format!("test_recipients: {r:?} must be an E.164 number, or a prefix such as \"+65*\"")
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?,
            ),
        };
        Ok(Caller {
            name: name.to_owned(),
            token_sha256,
            cert_identity: self.cert_identity.clone(),
            scopes,
            owners,
            test_recipients,
        })
    }
}

impl Caller {
    /// Every scope, every owner: the bootstrap admin.
    pub fn admin(name: &str, token: TokenHash) -> Self {
        Self {
            name: name.to_owned(),
            token_sha256: Some(token),
            cert_identity: None,
            scopes: Scope::ALL.iter().fold(0, |acc, s| acc | s.bit()),
            owners: vec![Pattern::Prefix(String::new())],
            test_recipients: None,
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes & scope.bit() != 0
    }

    pub fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        Scope::ALL.into_iter().filter(|s| self.has(*s))
    }

    pub fn may_access(&self, owner: &str) -> bool {
        self.owners.iter().any(|p| p.matches(owner))
    }

    pub fn may_text(&self, recipient: &str) -> bool {
        self.test_recipients
            .as_ref()
            .is_none_or(|list| list.iter().any(|p| p.matches(recipient)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CallerSpec {
        CallerSpec {
            name: "sender".into(),
            token_sha256: Some("ab".repeat(32)),
            scopes: vec!["resolve".into(), "list".into()],
            owners: vec!["acme".into(), "gov.sg:*".into()],
            ..CallerSpec::default()
        }
    }

    #[test]
    fn scopes_owners_and_recipients() {
        let c = spec().check().unwrap();
        assert!(c.has(Scope::Resolve) && c.has(Scope::List) && !c.has(Scope::Write));
        assert!(c.may_access("acme") && c.may_access("gov.sg:moh"));
        assert!(!c.may_access("acme2") && !c.may_access("gov.sg"));
        assert!(c.may_text("+6591234567"));
        let c = CallerSpec {
            test_recipients: Some(vec!["+65*".into(), "+14155550123".into()]),
            owners: vec!["*".into()],
            ..spec()
        }
        .check()
        .unwrap();
        assert!(c.may_access("anyone"));
        assert!(c.may_text("+6591234567") && c.may_text("+14155550123"));
        assert!(!c.may_text("+14155550124") && !c.may_text("+44"));
    }

    #[test]
    fn bad_specs_name_the_key() {
        for (bad, key) in [
            (
                CallerSpec {
                    name: "".into(),
                    ..spec()
                },
                "name",
            ),
            (
                CallerSpec {
                    token_sha256: Some("x".into()),
                    ..spec()
                },
                "token_sha256",
            ),
            (
                CallerSpec {
                    token_sha256: None,
                    ..spec()
                },
                "token_sha256 or cert_identity",
            ),
            (
                CallerSpec {
                    scopes: vec!["root".into()],
                    ..spec()
                },
                "unknown scope",
            ),
            (
                CallerSpec {
                    scopes: vec![],
                    ..spec()
                },
                "scopes",
            ),
            (
                CallerSpec {
                    owners: vec![],
                    ..spec()
                },
                "owners",
            ),
            (
                CallerSpec {
                    owners: vec!["bad owner".into()],
                    ..spec()
                },
                "owners",
            ),
            (
                CallerSpec {
                    test_recipients: Some(vec!["0800".into()]),
                    ..spec()
                },
                "test_recipients",
            ),
        ] {
            let e = bad.check().unwrap_err();
            assert!(e.contains(key), "{e} (wanted {key})");
        }
    }
}
