//! The front channel: responses that go back to the client through the browser. A
//! [`VerifiedRedirect`] can only be made from a redirect URI checked against the client's
//! registration, so nothing redirects to an unverified place.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use latchkey_core::authz::ResponseMode;
use latchkey_core::model::Client;
use latchkey_core::{OAuthError, redirect};

/// A redirect URI that matched the client's registration.
#[derive(Debug, Clone)]
pub struct CheckedRedirectUri {
    pub uri: String,
    /// Whether the request carried `redirect_uri` (the token request must then repeat it).
    pub sent: bool,
}

/// RFC 6749 §3.1.2.3 / OIDC Core §3.1.2.1: `redirect_uri` must equal a registered one (RFC 8252
/// §7.3: loopback IPs may differ in port). It may be omitted only when the client registered
/// exactly one and the request is not an OpenID request (OIDC Core requires it).
pub fn check_redirect_uri(
    client: &Client,
    requested: Option<&str>,
    openid: bool,
) -> Result<CheckedRedirectUri, OAuthError> {
    match requested {
        Some(r) => match redirect::matches(&client.redirect_uris, r) {
            Some(_) => Ok(CheckedRedirectUri { uri: r.to_owned(), sent: true }),
            None => Err(OAuthError::invalid_request("redirect_uri is not registered for this client")),
        },
        None if openid => Err(OAuthError::invalid_request("redirect_uri is required")),
        None => match client.redirect_uris.as_slice() {
            [only] => Ok(CheckedRedirectUri { uri: only.clone(), sent: false }),
            _ => Err(OAuthError::invalid_request("redirect_uri is required")),
        },
    }
}

#[derive(Debug, Clone)]
pub struct VerifiedRedirect {
    uri: String,
    state: Option<String>,
    mode: ResponseMode,
    issuer: String,
}

impl VerifiedRedirect {
    pub fn new(checked: CheckedRedirectUri, state: Option<String>, mode: ResponseMode, issuer: &str) -> Self {
        Self { uri: checked.uri, state, mode, issuer: issuer.to_owned() }
    }

    pub fn set_mode(&mut self, mode: ResponseMode) {
        self.mode = mode;
    }

    /// RFC 6749 §4.1.2.1 error response, with `state` and `iss` (RFC 9207).
    pub fn error(&self, e: OAuthError) -> Response {
        crate::errors::log_error(&e);
        let code = e.code.as_str();
        let desc = e.description().to_owned();
        self.respond(&[("error", code), ("error_description", &desc)])
    }

    /// RFC 6749 §4.1.2 success response (`code`), with `state` and `iss`.
    pub fn success(&self, params: &[(&str, &str)]) -> Response {
        self.respond(params)
    }

    fn respond(&self, params: &[(&str, &str)]) -> Response {
        let mut all: Vec<(&str, &str)> = params.to_vec();
        if let Some(s) = &self.state {
            all.push(("state", s));
        }
        all.push(("iss", &self.issuer));
        match self.mode {
            ResponseMode::Query => {
                let Ok(mut u) = url::Url::parse(&self.uri) else {
                    return (StatusCode::BAD_REQUEST, "invalid redirect").into_response();
                };
                {
                    let mut q = u.query_pairs_mut();
                    for (k, v) in &all {
                        q.append_pair(k, v);
                    }
                }
                let mut r = StatusCode::FOUND.into_response();
                if let Ok(v) = HeaderValue::from_str(u.as_str()) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            ResponseMode::FormPost => form_post(&self.uri, &all),
        }
    }
}

/// OAuth 2.0 Form Post Response Mode: an HTML form that posts the parameters to the redirect
/// URI. The submit happens from a script served by us (the CSP forbids inline script), with a
/// button for browsers without JavaScript.
fn form_post(uri: &str, params: &[(&str, &str)]) -> Response {
    let mut inputs = String::new();
    for (k, v) in params {
        inputs.push_str(&format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">\n", html_escape(k), html_escape(v)));
    }
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Submit this form</title>\
<script src=\"/static/form_post.js\" defer></script></head>\n<body>\n\
<form method=\"post\" action=\"{}\" id=\"form_post\">\n{inputs}<noscript><button type=\"submit\">Continue</button></noscript>\n</form>\n</body></html>\n",
        html_escape(uri)
    );
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::model::{ClientAuthMethod, GrantType};

    fn client(uris: &[&str]) -> Client {
        Client {
            client_id: "c".into(),
            name: "C".into(),
            secret_hash: None,
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            post_logout_redirect_uris: vec![],
            auth_method: ClientAuthMethod::None,
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: vec!["openid".into()],
            skip_consent: false,
            require_pkce: true,
            id_token_signed_response_alg: None,
            created_at: 0,
            updated_at: 0,
            ..Default::default()
        }
    }

    #[test]
    fn omitted_redirect_uri_only_for_single_registration_and_non_openid() {
        let one = client(&["https://a.example/cb"]);
        assert!(check_redirect_uri(&one, None, false).is_ok());
        assert!(check_redirect_uri(&one, None, true).is_err());
        let two = client(&["https://a.example/cb", "https://a.example/cb2"]);
        assert!(check_redirect_uri(&two, None, false).is_err());
        assert!(check_redirect_uri(&two, Some("https://a.example/cb2"), true).is_ok());
        assert!(check_redirect_uri(&two, Some("https://evil.example/cb"), true).is_err());
    }

    #[test]
    fn query_response_keeps_existing_query_and_adds_state_and_iss() {
        let c = client(&["https://a.example/cb?x=1"]);
        let checked = check_redirect_uri(&c, Some("https://a.example/cb?x=1"), true).unwrap();
        let v = VerifiedRedirect::new(checked, Some("s t".into()), ResponseMode::Query, "https://id.example");
        let r = v.success(&[("code", "abc")]);
        let loc = r.headers()[header::LOCATION].to_str().unwrap();
        assert_eq!(loc, "https://a.example/cb?x=1&code=abc&state=s+t&iss=https%3A%2F%2Fid.example");
    }

    #[test]
    fn form_post_escapes_values() {
        let r = form_post("https://a.example/cb", &[("state", "\"><script>")]);
        assert_eq!(r.status(), StatusCode::OK);
    }
}
