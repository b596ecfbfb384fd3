//! The one state machine for single-use credentials: authorization codes and refresh tokens.
//!
//! Pure: no SQL, no I/O, no clock of its own. Given the credential as the store holds it
//! ([`Held`], or none) and the request that presents it ([`Presented`]), [`decide`] returns
//! exactly one [`Decision`]:
//!
//! - [`Decision::Issue`]: mint the tokens; the store's conditional commit then spends the
//!   credential and stores them in one transaction (the commit wins for exactly one caller);
//! - [`Decision::Refuse`]: answer the error; nothing is spent and nothing is revoked;
//! - [`Decision::Replay`]: the credential was spent before and is presented again by the
//!   client it was issued to, with its proof: refuse and revoke its family (the grant).
//!
//! The order of the checks is the contract. A presentation that does not prove it may use the
//! credential (another client, a wrong redirect URI or PKCE verifier, a widened scope) is
//! refused before the credential's state is looked at: it can neither spend the credential
//! nor revoke its family, so nobody can burn someone else's code or refresh token.
//! The backends only provide the primitives (find, conditional commit, undo, revoke); the
//! runner that drives them is `latchkey_storage::single_use`.

use crate::pkce::CodeChallenge;
use crate::scope::Scope;
use crate::{OAuthError, UnixTime};

/// Which single-use credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    AuthorizationCode,
    RefreshToken,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AuthorizationCode => "authorization_code",
            Kind::RefreshToken => "refresh_token",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::AuthorizationCode => "authorization code",
            Kind::RefreshToken => "refresh token",
        }
    }
}

/// A credential as the store holds it, with its family (the grant it belongs to).
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    pub kind: Kind,
    /// The client the credential was issued to (its grant's client).
    pub client_id: &'a str,
    pub expires_at: UnixTime,
    /// When it was spent; None while unspent.
    pub spent_at: Option<UnixTime>,
    /// The grant has been revoked (its tokens are gone).
    pub family_revoked: bool,
    /// The grant's absolute end (refresh tokens never outlive it).
    pub family_expires_at: UnixTime,
    /// Refresh tokens: a token of the family issued since this one was spent has been used
    /// (so whoever holds the successor received it). Errs towards true within one second.
    pub successor_used: bool,
    /// Codes: the `redirect_uri` of the authorization request, if it had one.
    pub redirect_uri: Option<&'a str>,
    /// Codes: the stored PKCE challenge (`S256:…`).
    pub code_challenge: Option<&'a str>,
    /// The scope the credential carries: a code's grant scope, a refresh token's own.
    pub scope: &'a str,
}

/// The token request that presents the credential.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// The authenticated client (or, for a public client, the `client_id` it sent).
    pub client_id: &'a str,
    pub public_client: bool,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    /// Refresh: the narrower scope asked for, if any (already parsed).
    pub scope: Option<&'a Scope>,
    pub now: UnixTime,
    /// Seconds after a rotation during which a confidential client's second presentation of
    /// the same refresh token, whose successor is still unused, counts as a retry of a lost
    /// response: refused, the family kept. 0 turns it off.
    pub refresh_retry_grace: i64,
}

/// What to do with a presentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Issue tokens with this scope. Nothing is spent until the commit.
    Issue { scope: String },
    /// Refuse; nothing is spent or revoked.
    Refuse(Refusal),
    /// Presented again after it was spent: refuse and revoke the family.
    Replay,
}

/// Why a presentation was refused without spending anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Never issued, or its grant is gone.
    Unknown,
    /// Issued to another client.
    ForeignClient,
    RedirectUriMismatch,
    VerifierMismatch,
    VerifierMissing,
    /// A verifier without a challenge in the authorization request.
    VerifierUnexpected,
    /// A public client's code without PKCE.
    PkceRequired,
    /// A refresh asking for more than the grant.
    ScopeWidened,
    Expired,
    /// The family was revoked (logout, a replay, an operator).
    Revoked,
    /// A confidential client presenting the refresh token it rotated moments ago, whose
    /// successor is unused: most likely a retry after a lost response.
    RetryAfterRotation,
}

impl Refusal {
    /// A short, stable name for audit records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::ForeignClient => "foreign_client",
            Refusal::RedirectUriMismatch => "redirect_uri_mismatch",
            Refusal::VerifierMismatch => "code_verifier_mismatch",
            Refusal::VerifierMissing => "code_verifier_missing",
            Refusal::VerifierUnexpected => "code_verifier_unexpected",
            Refusal::PkceRequired => "pkce_required",
            Refusal::ScopeWidened => "scope_widened",
            Refusal::Expired => "expired",
            Refusal::Revoked => "revoked",
            Refusal::RetryAfterRotation => "retry_after_rotation",
        }
    }

    /// Worth an operator's attention (recorded in the audit log): a presentation that was not
    /// merely stale.
    pub fn is_suspicious(self) -> bool {
        !matches!(self, Refusal::Unknown | Refusal::Expired | Refusal::Revoked)
    }

    /// The token endpoint's answer (RFC 6749 §5.2).
    pub fn error(self, kind: Kind) -> OAuthError {
        let noun = kind.noun();
        match self {
            Refusal::Unknown | Refusal::Revoked => OAuthError::invalid_grant(format!("the {noun} is not valid")),
            // The same words as for an unknown one: another client learns nothing of it.
            Refusal::ForeignClient => OAuthError::invalid_grant(format!("the {noun} is not valid")),
            Refusal::RedirectUriMismatch => {
                OAuthError::invalid_grant("redirect_uri does not match the authorization request")
            }
            Refusal::VerifierMismatch => OAuthError::invalid_grant("code_verifier does not match the code_challenge"),
            Refusal::VerifierMissing => OAuthError::invalid_grant("code_verifier is required"),
            Refusal::VerifierUnexpected => {
                OAuthError::invalid_grant("code_verifier sent but no code_challenge was in the authorization request")
            }
            Refusal::PkceRequired => OAuthError::invalid_grant("public clients must use PKCE"),
            Refusal::ScopeWidened => OAuthError::invalid_scope("the requested scope exceeds the original grant"),
            Refusal::Expired => OAuthError::invalid_grant(format!("the {noun} has expired")),
            // The words of a replay: the presenter learns nothing of the successor.
            Refusal::RetryAfterRotation => OAuthError::invalid_grant(format!("the {noun} was already used")),
        }
    }
}

/// The error answered for a replay (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
pub fn replay_error(kind: Kind) -> OAuthError {
    OAuthError::invalid_grant(format!("the {} was already used", kind.noun()))
}

/// The decision, in the order the specifications give.
pub fn decide(held: Option<&Held<'_>>, p: &Presented<'_>) -> Decision {
    // RFC 6749 §5.2 (invalid_grant): a credential we never issued.
    let Some(h) = held else { return Decision::Refuse(Refusal::Unknown) };
    // RFC 6749 §4.1.3 ("ensure that the authorization code was issued to the authenticated
    // confidential client, or if the client is public, ensure that the code was issued to
    // client_id in the request") and §6 ("the refresh token was issued to the authenticated
    // client"). Another client's presentation is not a use: RFC 9700 §4.14.2 counts a
    // replay only when the token "is used by both the attacker and the legitimate client",
    // and a client that cannot use it cannot replay it.
    if h.client_id != p.client_id {
        return Decision::Refuse(Refusal::ForeignClient);
    }
    // The proof that this presentation may use the credential, before its state: a request
    // that fails it changes nothing (it is refused whether or not the credential is spent).
    match h.kind {
        Kind::AuthorizationCode => {
            if let Some(r) = code_proof(h, p) {
                return Decision::Refuse(r);
            }
        }
        Kind::RefreshToken => {
            // RFC 6749 §6: "The requested scope MUST NOT include any scope not originally
            // granted by the resource owner" (invalid_scope).
            if let Some(asked) = p.scope {
                let original = Scope::parse(h.scope).unwrap_or_default();
                if !asked.is_subset(&original) {
                    return Decision::Refuse(Refusal::ScopeWidened);
                }
            }
        }
    }
    // Revoked already: nothing left to revoke, nothing to issue.
    if h.family_revoked {
        return Decision::Refuse(Refusal::Revoked);
    }
    if let Some(spent_at) = h.spent_at {
        // Opt-in (`lifetimes.refresh_retry_grace`, 0 by default). RFC 9700 §4.14.2 binds
        // refresh-token rotation to public clients; a confidential client's refresh tokens are
        // bound to its credentials (RFC 6749 §6), so a second presentation right after a
        // rotation whose successor nobody has used yet is most likely its own retry of a lost
        // response: refused without revoking. The price: a thief holding both the refresh token
        // and the client's secret who rotates first is not detected by the client's retry.
        if h.kind == Kind::RefreshToken
            && !p.public_client
            && p.refresh_retry_grace > 0
            && (0..=p.refresh_retry_grace).contains(&p.now.saturating_sub(spent_at))
            && !h.successor_used
        {
            return Decision::Refuse(Refusal::RetryAfterRotation);
        }
        // RFC 6749 §4.1.2: "If an authorization code is used more than once, the
        // authorization server MUST deny the request and SHOULD revoke (when possible) all
        // tokens previously issued based on that authorization code." RFC 9700 §4.14.2: a
        // rotated refresh token presented again invalidates the active one (the family).
        return Decision::Replay;
    }
    // RFC 6749 §4.1.2 (codes are short-lived), §5.2 (expired: invalid_grant); a refresh
    // token also ends with its grant's absolute lifetime.
    if h.expires_at <= p.now || (h.kind == Kind::RefreshToken && h.family_expires_at <= p.now) {
        return Decision::Refuse(Refusal::Expired);
    }
    let scope = match (h.kind, p.scope) {
        // RFC 6749 §6: the access token may be narrower; the new refresh token keeps the
        // original scope (the caller stores it with `Held::scope`).
        (Kind::RefreshToken, Some(asked)) => asked.to_string(),
        _ => h.scope.to_owned(),
    };
    Decision::Issue { scope }
}

/// A code's proof of possession: redirect URI and PKCE.
fn code_proof(h: &Held<'_>, p: &Presented<'_>) -> Option<Refusal> {
    // RFC 6749 §4.1.3: redirect_uri must be present and identical if the authorization request
    // had one.
    if let Some(expected) = h.redirect_uri
        && p.redirect_uri != Some(expected)
    {
        return Some(Refusal::RedirectUriMismatch);
    }
    // RFC 7636 §4.6: the verifier must match the stored challenge. RFC 9700 §2.1.1: a verifier
    // without a stored challenge is refused (no downgrade), and public clients must use PKCE.
    match (h.code_challenge, p.code_verifier) {
        (Some(c), Some(v)) => {
            (!CodeChallenge::from_stored(c.to_owned()).verify(v)).then_some(Refusal::VerifierMismatch)
        }
        (Some(_), None) => Some(Refusal::VerifierMissing),
        (None, Some(_)) => Some(Refusal::VerifierUnexpected),
        (None, None) => p.public_client.then_some(Refusal::PkceRequired),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: UnixTime = 1_000_000;

    fn challenge(verifier: &str) -> String {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
    }

    fn code<'a>(ch: &'a str) -> Held<'a> {
        Held {
            kind: Kind::AuthorizationCode,
            client_id: "app",
            expires_at: NOW + 60,
            spent_at: None,
            family_revoked: false,
            family_expires_at: NOW + 3600,
            successor_used: false,
            redirect_uri: Some("https://app.example/cb"),
            code_challenge: Some(ch),
            scope: "openid profile",
        }
    }

    fn refresh() -> Held<'static> {
        Held {
            kind: Kind::RefreshToken,
            client_id: "app",
            expires_at: NOW + 60,
            spent_at: None,
            family_revoked: false,
            family_expires_at: NOW + 3600,
            successor_used: false,
            redirect_uri: None,
            code_challenge: None,
            scope: "openid profile offline_access",
        }
    }

    fn by<'a>(client: &'a str, verifier: Option<&'a str>) -> Presented<'a> {
        Presented {
            client_id: client,
            public_client: false,
            redirect_uri: Some("https://app.example/cb"),
            code_verifier: verifier,
            scope: None,
            now: NOW,
            refresh_retry_grace: 10,
        }
    }

    #[test]
    fn an_unspent_code_with_its_proof_is_issued() {
        let v = "v".repeat(43);
        let ch = challenge(&v);
        assert_eq!(decide(Some(&code(&ch)), &by("app", Some(&v))), Decision::Issue { scope: "openid profile".into() });
    }

    #[test]
    fn presentations_without_proof_are_refused_whatever_the_state() {
        let v = "v".repeat(43);
        let ch = challenge(&v);
        for spent in [None, Some(NOW - 1)] {
            let mut h = code(&ch);
            h.spent_at = spent;
            assert_eq!(decide(Some(&h), &by("other", Some(&v))), Decision::Refuse(Refusal::ForeignClient));
            assert_eq!(decide(Some(&h), &by("app", Some("w"))), Decision::Refuse(Refusal::VerifierMismatch));
            assert_eq!(decide(Some(&h), &by("app", None)), Decision::Refuse(Refusal::VerifierMissing));
            let mut wrong_uri = by("app", Some(&v));
            wrong_uri.redirect_uri = Some("https://app.example/other");
            assert_eq!(decide(Some(&h), &wrong_uri), Decision::Refuse(Refusal::RedirectUriMismatch));
        }
    }

    #[test]
    fn pkce_cannot_be_downgraded_and_public_clients_need_it() {
        let mut h = code("");
        h.code_challenge = None;
        assert_eq!(decide(Some(&h), &by("app", Some("x"))), Decision::Refuse(Refusal::VerifierUnexpected));
        let mut public = by("app", None);
        public.public_client = true;
        assert_eq!(decide(Some(&h), &public), Decision::Refuse(Refusal::PkceRequired));
        assert!(matches!(decide(Some(&h), &by("app", None)), Decision::Issue { .. }));
    }

    #[test]
    fn a_spent_code_presented_again_with_its_proof_is_a_replay_at_once() {
        let v = "v".repeat(43);
        let ch = challenge(&v);
        let mut h = code(&ch);
        h.spent_at = Some(NOW);
        // No grace for codes: RFC 6749 §4.1.2 revokes on any second use.
        assert_eq!(decide(Some(&h), &by("app", Some(&v))), Decision::Replay);
        h.family_revoked = true;
        assert_eq!(decide(Some(&h), &by("app", Some(&v))), Decision::Refuse(Refusal::Revoked));
    }

    #[test]
    fn expiry_unknown_and_revocation_refuse() {
        let v = "v".repeat(43);
        let ch = challenge(&v);
        let mut h = code(&ch);
        h.expires_at = NOW;
        assert_eq!(decide(Some(&h), &by("app", Some(&v))), Decision::Refuse(Refusal::Expired));
        assert_eq!(decide(None, &by("app", Some(&v))), Decision::Refuse(Refusal::Unknown));
        let mut r = refresh();
        r.family_expires_at = NOW;
        assert_eq!(decide(Some(&r), &by("app", None)), Decision::Refuse(Refusal::Expired));
    }

    #[test]
    fn a_refresh_may_narrow_but_not_widen() {
        let narrow = Scope::parse("openid").unwrap();
        let wide = Scope::parse("openid email").unwrap();
        let mut p = by("app", None);
        p.scope = Some(&narrow);
        assert_eq!(decide(Some(&refresh()), &p), Decision::Issue { scope: "openid".into() });
        p.scope = Some(&wide);
        assert_eq!(decide(Some(&refresh()), &p), Decision::Refuse(Refusal::ScopeWidened));
        let mut spent = refresh();
        spent.spent_at = Some(NOW - 100);
        spent.successor_used = true;
        // A widened scope changes nothing, even on a spent token.
        assert_eq!(decide(Some(&spent), &p), Decision::Refuse(Refusal::ScopeWidened));
    }

    #[test]
    fn a_confidential_clients_retry_right_after_rotation_keeps_the_family() {
        let mut h = refresh();
        h.spent_at = Some(NOW - 3);
        let p = by("app", None);
        assert_eq!(decide(Some(&h), &p), Decision::Refuse(Refusal::RetryAfterRotation));
        // Past the grace, or once the successor was used, or for a public client: a replay.
        let mut late = p;
        late.now = NOW + 20;
        assert_eq!(decide(Some(&h), &late), Decision::Replay);
        let mut used_on = h;
        used_on.successor_used = true;
        assert_eq!(decide(Some(&used_on), &p), Decision::Replay);
        let mut public = p;
        public.public_client = true;
        assert_eq!(decide(Some(&h), &public), Decision::Replay);
        let mut off = p;
        off.refresh_retry_grace = 0;
        assert_eq!(decide(Some(&h), &off), Decision::Replay);
    }
}
