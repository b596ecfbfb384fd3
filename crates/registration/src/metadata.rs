//! Client metadata (OIDC Registration 1.0 §2, RFC 7591 §2): the request object is parsed into
//! a [`Registration`] that holds only acceptable values, then applied to a [`Client`].
//!
//! Order of checks: unsupported features, application_type, token_endpoint_auth_method,
//! grant_types/response_types, redirect URIs, scope, algorithms, keys, request objects,
//! subject type, logout, display metadata. Wrong JSON types and bad values are
//! `invalid_client_metadata`; bad redirect URIs are `invalid_redirect_uri` (RFC 7591 §3.2.2).
//! A JSON `null` counts as an omitted member. Unknown members are ignored (RFC 7591 §2).

use josekit::jwk::JwkSet;
use latchkey_core::model::{Client, ClientAuthMethod, GrantType, SigningAlg, SubjectType};
use latchkey_core::scope::Scope;
use latchkey_core::{OAuthError, Settings};
use serde_json::{Map, Value};

use crate::application_type::ApplicationType;
use crate::urls;

/// Longest list accepted in any member.
const MAX_LIST: usize = 32;
/// Longest name-like string (client_name, software_id, a contact).
const MAX_NAME: usize = 255;
/// Language-tagged variants (OIDC Registration §2.1) kept per request.
const MAX_TAGGED: usize = 32;

/// Scopes a dynamically registered client may hold: the OpenID Connect ones. Others are
/// dropped, and the response says what was registered (RFC 7591 §3.2.1: the server may replace
/// requested values); self-registered clients must not mint tokens for API scopes.
pub const REGISTRABLE_SCOPES: &[&str] = latchkey_core::scope::USER_SCOPES;

/// Human-readable members that may carry a language tag (OIDC Registration §2.1).
const TAGGABLE: &[&str] = &["client_name", "client_uri", "logo_uri", "policy_uri", "tos_uri"];

/// JWK members that hold private key material (RFC 7517 §9.2, RFC 7518 §6).
const PRIVATE_JWK_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Algorithms a request object may be signed with (besides `none`, when allowed).
const REQUEST_OBJECT_ALGS: &[&str] = &["RS256", "PS256", "ES256", "EdDSA"];

/// Validated registration metadata.
#[derive(Debug, Clone)]
pub struct Registration {
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub auth_method: ClientAuthMethod,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub id_token_signed_response_alg: Option<SigningAlg>,
    /// A public JWK Set, serialized.
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub subject_type: SubjectType,
    pub sector_identifier_uri: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub request_object_signing_alg: Option<String>,
    pub request_uris: Vec<String>,
    pub require_par: bool,
    pub client_name: Option<String>,
    /// Echoed back as registered: application_type, display names and URIs, contacts,
    /// default_max_age, require_auth_time, …
    pub extra: Map<String, Value>,
}

fn bad(msg: impl Into<String>) -> OAuthError {
    OAuthError::invalid_client_metadata(msg)
}

/// Typed access to the members of the request object.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// The member, unless it is null or an empty string: both count as omitted (RFC 7592 §2.2:
    /// the server may ignore null and empty values).
    fn get(&self, k: &str) -> Option<&'a Value> {
        self.0.get(k).filter(|v| !v.is_null() && v.as_str() != Some(""))
    }

    fn string(&self, k: &str) -> Result<Option<&'a str>, OAuthError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(bad(format!("{k} must be a string"))),
        }
    }

    fn strings(&self, k: &str) -> Result<Option<Vec<String>>, OAuthError> {
        let Some(v) = self.get(k) else { return Ok(None) };
        let Value::Array(items) = v else { return Err(bad(format!("{k} must be an array of strings"))) };
        if items.len() > MAX_LIST {
            return Err(bad(format!("{k} has more than {MAX_LIST} values")));
        }
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for i in items {
            let Value::String(s) = i else { return Err(bad(format!("{k} must be an array of strings"))) };
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        Ok(Some(out))
    }

    fn boolean(&self, k: &str) -> Result<Option<bool>, OAuthError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(bad(format!("{k} must be a boolean"))),
        }
    }

    fn seconds(&self, k: &str) -> Result<Option<i64>, OAuthError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(s) if s >= 0 => Ok(Some(s)),
                _ => Err(bad(format!("{k} must be a non-negative integer"))),
            },
            Some(_) => Err(bad(format!("{k} must be a number"))),
        }
    }

    /// A short printable string (names, identifiers, contacts).
    fn name(&self, k: &str) -> Result<Option<&'a str>, OAuthError> {
        let Some(s) = self.string(k)? else { return Ok(None) };
        check_name(k, s)?;
        Ok(Some(s))
    }
}

fn check_name(k: &str, s: &str) -> Result<(), OAuthError> {
    if s.trim().is_empty() || s.chars().count() > MAX_NAME || s.chars().any(char::is_control) {
        return Err(bad(format!("{k} must be 1 to {MAX_NAME} printable characters")));
    }
    Ok(())
}

impl Registration {
    /// Validate a registration (or RFC 7592 update) request. No network access: the
    /// sector_identifier_uri document is checked by [`Registration::check_sector`].
    pub fn parse(doc: &Map<String, Value>, settings: &Settings) -> Result<Self, OAuthError> {
        let f = Fields(doc);
        let dev = settings.development_mode;
        refuse_unsupported(&f)?;

        let application_type = match f.string("application_type")? {
            None | Some("web") => ApplicationType::Web,
            Some("native") => ApplicationType::Native,
            Some(_) => return Err(bad("application_type must be web or native")),
        };
        // RFC 7591 §2: token_endpoint_auth_method defaults to client_secret_basic.
        let auth_method = match f.string("token_endpoint_auth_method")? {
            None => ClientAuthMethod::ClientSecretBasic,
            Some(m) => m.parse().map_err(|_| bad("token_endpoint_auth_method is not supported"))?,
        };

        let grant_types = match f.strings("grant_types")? {
            // RFC 7591 §2: the default grant type is authorization_code.
            None => vec![GrantType::AuthorizationCode],
            Some(list) => {
                let mut out = Vec::new();
                for g in &list {
                    out.push(g.parse::<GrantType>().map_err(|_| bad("a grant type is not supported"))?);
                }
                out
            }
        };
        if grant_types.is_empty() {
            return Err(bad("grant_types must not be empty"));
        }
        let code = grant_types.contains(&GrantType::AuthorizationCode);
        let response_types = f.strings("response_types")?;
        if let Some(rts) = &response_types {
            if rts.iter().any(|r| r != "code") {
                return Err(bad("only the code response type is supported"));
            }
            // RFC 7591 §2.1: response type code goes with the authorization_code grant.
            if rts.is_empty() == code {
                return Err(bad("response_types and grant_types disagree (code needs authorization_code)"));
            }
        }
        // RFC 6749 §6: a refresh token comes from an earlier grant, here authorization_code.
        if grant_types.contains(&GrantType::RefreshToken) && !code {
            return Err(bad("the refresh_token grant needs the authorization_code grant"));
        }
        // RFC 6749 §4.4: client credentials are for confidential clients only.
        if grant_types.contains(&GrantType::ClientCredentials) && !auth_method.is_confidential() {
            return Err(bad("public clients cannot use the client_credentials grant"));
        }

        let redirect_uris = f.strings("redirect_uris")?.unwrap_or_default();
        for u in &redirect_uris {
            urls::redirect_uri("redirect_uris", u, application_type)?;
        }
        // OIDC Registration §2: redirect_uris is required for the code flow.
        if code && redirect_uris.is_empty() {
            return Err(OAuthError::invalid_redirect_uri("redirect_uris is required for the authorization_code grant"));
        }
        let post_logout_redirect_uris = f.strings("post_logout_redirect_uris")?.unwrap_or_default();
        for u in &post_logout_redirect_uris {
            urls::redirect_uri("post_logout_redirect_uris", u, application_type)?;
        }

        let scopes = match f.string("scope")? {
            // Sorted like any parsed scope, so the echoed value reads the same after an update.
            None => Scope::from_tokens(REGISTRABLE_SCOPES.iter().copied()).iter().map(str::to_owned).collect(),
            Some(s) => {
                // RFC 7591 §2: space-separated scope values (RFC 6749 §3.3 characters).
                let asked = Scope::parse(s).map_err(bad)?;
                let kept: Vec<String> =
                    asked.iter().filter(|s| REGISTRABLE_SCOPES.contains(s)).map(str::to_owned).collect();
                if kept.is_empty() && !asked.is_empty() {
                    return Err(bad("none of the requested scopes can be registered"));
                }
                kept
            }
        };

        let id_token_signed_response_alg = match f.string("id_token_signed_response_alg")? {
            None => None,
            Some(a) => {
                let alg: SigningAlg = a.parse().map_err(|_| bad("id_token_signed_response_alg is not supported"))?;
                if !settings.signing_algorithms().unwrap_or_default().contains(&alg) {
                    return Err(bad("id_token_signed_response_alg is not supported"));
                }
                Some(alg)
            }
        };

        let jwks = match f.get("jwks") {
            None => None,
            Some(v) => Some(public_jwks(v)?),
        };
        let jwks_uri = match f.string("jwks_uri")? {
            None => None,
            Some(u) => urls::outbound("jwks_uri", u, dev, false).map(|_| Some(u.to_owned()))?,
        };
        // OIDC Registration §2: jwks and jwks_uri MUST NOT both be present.
        if jwks.is_some() && jwks_uri.is_some() {
            return Err(bad("give jwks or jwks_uri, not both"));
        }
        if auth_method == ClientAuthMethod::PrivateKeyJwt && jwks.is_none() && jwks_uri.is_none() {
            return Err(bad("private_key_jwt needs jwks or jwks_uri"));
        }

        let mut extra = Map::new();
        extra.insert("application_type".into(), application_type.as_str().into());
        if let Some(a) = f.string("token_endpoint_auth_signing_alg")? {
            // OIDC Registration §2: `none` MUST NOT be used; the alg must suit the method.
            let ok = match auth_method {
                ClientAuthMethod::ClientSecretJwt => matches!(a, "HS256" | "HS384" | "HS512"),
                ClientAuthMethod::PrivateKeyJwt => matches!(a, "RS256" | "PS256" | "ES256" | "EdDSA"),
                _ => false,
            };
            if !ok {
                return Err(bad("token_endpoint_auth_signing_alg does not suit token_endpoint_auth_method"));
            }
            extra.insert("token_endpoint_auth_signing_alg".into(), a.into());
        }

        let request_object_signing_alg = match f.string("request_object_signing_alg")? {
            None => None,
            // OIDC Core §6.1: unsigned request objects only where the operator allows them.
            Some("none") if settings.request_objects.allow_unsigned => Some("none".to_owned()),
            Some(a) if REQUEST_OBJECT_ALGS.contains(&a) => Some(a.to_owned()),
            Some(_) => return Err(bad("request_object_signing_alg is not supported")),
        };
        let request_uris = f.strings("request_uris")?.unwrap_or_default();
        for u in &request_uris {
            // OIDC Registration §2: a request_uri may carry a fragment (a hash of its contents).
            urls::outbound("request_uris", u, dev, true)?;
        }
        let require_par = f.boolean("require_pushed_authorization_requests")?.unwrap_or(false);

        let subject_type = match f.string("subject_type")? {
            None => SubjectType::Public,
            Some(s) => s.parse().map_err(|_| bad("subject_type must be public or pairwise"))?,
        };
        let sector_identifier_uri = match f.string("sector_identifier_uri")? {
            None => None,
            Some(u) => urls::outbound("sector_identifier_uri", u, dev, false).map(|_| Some(u.to_owned()))?,
        };
        // OIDC Core §8.1: without a sector identifier, every redirect URI must share one host.
        if subject_type == SubjectType::Pairwise && sector_identifier_uri.is_none() {
            let mut hosts =
                redirect_uris.iter().map(|u| url::Url::parse(u).ok().and_then(|p| p.host_str().map(str::to_owned)));
            let first = hosts.next().flatten();
            if first.is_none() || hosts.any(|h| h != first) {
                return Err(bad(
                    "pairwise clients whose redirect URIs are not on one host need a sector_identifier_uri",
                ));
            }
        }

        // Back-Channel Logout 1.0 §2.2.
        let backchannel_logout_uri = match f.string("backchannel_logout_uri")? {
            None => None,
            Some(u) => urls::outbound("backchannel_logout_uri", u, dev, false).map(|_| Some(u.to_owned()))?,
        };
        let backchannel_logout_session_required = f.boolean("backchannel_logout_session_required")?.unwrap_or(false);

        let client_name = f.name("client_name")?.map(str::to_owned);
        if let Some(n) = &client_name {
            extra.insert("client_name".into(), n.clone().into());
        }
        display_metadata(&f, doc, &mut extra)?;
        // OIDC Core §5.3.2: UserInfo as a signed JWT, with one of our signing algorithms.
        if let Some(a) = f.string("userinfo_signed_response_alg")? {
            let alg: SigningAlg = a.parse().map_err(|_| bad("userinfo_signed_response_alg is not supported"))?;
            if !settings.signing_algorithms().unwrap_or_default().contains(&alg) {
                return Err(bad("userinfo_signed_response_alg is not supported"));
            }
            extra.insert("userinfo_signed_response_alg".into(), alg.as_str().into());
        }

        Ok(Self {
            redirect_uris,
            post_logout_redirect_uris,
            auth_method,
            grant_types,
            scopes,
            id_token_signed_response_alg,
            jwks,
            jwks_uri,
            subject_type,
            sector_identifier_uri,
            backchannel_logout_uri,
            backchannel_logout_session_required,
            request_object_signing_alg,
            request_uris,
            require_par,
            client_name,
            extra,
        })
    }

    /// OIDC Core §8.1: the sector_identifier_uri document, fetched without becoming an SSRF
    /// tool, must be a JSON array holding every registered redirect URI.
    pub async fn check_sector(&self, settings: &Settings) -> Result<(), OAuthError> {
        let Some(uri) = &self.sector_identifier_uri else { return Ok(()) };
        let body = latchkey_web::fetch::get(uri, settings.development_mode)
            .await
            .map_err(|e| bad("sector_identifier_uri could not be fetched").because(e))?;
        let listed: Vec<String> = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(bad("sector_identifier_uri must hold a JSON array of URIs")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(bad("sector_identifier_uri must hold a JSON array of URIs")),
        };
        if self.redirect_uris.iter().any(|r| !listed.contains(r)) {
            return Err(bad("the sector_identifier_uri document does not list every redirect_uri"));
        }
        Ok(())
    }

    /// Write the registered metadata into `c`. Everything else (id, secrets, registration
    /// access token, operator settings such as skip_consent) is left as it is.
    pub fn apply(self, c: &mut Client) {
        c.name = self.client_name.unwrap_or_else(|| c.client_id.clone());
        c.redirect_uris = self.redirect_uris;
        c.post_logout_redirect_uris = self.post_logout_redirect_uris;
        c.auth_method = self.auth_method;
        c.grant_types = self.grant_types;
        c.scopes = self.scopes;
        // RFC 9700 §2.1.1: public clients must use PKCE.
        c.require_pkce = c.require_pkce || self.auth_method == ClientAuthMethod::None;
        c.id_token_signed_response_alg = self.id_token_signed_response_alg;
        c.jwks = self.jwks;
        c.jwks_uri = self.jwks_uri;
        c.subject_type = self.subject_type;
        c.sector_identifier_uri = self.sector_identifier_uri;
        c.backchannel_logout_uri = self.backchannel_logout_uri;
        c.backchannel_logout_session_required = self.backchannel_logout_session_required;
        c.request_object_signing_alg = self.request_object_signing_alg;
        c.request_uris = self.request_uris;
        c.require_par = self.require_par;
        c.metadata = self.extra;
    }
}

/// Features a client could rely on that Latchkey does not offer: refused rather than ignored,
/// so the client does not expect signed or encrypted responses it will never get.
fn refuse_unsupported(f: &Fields<'_>) -> Result<(), OAuthError> {
    for (k, v) in f.0 {
        if v.is_null() || v.as_str() == Some("") {
            continue;
        }
        let unsupported = k.ends_with("_encrypted_response_alg")
            || k.ends_with("_encrypted_response_enc")
            || k == "request_object_encryption_alg"
            || k == "request_object_encryption_enc"
            || k == "authorization_signed_response_alg"
            || k == "introspection_signed_response_alg";
        if unsupported {
            return Err(bad(format!("{} is not supported", printable(k))));
        }
    }
    // RFC 8705 §3.4 / RFC 9449 §5.2: sender-constrained tokens are not issued; RFC 9101 §10.5:
    // requiring signed request objects is not enforced.
    for k in ["tls_client_certificate_bound_access_tokens", "dpop_bound_access_tokens", "require_signed_request_object"]
    {
        if f.boolean(k)? == Some(true) {
            return Err(bad(format!("{k} is not supported")));
        }
    }
    Ok(())
}

fn printable(k: &str) -> String {
    k.chars().filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\').take(64).collect()
}

/// A registered `jwks` value: a JWK Set of public keys only (OIDC Registration §2).
fn public_jwks(v: &Value) -> Result<String, OAuthError> {
    let keys = v.get("keys").and_then(Value::as_array).ok_or_else(|| bad("jwks must be a JWK Set"))?;
    if keys.is_empty() || keys.len() > MAX_LIST {
        return Err(bad(format!("jwks must hold 1 to {MAX_LIST} keys")));
    }
    for k in keys {
        let Value::Object(members) = k else { return Err(bad("jwks must be a JWK Set")) };
        if PRIVATE_JWK_MEMBERS.iter().any(|m| members.contains_key(*m)) {
            return Err(bad("jwks must hold public keys only"));
        }
    }
    let text = v.to_string();
    JwkSet::from_bytes(text.as_bytes()).map_err(|e| bad("jwks is not a valid JWK Set").because(e))?;
    Ok(text)
}

/// Display and policy metadata kept as registered: URIs, language-tagged variants (OIDC
/// Registration §2.1), contacts, default_max_age, require_auth_time, initiate_login_uri,
/// software_id, software_version.
fn display_metadata(
    f: &Fields<'_>,
    doc: &Map<String, Value>,
    extra: &mut Map<String, Value>,
) -> Result<(), OAuthError> {
    for k in ["client_uri", "logo_uri", "policy_uri", "tos_uri"] {
        if let Some(u) = f.string(k)? {
            urls::display(k, u)?;
            extra.insert(k.into(), u.into());
        }
    }
    let mut tagged = 0usize;
    for (k, v) in doc {
        let Some((base, tag)) = k.split_once('#') else { continue };
        if !TAGGABLE.contains(&base) || v.is_null() {
            continue;
        }
        // BCP 47 tags: letters, digits and hyphens.
        if tag.is_empty() || tag.len() > 35 || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad(format!("{base} has a malformed language tag")));
        }
        tagged += 1;
        if tagged > MAX_TAGGED {
            return Err(bad(format!("more than {MAX_TAGGED} language-tagged values")));
        }
        let Value::String(s) = v else { return Err(bad(format!("{base} must be a string"))) };
        if base == "client_name" {
            check_name(base, s)?;
        } else {
            urls::display(base, s)?;
        }
        extra.insert(k.clone(), v.clone());
    }
    if let Some(list) = f.strings("contacts")? {
        for c in &list {
            check_name("contacts", c)?;
        }
        if !list.is_empty() {
            extra.insert("contacts".into(), list.into());
        }
    }
    // OIDC Registration §2: default_max_age and require_auth_time.
    if let Some(s) = f.seconds("default_max_age")? {
        extra.insert("default_max_age".into(), s.into());
    }
    if let Some(b) = f.boolean("require_auth_time")? {
        extra.insert("require_auth_time".into(), b.into());
    }
    // OIDC Registration §2: initiate_login_uri uses the https scheme.
    if let Some(u) = f.string("initiate_login_uri")? {
        urls::display("initiate_login_uri", u)?;
        if !u.starts_with("https://") {
            return Err(bad("initiate_login_uri must be an https URL"));
        }
        extra.insert("initiate_login_uri".into(), u.into());
    }
    for k in ["software_id", "software_version"] {
        if let Some(s) = f.name(k)? {
            extra.insert(k.into(), s.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::ErrorCode;
    use serde_json::json;

    fn parse(v: Value) -> Result<Registration, OAuthError> {
        parse_with(v, &Settings::default())
    }

    fn parse_with(v: Value, s: &Settings) -> Result<Registration, OAuthError> {
        Registration::parse(v.as_object().unwrap(), s)
    }

    fn code_of(v: Value) -> ErrorCode {
        parse(v).unwrap_err().code
    }

    #[test]
    fn defaults_are_filled() {
        let r = parse(json!({"redirect_uris": ["https://rp.example/cb"]})).unwrap();
        assert_eq!(r.auth_method, ClientAuthMethod::ClientSecretBasic);
        assert_eq!(r.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(r.subject_type, SubjectType::Public);
        assert_eq!(r.extra["application_type"], "web");
        assert!(r.scopes.contains(&"openid".to_string()));
    }

    #[test]
    fn grant_and_response_types_must_agree() {
        let base = json!({"redirect_uris": ["https://rp.example/cb"]});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        assert_eq!(code_of(with("response_types", json!(["code id_token"]))), ErrorCode::InvalidClientMetadata);
        assert_eq!(code_of(with("response_types", json!([]))), ErrorCode::InvalidClientMetadata);
        assert_eq!(code_of(with("grant_types", json!(["refresh_token"]))), ErrorCode::InvalidClientMetadata);
        assert_eq!(code_of(with("grant_types", json!(["implicit"]))), ErrorCode::InvalidClientMetadata);
        assert_eq!(code_of(with("grant_types", json!([]))), ErrorCode::InvalidClientMetadata);
        let cc = json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"});
        assert_eq!(code_of(cc), ErrorCode::InvalidClientMetadata);
        assert!(parse(json!({"grant_types": ["client_credentials"]})).is_ok());
        assert!(parse(json!({"grant_types": ["client_credentials"], "response_types": []})).is_ok());
        assert_eq!(
            code_of(json!({"grant_types": ["client_credentials"], "response_types": ["code"]})),
            ErrorCode::InvalidClientMetadata
        );
    }

    #[test]
    fn wrong_types_are_invalid_client_metadata_and_bad_uris_invalid_redirect_uri() {
        assert_eq!(code_of(json!({"redirect_uris": "https://rp.example/cb"})), ErrorCode::InvalidClientMetadata);
        assert_eq!(code_of(json!({"redirect_uris": [1]})), ErrorCode::InvalidClientMetadata);
        assert_eq!(
            code_of(json!({"redirect_uris": ["https://rp.example/cb"], "client_name": 5})),
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(
            code_of(json!({"redirect_uris": ["https://rp.example/cb"], "default_max_age": -1})),
            ErrorCode::InvalidClientMetadata
        );
        assert_eq!(code_of(json!({"redirect_uris": ["https://rp.example/cb#f"]})), ErrorCode::InvalidRedirectUri);
        assert_eq!(code_of(json!({"redirect_uris": ["javascript:alert(1)"]})), ErrorCode::InvalidRedirectUri);
        assert_eq!(code_of(json!({})), ErrorCode::InvalidRedirectUri);
    }

    #[test]
    fn unknown_members_are_ignored_and_unsupported_ones_refused() {
        let r = parse(
            json!({"redirect_uris": ["https://rp.example/cb"], "frobnicate": {"x": 1}, "userinfo_signed_response_alg": null}),
        );
        assert!(!r.unwrap().extra.contains_key("frobnicate"));
        for k in ["userinfo_encrypted_response_alg", "id_token_encrypted_response_alg", "request_object_encryption_enc"]
        {
            let mut v = json!({"redirect_uris": ["https://rp.example/cb"]});
            v[k] = json!("RS256");
            assert_eq!(code_of(v), ErrorCode::InvalidClientMetadata, "{k}");
        }
    }

    #[test]
    fn keys_and_algorithms() {
        let cb = json!(["https://rp.example/cb"]);
        let pkj = |extra: Value| {
            let mut v = json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt"});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            v
        };
        assert!(parse(pkj(json!({}))).is_err());
        assert!(parse(pkj(json!({"jwks_uri": "https://rp.example/jwks"}))).is_ok());
        let secret_key = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        assert!(parse(pkj(json!({"jwks": secret_key}))).is_err());
        let ec = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
        assert!(parse(pkj(json!({"jwks": ec}))).is_ok());
        assert!(parse(pkj(json!({"jwks": ec, "jwks_uri": "https://rp.example/jwks"}))).is_err());
        assert!(parse(pkj(json!({"jwks": {"keys": "x"}}))).is_err());
        assert!(parse(pkj(json!({"jwks_uri": "https://10.0.0.1/jwks"}))).is_err());
        assert!(
            parse(pkj(json!({"jwks_uri": "https://rp.example/jwks", "token_endpoint_auth_signing_alg": "HS256"})))
                .is_err()
        );
        assert!(parse(json!({"redirect_uris": cb, "id_token_signed_response_alg": "none"})).is_err());
        assert!(parse(json!({"redirect_uris": cb, "id_token_signed_response_alg": "ES256"})).is_ok());
        let mut only_rs = Settings::default();
        only_rs.signing.algorithms = vec!["RS256".into()];
        assert!(parse_with(json!({"redirect_uris": cb, "id_token_signed_response_alg": "ES256"}), &only_rs).is_err());
        assert!(parse(json!({"redirect_uris": cb, "request_object_signing_alg": "none"})).is_err());
        let mut unsigned = Settings::default();
        unsigned.request_objects.allow_unsigned = true;
        assert!(parse_with(json!({"redirect_uris": cb, "request_object_signing_alg": "none"}), &unsigned).is_ok());
        assert!(parse(json!({"redirect_uris": cb, "request_uris": ["http://rp.example/r"]})).is_err());
    }

    #[test]
    fn pairwise_clients_on_several_hosts_need_a_sector() {
        let two = json!(["https://a.example/cb", "https://b.example/cb"]);
        assert!(parse(json!({"redirect_uris": two, "subject_type": "pairwise"})).is_err());
        assert!(parse(json!({"redirect_uris": two, "subject_type": "pairwise", "sector_identifier_uri": "https://a.example/s.json"})).is_ok());
        assert!(
            parse(json!({"redirect_uris": ["https://a.example/1", "https://a.example/2"], "subject_type": "pairwise"}))
                .is_ok()
        );
        assert!(parse(json!({"redirect_uris": two, "subject_type": "secret"})).is_err());
    }

    #[test]
    fn scopes_are_narrowed_to_openid_scopes() {
        let r = parse(json!({"redirect_uris": ["https://rp.example/cb"], "scope": "openid email admin"})).unwrap();
        assert_eq!(r.scopes, vec!["email".to_string(), "openid".to_string()]);
        assert!(parse(json!({"redirect_uris": ["https://rp.example/cb"], "scope": "admin"})).is_err());
        assert!(parse(json!({"redirect_uris": ["https://rp.example/cb"], "scope": "a\"b"})).is_err());
    }

    #[test]
    fn display_metadata_is_kept_and_checked() {
        let r = parse(json!({"redirect_uris": ["https://rp.example/cb"], "client_name": "Shop", "client_name#ja-Jpan-JP": "ショップ",
            "logo_uri": "https://rp.example/l.png", "contacts": ["ops@rp.example"], "default_max_age": 3600, "require_auth_time": true}))
        .unwrap();
        assert_eq!(r.extra["client_name#ja-Jpan-JP"], "ショップ");
        assert_eq!(r.extra["default_max_age"], 3600);
        assert!(parse(json!({"redirect_uris": ["https://rp.example/cb"], "logo_uri": "javascript:alert(1)"})).is_err());
        assert!(parse(json!({"redirect_uris": ["https://rp.example/cb"], "client_name#<x>": "a"})).is_err());
        assert!(parse(json!({"redirect_uris": ["https://rp.example/cb"], "client_name": "a\u{0007}"})).is_err());
    }
}
