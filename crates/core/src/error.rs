//! The one error type every endpoint speaks: an OAuth 2.0 / OpenID Connect error code with a
//! public description and a private cause.

use std::fmt;

/// Every registered error code Latchkey can emit. `as_str` and `status` have no wildcard arm,
/// so adding a code forces a decision about both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // RFC 6749 §4.1.2.1 and §5.2
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    // OpenID Connect Core §3.1.2.6
    InteractionRequired,
    LoginRequired,
    AccountSelectionRequired,
    ConsentRequired,
    InvalidRequestUri,
    InvalidRequestObject,
    RequestNotSupported,
    RequestUriNotSupported,
    RegistrationNotSupported,
    // RFC 6750 §3.1
    InvalidToken,
    InsufficientScope,
    // RFC 7009 §2.2.1
    UnsupportedTokenType,
    // RFC 8707 §2
    InvalidTarget,
    // RFC 7591 §3.2.2
    InvalidRedirectUri,
    InvalidClientMetadata,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::AccountSelectionRequired => "account_selection_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InvalidRequestUri => "invalid_request_uri",
            ErrorCode::InvalidRequestObject => "invalid_request_object",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::RegistrationNotSupported => "registration_not_supported",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
        }
    }

    /// HTTP status when the error is returned directly (back channel), not by redirect.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope => 403,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidGrant
            | ErrorCode::UnauthorizedClient
            | ErrorCode::UnsupportedGrantType
            | ErrorCode::UnsupportedResponseType
            | ErrorCode::InvalidScope
            | ErrorCode::AccessDenied
            | ErrorCode::InteractionRequired
            | ErrorCode::LoginRequired
            | ErrorCode::AccountSelectionRequired
            | ErrorCode::ConsentRequired
            | ErrorCode::InvalidRequestUri
            | ErrorCode::InvalidRequestObject
            | ErrorCode::RequestNotSupported
            | ErrorCode::RequestUriNotSupported
            | ErrorCode::RegistrationNotSupported
            | ErrorCode::UnsupportedTokenType
            | ErrorCode::InvalidTarget
            | ErrorCode::InvalidRedirectUri
            | ErrorCode::InvalidClientMetadata => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An OAuth error: `code`, a short public `description` (legal in `error_description`:
/// printable ASCII without `"` and `\`), and a private `source` that is only logged.
#[derive(Debug)]
pub struct OAuthError {
    pub code: ErrorCode,
    description: String,
    source: Option<Source>,
    /// Set when a rate limit refused the request: answered with 429 and `Retry-After`.
    retry_after: Option<i64>,
}

macro_rules! ctor {
    ($($name:ident => $code:ident),* $(,)?) => {
        $(
            pub fn $name(description: impl Into<String>) -> Self {
                Self::new(ErrorCode::$code, description)
            }
        )*
    };
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self { code, description: sanitize_description(&description.into()), source: None, retry_after: None }
    }

    ctor! {
        invalid_request => InvalidRequest,
        invalid_client => InvalidClient,
        invalid_grant => InvalidGrant,
        unauthorized_client => UnauthorizedClient,
        unsupported_grant_type => UnsupportedGrantType,
        unsupported_response_type => UnsupportedResponseType,
        invalid_scope => InvalidScope,
        access_denied => AccessDenied,
        login_required => LoginRequired,
        consent_required => ConsentRequired,
        interaction_required => InteractionRequired,
        account_selection_required => AccountSelectionRequired,
        invalid_token => InvalidToken,
        invalid_request_object => InvalidRequestObject,
        invalid_request_uri => InvalidRequestUri,
        invalid_client_metadata => InvalidClientMetadata,
        invalid_redirect_uri => InvalidRedirectUri,
    }

    /// An internal failure. The client learns only that the server failed.
    pub fn server_error(source: impl Into<Source>) -> Self {
        Self {
            code: ErrorCode::ServerError,
            description: "the server could not complete the request".into(),
            source: Some(source.into()),
            retry_after: None,
        }
    }

    /// A rate limit refused the request: `temporarily_unavailable`, answered with HTTP 429 and
    /// `Retry-After: seconds`.
    pub fn rate_limited(retry_after: i64) -> Self {
        let mut e = Self::new(ErrorCode::TemporarilyUnavailable, "too many requests: retry later");
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// Seconds to wait, when a rate limit refused the request.
    pub fn retry_after(&self) -> Option<i64> {
        self.retry_after
    }

    /// The HTTP status when the error is answered directly: 429 when rate limited.
    pub fn status(&self) -> u16 {
        match self.retry_after {
            Some(_) => 429,
            None => self.code.status(),
        }
    }

    /// Attach a private cause, logged but never sent to the client.
    pub fn because(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn private_source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)?;
        if let Some(s) = &self.source {
            write!(f, " ({s})")?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            Some(s) => Some(s.as_ref()),
            None => None,
        }
    }
}

/// RFC 6749 §5.2: `error_description` is limited to %x20-21 / %x23-5B / %x5D-7E.
fn sanitize_description(s: &str) -> String {
    s.chars().map(|c| if (' '..='~').contains(&c) && c != '"' && c != '\\' { c } else { '\'' }).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_is_restricted_to_the_rfc_6749_character_set() {
        let e = OAuthError::invalid_request("bad \"value\" \\ é\n");
        assert_eq!(e.description(), "bad 'value' ' ''");
    }

    #[test]
    fn private_cause_is_not_part_of_the_description() {
        let e = OAuthError::invalid_grant("code expired").because("row 17 expired at 5");
        assert_eq!(e.description(), "code expired");
        assert!(e.to_string().contains("row 17"));
    }

    #[test]
    fn statuses_follow_the_specs() {
        assert_eq!(ErrorCode::InvalidClient.status(), 401);
        assert_eq!(ErrorCode::InvalidGrant.status(), 400);
        assert_eq!(ErrorCode::InvalidToken.status(), 401);
        assert_eq!(ErrorCode::InsufficientScope.status(), 403);
        assert_eq!(ErrorCode::ServerError.status(), 500);
    }
}
