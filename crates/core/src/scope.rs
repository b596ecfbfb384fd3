//! Scopes: a set of space-separated tokens (RFC 6749 §3.3).

use std::collections::BTreeSet;
use std::fmt;

/// Scopes about a user: OpenID Connect's (Core §5.4, §11) and Latchkey's `groups` and `roles`.
/// A client acting for itself (client credentials) cannot have them; a dynamically registered
/// client can have only these.
pub const USER_SCOPES: &[&str] =
    &["openid", "profile", "email", "address", "phone", "groups", "roles", "offline_access"];

/// Whether a space-separated scope string holds `token` (no allocation: for a raw parameter
/// not yet validated, or a stored scope).
pub fn holds(raw: &str, token: &str) -> bool {
    raw.split(' ').any(|t| t == token)
}

/// An OpenID Connect request: its scope holds `openid` (OIDC Core §3.1.2.1). The one test of it.
pub fn is_openid(raw: &str) -> bool {
    holds(raw, "openid")
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by single spaces.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let mut set = BTreeSet::new();
        for tok in s.split(' ') {
            if tok.is_empty() {
                continue; // tolerate repeated spaces, as most servers do
            }
            if !tok.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)) {
                return Err("scope contains a character outside RFC 6749 §3.3");
            }
            set.insert(tok.to_owned());
        }
        Ok(Self(set))
    }

    pub fn from_tokens<I: IntoIterator<Item = S>, S: Into<String>>(it: I) -> Self {
        Self(it.into_iter().map(Into::into).collect())
    }

    /// An OpenID Connect scope (holds `openid`).
    pub fn is_openid(&self) -> bool {
        self.contains("openid")
    }

    pub fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn union(&self, other: &Scope) -> Scope {
        Scope(self.0.union(&other.0).cloned().collect())
    }

    pub fn difference(&self, other: &Scope) -> Scope {
        Scope(self.0.difference(&other.0).cloned().collect())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_sorted_unique() {
        let s = Scope::parse("openid  email openid profile").unwrap();
        assert_eq!(s.to_string(), "email openid profile");
    }

    #[test]
    fn refuses_quotes_and_backslashes() {
        assert!(Scope::parse("a\"b").is_err());
        assert!(Scope::parse("a\\b").is_err());
        assert!(Scope::parse("é").is_err());
    }

    #[test]
    fn subset_and_set_operations() {
        let a = Scope::parse("openid email").unwrap();
        let b = Scope::parse("openid email profile").unwrap();
        assert!(a.is_subset(&b));
        assert!(!b.is_subset(&a));
        assert_eq!(b.difference(&a).to_string(), "profile");
    }
}
