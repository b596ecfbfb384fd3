//! The parameters of an RP-Initiated Logout request (OpenID Connect RP-Initiated Logout 1.0 §2),
//! checked in this order: `id_token_hint` (ours, any age), `client_id` (must agree with the
//! hint), the client, `post_logout_redirect_uri` (exactly registered by that client). Until all
//! pass, nothing redirects.

use latchkey_core::OAuthError;
use latchkey_core::model::Client;
use latchkey_web::AppState;
use latchkey_web::params::Params;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct LogoutRequest {
    /// The relying party, named by the hint's `aud` or by `client_id`.
    pub client: Option<Client>,
    /// `sub` of a valid `id_token_hint`.
    pub hint_sub: Option<String>,
    /// A `post_logout_redirect_uri` the client registered; only this is ever followed.
    pub redirect: Option<String>,
    /// A `post_logout_redirect_uri` was sent but cannot be followed.
    pub redirect_refused: bool,
    /// Returned to the relying party with the redirect.
    pub state: Option<String>,
    pub ui_locales: Option<String>,
    /// Accepted and carried; informational only (it never replaces confirmation).
    pub logout_hint: Option<String>,
}

impl LogoutRequest {
    pub async fn parse(state: &AppState, params: &Params) -> Result<Self, OAuthError> {
        let hint = match params.get("id_token_hint") {
            Some(t) => Some(verify_hint(state, t)?),
            None => None,
        };
        let client_id = match (params.get("client_id"), &hint) {
            // RP-Initiated Logout §2: when both are sent, client_id must be the hint's audience.
            (Some(c), Some(h)) if c != h.client_id => {
                return Err(OAuthError::invalid_request("client_id does not match the id_token_hint"));
            }
            (_, Some(h)) => Some(h.client_id.clone()),
            (Some(c), None) => Some(c.to_owned()),
            (None, None) => None,
        };
        let client = match &client_id {
            None => None,
            Some(id) => Some(
                state
                    .store
                    .get_client(id)
                    .await
                    .map_err(OAuthError::server_error)?
                    .ok_or_else(|| OAuthError::invalid_request("the logout request names an unknown client"))?,
            ),
        };
        let (redirect, redirect_refused) = match params.get("post_logout_redirect_uri") {
            None => (None, false),
            Some(uri) => {
                // RP-Initiated Logout §3: follow only an exact match of a URI the (identified)
                // client registered; anything else is never redirected to.
                match client.as_ref().filter(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri)) {
                    Some(_) => (Some(uri.to_owned()), false),
                    None => {
                        tracing::info!(
                            client_id = client_id.as_deref().unwrap_or("-"),
                            "post_logout_redirect_uri is not registered for an identified client; not following it"
                        );
                        (None, true)
                    }
                }
            }
        };
        Ok(Self {
            client,
            hint_sub: hint.map(|h| h.sub),
            redirect,
            redirect_refused,
            state: params.get("state").map(str::to_owned),
            ui_locales: params.get("ui_locales").map(str::to_owned),
            logout_hint: params.get("logout_hint").map(str::to_owned),
        })
    }

    /// The hidden fields of the confirmation form: the RP parameters, verified ones only. The
    /// hint itself is not carried: the client it named is.
    pub fn carried(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(c) = &self.client {
            out.push(("client_id", c.client_id.clone()));
        }
        if let Some(r) = &self.redirect {
            out.push(("post_logout_redirect_uri", r.clone()));
        }
        if let Some(s) = &self.state {
            out.push(("state", s.clone()));
        }
        if let Some(l) = &self.ui_locales {
            out.push(("ui_locales", l.clone()));
        }
        if let Some(h) = &self.logout_hint {
            out.push(("logout_hint", h.clone()));
        }
        out
    }
}

struct Hint {
    client_id: String,
    sub: String,
}

/// RP-Initiated Logout §2: an ID token we issued, signature verified; expired ones are accepted
/// (the session may have outlived it). Other tokens we sign (JWT access tokens, logout tokens)
/// carry another `typ` and are refused (RFC 8725 §3.11), and so are signed UserInfo responses
/// (`typ: JWT` too, but without the `iat` and `exp` of an ID token).
fn verify_hint(state: &AppState, token: &str) -> Result<Hint, OAuthError> {
    let claims = state.keys.verify_id_token(token).map_err(|e| {
        OAuthError::invalid_request("id_token_hint is not a valid ID token from this server").because(e)
    })?;
    if claims.get("iss").and_then(Value::as_str) != Some(state.settings.issuer.as_str()) {
        return Err(OAuthError::invalid_request("id_token_hint was issued by another server"));
    }
    // OIDC Core §2: aud holds the client; with several audiences, azp names it.
    let client_id = match claims.get("aud") {
        Some(Value::String(a)) => Some(a.clone()),
        Some(Value::Array(list)) => match list.as_slice() {
            [Value::String(a)] => Some(a.clone()),
            _ => claims
                .get("azp")
                .and_then(Value::as_str)
                .filter(|azp| list.iter().any(|v| v.as_str() == Some(azp)))
                .map(str::to_owned),
        },
        _ => None,
    }
    .ok_or_else(|| OAuthError::invalid_request("id_token_hint has no usable audience"))?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| OAuthError::invalid_request("id_token_hint has no sub"))?;
    Ok(Hint { client_id, sub })
}
