//! Who is calling, and may they. Every CredentialVault RPC names a caller (a bearer token, or an
//! mTLS certificate identity) and needs a scope and the owner; both are decided before the store
//! is read, so the answer never depends on whether a label exists. Health and reflection need no
//! caller. The set of callers can be replaced while serving (SIGHUP).

mod bootstrap;
mod caller;
pub mod token;

use std::sync::{Arc, RwLock};

pub use bootstrap::{bootstrap_caller, BootstrapError, ADMIN_TOKEN_FILE};
pub use caller::{Caller, CallerSpec, Pattern, Scope};
use token::TokenHash;

/// Why a call was refused. Messages name the caller and what it lacks, never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no caller: send `authorization: Bearer <token>` or a client certificate")]
    Missing,
    #[error("unknown bearer token")]
    UnknownToken,
    #[error("the client certificate matches no caller")]
    UnknownCertificate,
    #[error("caller '{caller}' lacks the '{scope}' scope")]
    Scope { caller: String, scope: Scope },
    #[error("caller '{caller}' may not access owner '{owner}'")]
    Owner { caller: String, owner: String },
    #[error(
        "caller '{caller}' may not send a test SMS to this recipient (not in its test_recipients)"
    )]
    Recipient { caller: String },
}

/// What a request presents: its bearer token, its certificate's identities (URI and DNS SANs).
#[derive(Debug, Default, Clone, Copy)]
pub struct Presented<'a> {
    pub token: Option<&'a str>,
    pub cert_identities: &'a [String],
}

/// The callers in force.
#[derive(Debug, Default)]
pub struct Callers {
    list: Vec<Arc<Caller>>,
}

impl Callers {
    /// Names and tokens must be unique: two callers with one token would make a call ambiguous.
    pub fn new(list: Vec<Caller>) -> Result<Self, String> {
        for (i, c) in list.iter().enumerate() {
            for other in &list[i + 1..] {
                if other.name == c.name {
                    return Err(format!("two callers are named '{}'", c.name));
                }
                if c.token_sha256.is_some() && other.token_sha256 == c.token_sha256 {
                    return Err(format!(
                        "callers '{}' and '{}' have the same token_sha256",
                        c.name, other.name
                    ));
                }
            }
        }
        Ok(Self {
            list: list.into_iter().map(Arc::new).collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The caller of a request, or why there is none.
    pub fn identify(&self, presented: Presented<'_>) -> Result<Arc<Caller>, AuthError> {
        if let Some(token) = presented.token {
            let hash = TokenHash::of(token);
            // Every hash is compared (in constant time): the time taken does not tell which
            // caller, if any, matched.
            let mut found = None;
            for c in &self.list {
                if c.token_sha256.is_some_and(|h| h.matches(&hash)) && found.is_none() {
                    found = Some(c.clone());
                }
            }
            return found.ok_or(AuthError::UnknownToken);
        }
        if !presented.cert_identities.is_empty() {
            return self
                .list
                .iter()
                .find(|c| {
                    c.cert_identity
                        .as_ref()
                        .is_some_and(|id| presented.cert_identities.contains(id))
                })
                .cloned()
                .ok_or(AuthError::UnknownCertificate);
        }
        Err(AuthError::Missing)
    }
}

/// The callers in force, replaceable while serving.
#[derive(Debug, Default)]
pub struct Access {
    current: RwLock<Arc<Callers>>,
}

impl Access {
    pub fn new(callers: Callers) -> Self {
        Self {
            current: RwLock::new(Arc::new(callers)),
        }
    }

    /// Swaps in a new set: calls already past their check keep the caller they had.
    pub fn replace(&self, callers: Callers) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(callers);
    }

    /// The caller, if it holds `scope` for `owner`. `owner` is the request's text, before it is
    /// parsed: a caller learns nothing about owners it may not access.
    pub fn authorize(
        &self,
        presented: Presented<'_>,
        scope: Scope,
        owner: &str,
    ) -> Result<Arc<Caller>, AuthError> {
        let callers = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let caller = callers.identify(presented)?;
        if !caller.has(scope) {
            return Err(AuthError::Scope {
                caller: caller.name.clone(),
                scope,
            });
        }
        if !caller.may_access(owner) {
            return Err(AuthError::Owner {
                caller: caller.name.clone(),
                owner: owner.to_owned(),
            });
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(name: &str, token: &str, scopes: &[&str], owners: &[&str]) -> Caller {
        CallerSpec {
            name: name.into(),
            token_sha256: Some(TokenHash::of(token).hex()),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            owners: owners.iter().map(|s| s.to_string()).collect(),
            ..CallerSpec::default()
        }
        .check()
        .unwrap()
    }

    #[test]
    fn tokens_scopes_and_owners_decide() {
        let access = Access::new(
            Callers::new(vec![
                caller("sender", "cvt_a", &["resolve"], &["acme"]),
                caller("ops", "cvt_b", &["list", "write"], &["*"]),
            ])
            .unwrap(),
        );
        let with = |token| Presented {
            token: Some(token),
            ..Presented::default()
        };
        assert_eq!(
            access.authorize(Presented::default(), Scope::Resolve, "acme"),
            Err(AuthError::Missing)
        );
        assert_eq!(
            access.authorize(with("cvt_zzz"), Scope::Resolve, "acme"),
            Err(AuthError::UnknownToken)
        );
        assert_eq!(
            access
                .authorize(with("cvt_a"), Scope::Resolve, "acme")
                .unwrap()
                .name,
            "sender"
        );
        assert!(matches!(
            access.authorize(with("cvt_a"), Scope::List, "acme"),
            Err(AuthError::Scope { .. })
        ));
        assert!(matches!(
            access.authorize(with("cvt_a"), Scope::Resolve, "other"),
            Err(AuthError::Owner { .. })
        ));
        assert!(access.authorize(with("cvt_b"), Scope::Write, "x").is_ok());

        access.replace(Callers::new(vec![caller("ops", "cvt_b", &["list"], &["*"])]).unwrap());
        assert_eq!(
            access.authorize(with("cvt_a"), Scope::Resolve, "acme"),
            Err(AuthError::UnknownToken)
        );
    }

    #[test]
    fn duplicate_names_and_tokens_are_refused() {
        let a = caller("a", "cvt_a", &["list"], &["*"]);
        assert!(Callers::new(vec![a.clone(), caller("a", "cvt_b", &["list"], &["*"])]).is_err());
        assert!(Callers::new(vec![a, caller("b", "cvt_a", &["list"], &["*"])]).is_err());
    }
}
