//! Client authentication at back-channel endpoints (RFC 6749 §2.3, OIDC Core §9, RFC 7523):
//! `client_secret_basic` (credentials form-url-decoded, RFC 6749 §2.3.1), `client_secret_post`,
//! `client_secret_jwt`, `private_key_jwt`, and `none` for public clients. A client must use the
//! method it registered.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::{ES256, EdDSA, HS256, HS384, HS512, JwsVerifier, PS256, RS256};
use latchkey_core::model::{Client, ClientAuthMethod};
use latchkey_core::{OAuthError, SecretToken, UnixTime};
use latchkey_signer::jws;
use serde_json::Value;
use std::sync::Arc;

use crate::errors::BackChannel;
use crate::limits::{self, Kind, Subject};
use crate::params::Params;
use crate::state::AppState;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn fail(basic: bool, why: impl Into<String>) -> BackChannel {
    BackChannel {
        error: OAuthError::invalid_client("client authentication failed").because(why.into()),
        basic_attempted: basic,
    }
}

/// `application/x-www-form-urlencoded` decoding of one Basic credential part, on its own: a raw
/// `&` or `=` in it is part of the value (parsed as a form, `S&junk=1` would become `S`).
fn form_decode(s: &str) -> Option<String> {
    crate::params::decode(s.as_bytes()).ok()
}

fn parse_basic(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(v) = headers.get(http::header::AUTHORIZATION) else { return Ok(None) };
    let v = v.to_str().map_err(|_| ())?;
    let (scheme, rest) = v.split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(());
    }
    let raw = STANDARD.decode(rest.trim()).map_err(|_| ())?;
    let text = String::from_utf8(raw).map_err(|_| ())?;
    // RFC 6749 §2.3.1: each half is form-encoded, then joined with ':'; an encoded id or secret
    // holds no raw ':', so the first one is the separator.
    let (id, secret) = text.split_once(':').ok_or(())?;
    let id = form_decode(id).ok_or(())?;
    let secret = form_decode(secret).ok_or(())?;
    if id.is_empty() {
        return Err(());
    }
    Ok(Some((id, secret)))
}

/// Authenticate the calling client at `endpoint_path`. Errors are `invalid_client` (401, with
/// `WWW-Authenticate` when Basic was tried), `invalid_request` for ambiguous requests, and 429
/// `temporarily_unavailable` when an abuse limit refuses the request: too many requests from
/// the client or its IP, or too many failed client authentications from the IP.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
    params: &Params,
    endpoint_path: &str,
) -> Result<Arc<Client>, BackChannel> {
    let limits = &state.settings.limits;
    let now = state.now();
    let raw_ip = crate::client_ip::client_ip(headers, peer, &state.settings);
    let ip = raw_ip.as_deref().map(limits::ip_subject);
    let refuse = |w: limits::Wait, what: &str| {
        tracing::info!(endpoint = endpoint_path, limit = what, "rate limit reached");
        BackChannel::new(w.into_error())
    };
    // Failed authentications are counted per IP and presented client id, so a neighbour behind
    // the same address failing with its own id does not shut other clients out; unknown client
    // ids from one IP share one count; and per IP whatever the id (IPv6 also per /56 and /48),
    // so fresh ids buy no fresh guesses. Subjects are fixed-size digests: an 8 KiB client id
    // costs the limiter what a short one does (issue 13).
    let presented = parse_basic(headers).ok().flatten().map(|(id, _)| id);
    let presented = presented.as_deref().or(params.get("client_id")).unwrap_or("");
    let pair = ip.as_deref().map(|ip| Subject::of(&[ip, presented]));
    if let Some(ip) = &ip {
        state.limiter.hit(limits, Kind::IpRequests, ip, now).map_err(|w| refuse(w, "requests_per_ip"))?;
    }
    if let Some(raw) = &raw_ip {
        state
            .limiter
            .check_ip(limits, Kind::ClientAuthFailuresTotal, raw, now)
            .map_err(|w| refuse(w, "client_auth_failures_per_ip_total"))?;
    }
    if let Some(p) = &pair {
        state
            .limiter
            .check(limits, Kind::ClientAuthFailures, p, now)
            .map_err(|w| refuse(w, "client_auth_failures_per_ip"))?;
    }
    match identify(state, headers, params, endpoint_path).await {
        Ok(client) => {
            // A public client is identified by its id alone, which anyone can send: its budget
            // is per IP, so nobody can spend it for the client's real users.
            let subject = match (client.auth_method, &ip) {
                (ClientAuthMethod::None, Some(ip)) => Subject::of(&[&client.client_id, ip]),
                _ => Subject::from(&client.client_id),
            };
            state
                .limiter
                .hit(limits, Kind::ClientRequests, subject, now)
                .map_err(|w| refuse(w, "requests_per_client"))?;
            Ok(client)
        }
        Err(e) => {
            if let (Some(raw), Some(ip), Some(p)) = (&raw_ip, &ip, &pair)
                && e.error.code == latchkey_core::ErrorCode::InvalidClient
            {
                state.limiter.count_ip(limits, Kind::ClientAuthFailuresTotal, raw, now);
                if e.error.private_source().is_some_and(|s| s.is::<UnknownClient>()) {
                    // Three parts: no (IP, client id) pair has this digest.
                    let unknown = Subject::of(&[ip, "", "unknown client"]);
                    state
                        .limiter
                        .hit(limits, Kind::ClientAuthFailures, unknown, now)
                        .map_err(|w| refuse(w, "client_auth_failures_per_ip"))?;
                } else {
                    state.limiter.count(limits, Kind::ClientAuthFailures, p, now);
                }
            }
            Err(e)
        }
    }
}

/// The private cause of an `invalid_client` for a client id nobody registered: such failures
/// are counted in one bucket per IP, whatever the id.
#[derive(Debug, thiserror::Error)]
#[error("unknown client")]
struct UnknownClient;

async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    endpoint_path: &str,
) -> Result<Arc<Client>, BackChannel> {
    let basic_attempted = headers.contains_key(http::header::AUTHORIZATION);
    let basic = parse_basic(headers).map_err(|_| fail(basic_attempted, "malformed Authorization header"))?;
    let post_id = params.get("client_id");
    let post_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let assertion_type = params.get("client_assertion_type");
    // RFC 6749 §2.3: a client MUST NOT use more than one authentication method per request.
    let methods_used = [basic.is_some(), post_secret.is_some(), assertion.is_some()].iter().filter(|b| **b).count();
    if methods_used > 1 {
        return Err(BackChannel {
            error: OAuthError::invalid_request("more than one client authentication method"),
            basic_attempted,
        });
    }
    if let Some(a) = assertion {
        if assertion_type != Some(JWT_BEARER) {
            return Err(BackChannel {
                error: OAuthError::invalid_request("client_assertion_type must be jwt-bearer (RFC 7523)"),
                basic_attempted,
            });
        }
        return authenticate_assertion(state, a, post_id, endpoint_path).await;
    }
    let (client_id, method, secret) = match (&basic, post_id, post_secret) {
        (Some((id, s)), pid, _) => {
            if pid.is_some_and(|p| p != id) {
                return Err(BackChannel {
                    error: OAuthError::invalid_request("client_id does not match the Authorization header"),
                    basic_attempted,
                });
            }
            (id.as_str(), ClientAuthMethod::ClientSecretBasic, Some(s.as_str()))
        }
        (None, Some(id), Some(s)) => (id, ClientAuthMethod::ClientSecretPost, Some(s)),
        (None, Some(id), None) => (id, ClientAuthMethod::None, None),
        (None, None, _) => return Err(fail(basic_attempted, "no client identification")),
    };
    let client = load(state, client_id, basic_attempted).await?;
    if client.auth_method != method {
        return Err(fail(basic_attempted, "not the client's registered authentication method"));
    }
    if method.uses_secret() {
        let (Some(presented), Some(stored)) = (secret, client.secret_hash.as_ref()) else {
            return Err(fail(basic_attempted, "missing secret"));
        };
        if !stored.matches(&SecretToken::from_presented(presented).hash()) {
            return Err(fail(basic_attempted, "wrong secret"));
        }
    }
    Ok(client)
}

async fn load(state: &AppState, client_id: &str, basic: bool) -> Result<Arc<Client>, BackChannel> {
    state.client(client_id).await.map_err(|e| BackChannel::new(OAuthError::server_error(e)))?.ok_or_else(|| {
        BackChannel {
            error: OAuthError::invalid_client("client authentication failed").because(UnknownClient),
            basic_attempted: basic,
        }
    })
}

/// Largest client assertion read (the whole form body is capped at 8 KiB anyway).
const MAX_ASSERTION_BYTES: usize = 8192;

/// `typ` values a client assertion may carry: none, plain `JWT`, or the explicit type of
/// draft-ietf-oauth-rfc7523bis. Anything else names another kind of JWT: above all a request
/// object (`oauth-authz-req+jwt`), which travels through the browser and must never
/// authenticate its client (RFC 8725 §2.8, §3.11).
const ASSERTION_TYPES: &[&str] = &["JWT", "client-authentication+jwt"];

/// RFC 7523 §3: verify a client assertion and its claims; record its jti against replay.
async fn authenticate_assertion(
    state: &AppState,
    assertion: &str,
    post_id: Option<&str>,
    endpoint_path: &str,
) -> Result<Arc<Client>, BackChannel> {
    // Structure, encoding, duplicate names, nesting, crit: see latchkey_signer::jws.
    let jwt = jws::parse(assertion, MAX_ASSERTION_BYTES).map_err(|e| fail(false, format!("assertion: {e}")))?;
    if !jwt.typ_absent_or(ASSERTION_TYPES) {
        return Err(fail(false, "assertion typ names another kind of JWT"));
    }
    let alg = jwt.alg();
    let iss = jwt.unverified.get("iss").and_then(Value::as_str).ok_or_else(|| fail(false, "assertion has no iss"))?;
    if post_id.is_some_and(|p| p != iss) {
        return Err(fail(false, "client_id does not match the assertion"));
    }
    let client = load(state, iss, false).await?;
    // The registered method decides which algorithms may be used (no algorithm confusion).
    let allowed = matches!(
        (client.auth_method, alg),
        (ClientAuthMethod::ClientSecretJwt, "HS256" | "HS384" | "HS512")
            | (ClientAuthMethod::PrivateKeyJwt, "RS256" | "PS256" | "ES256" | "EdDSA")
    );
    if !allowed {
        return Err(fail(false, "assertion algorithm or method does not match the registration"));
    }
    // OIDC Registration §2: a registered token_endpoint_auth_signing_alg is the only one accepted.
    if let Some(registered) = client.metadata.get("token_endpoint_auth_signing_alg").and_then(Value::as_str)
        && registered != alg
    {
        return Err(fail(false, "assertion algorithm differs from token_endpoint_auth_signing_alg"));
    }
    let verifier = client_verifier(state, &client, alg, jwt.kid()).await.map_err(|e| fail(false, e))?;
    let claims = jwt.verify(verifier.as_ref()).map_err(|e| fail(false, format!("assertion: {e}")))?;
    check_claims(state, &client, &claims, endpoint_path)?;
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or_default();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or_default();
    let fresh = state
        .store
        .record_assertion_jti(&client.client_id, jti, exp)
        .await
        .map_err(|e| BackChannel::new(OAuthError::server_error(e)))?;
    if !fresh {
        return Err(fail(false, "client assertion replayed"));
    }
    Ok(client)
}

/// A verifier for a JWS the client signed with `alg`: its registered keys (`jwks` or
/// `jwks_uri`) for RS256/PS256/ES256/EdDSA, its secret (kept encrypted) for HS256/384/512.
/// Nothing else, `none` least of all.
pub async fn client_verifier(
    state: &AppState,
    client: &Client,
    alg: &str,
    kid: Option<&str>,
) -> Result<Box<dyn JwsVerifier>, String> {
    match alg {
        "HS256" | "HS384" | "HS512" => {
            let enc = client.secret_enc.as_deref().ok_or("client has no stored secret")?;
            let secret = state
                .master
                .decrypt(enc, &format!("client_secret:{}", client.client_id))
                .map_err(|_| "client secret cannot be decrypted".to_string())?;
            let v: Result<Box<dyn JwsVerifier>, _> = match alg {
                "HS256" => HS256.verifier_from_bytes(&*secret).map(|v| Box::new(v) as Box<dyn JwsVerifier>),
                "HS384" => HS384.verifier_from_bytes(&*secret).map(|v| Box::new(v) as Box<dyn JwsVerifier>),
                _ => HS512.verifier_from_bytes(&*secret).map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            };
            v.map_err(|e| e.to_string())
        }
        "RS256" | "PS256" | "ES256" | "EdDSA" => {
            let jwk = client_key(state, client, kid, alg).await.map_err(|e| e.error.to_string())?;
            let v: Result<Box<dyn JwsVerifier>, _> = match alg {
                "RS256" => RS256.verifier_from_jwk(&jwk).map(|v| Box::new(v) as Box<dyn JwsVerifier>),
                "PS256" => PS256.verifier_from_jwk(&jwk).map(|v| Box::new(v) as Box<dyn JwsVerifier>),
                "ES256" => ES256.verifier_from_jwk(&jwk).map(|v| Box::new(v) as Box<dyn JwsVerifier>),
                _ => EdDSA.verifier_from_jwk(&jwk).map(|v| Box::new(v) as Box<dyn JwsVerifier>),
            };
            v.map_err(|e| format!("client key unusable: {e}"))
        }
        other => Err(format!("algorithm {other} is not accepted")),
    }
}

fn check_claims(
    state: &AppState,
    client: &Client,
    claims: &serde_json::Map<String, Value>,
    endpoint_path: &str,
) -> Result<(), BackChannel> {
    let now: UnixTime = state.now();
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("iss") != Some(client.client_id.as_str()) || s("sub") != Some(client.client_id.as_str()) {
        return Err(fail(false, "assertion iss and sub must be the client_id"));
    }
    // An untyped request object (RFC 9101) travels through the browser and may carry iss, sub,
    // aud and jti too: a JWT with authorization-request members never authenticates a client.
    if ["response_type", "redirect_uri", "code_challenge", "nonce"].iter().any(|k| claims.contains_key(*k)) {
        return Err(fail(false, "an authorization request object is not a client assertion"));
    }
    // RFC 7523 §3: aud identifies the authorization server: the issuer or this endpoint's URL.
    let endpoint = state.settings.endpoint(endpoint_path);
    let token_endpoint = state.settings.endpoint("/token");
    let ok_aud = |a: &str| a == state.settings.issuer || a == endpoint || a == token_endpoint;
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => ok_aud(a),
        Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).any(ok_aud),
        _ => false,
    };
    if !aud_ok {
        return Err(fail(false, "assertion audience is not this server"));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| fail(false, "assertion has no exp"))?;
    if exp <= now {
        return Err(fail(false, "assertion expired"));
    }
    if exp - now > state.settings.client_auth.assertion_max_lifetime {
        return Err(fail(false, "assertion lifetime too long"));
    }
    if claims.get("nbf").and_then(Value::as_i64).is_some_and(|n| n > now + 5) {
        return Err(fail(false, "assertion not yet valid"));
    }
    if claims.get("iat").and_then(Value::as_i64).is_some_and(|i| i > now + 5) {
        return Err(fail(false, "assertion issued in the future"));
    }
    match s("jti") {
        Some(j) if !j.is_empty() && j.len() <= 256 => Ok(()),
        _ => Err(fail(false, "assertion needs a jti")),
    }
}

async fn client_key(state: &AppState, client: &Client, kid: Option<&str>, alg: &str) -> Result<Jwk, BackChannel> {
    let set = match (&client.jwks, &client.jwks_uri) {
        (Some(j), _) => {
            Arc::new(JwkSet::from_bytes(j.as_bytes()).map_err(|_| fail(false, "registered jwks is invalid"))?)
        }
        (None, Some(uri)) => {
            let cached = jwks_from_uri(state, uri, false).await?;
            // A kid we have not seen: the client may have rotated its keys; fetch again
            // (at most once per few seconds per URI, so a stream of bogus kids cannot make
            // us hammer the client's server).
            match kid {
                Some(k) if cached.get(k).is_empty() => jwks_from_uri(state, uri, true).await?,
                _ => cached,
            }
        }
        (None, None) => return Err(fail(false, "client has no registered keys")),
    };
    let candidates: Vec<&Jwk> = match kid {
        Some(k) => set.get(k),
        None => set.keys(),
    };
    let found =
        candidates.into_iter().find(|k| key_fits(k, alg)).ok_or_else(|| fail(false, "no matching client key"))?;
    // The key is chosen; without its kid the verifier accepts assertions that omit one.
    let mut members = found.as_ref().clone();
    members.remove("kid");
    Jwk::from_map(members).map_err(|e| fail(false, format!("client key unusable: {e}")))
}

/// Can `k` verify `alg`? Its type and curve must be the algorithm's (RFC 7518 §3.1, RFC 8037
/// §3.1), its `alg` and `use`, when given, must agree: a P-384 key never verifies ES256 and an
/// RSA key never verifies anything but RS256/PS256, whatever the header says.
fn key_fits(k: &Jwk, alg: &str) -> bool {
    let crv = k.parameter("crv").and_then(Value::as_str);
    let shape = match alg {
        "RS256" | "PS256" => k.key_type() == "RSA",
        "ES256" => k.key_type() == "EC" && crv == Some("P-256"),
        "EdDSA" => k.key_type() == "OKP" && matches!(crv, Some("Ed25519" | "Ed448")),
        _ => false,
    };
    shape && k.algorithm().is_none_or(|a| a == alg) && k.key_use().is_none_or(|u| u == "sig")
}

/// Seconds a fetched JWK Set is kept even when a refresh is asked for (unknown kid).
const MIN_REFETCH_INTERVAL: i64 = 5;

async fn jwks_from_uri(state: &AppState, uri: &str, refresh: bool) -> Result<Arc<JwkSet>, BackChannel> {
    let now = state.now();
    let ttl = if refresh { MIN_REFETCH_INTERVAL } else { state.settings.client_auth.jwks_cache_ttl };
    if let Some(set) = state.jwks_cache.fresh(uri, now, ttl) {
        return Ok(set);
    }
    let body = crate::fetch::get(uri, state.settings.development_mode)
        .await
        .map_err(|e| fail(false, format!("jwks_uri fetch failed: {e}")))?;
    let set = Arc::new(JwkSet::from_bytes(&body).map_err(|_| fail(false, "jwks_uri document is not a JWK Set"))?);
    state.jwks_cache.insert(uri, now, set.clone());
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_url_decoded() {
        let mut h = HeaderMap::new();
        // id "a b", secret "p:%&" encoded per RFC 6749 §2.3.1 before base64.
        let enc = STANDARD.encode("a+b:p%3A%25%26");
        h.insert(http::header::AUTHORIZATION, format!("Basic {enc}").parse().unwrap());
        assert_eq!(parse_basic(&h), Ok(Some(("a b".into(), "p:%&".into()))));
    }

    #[test]
    fn each_basic_half_is_form_decoded_on_its_own_so_ampersands_stay_in_the_value() {
        let parse = |raw: &str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, format!("Basic {}", STANDARD.encode(raw)).parse().unwrap());
            parse_basic(&h)
        };
        // Read as a form, these would have been the secret `S` (issue 13).
        assert_eq!(parse("id:S&junk=1"), Ok(Some(("id".into(), "S&junk=1".into()))));
        assert_eq!(parse("id:S&client_id=x"), Ok(Some(("id".into(), "S&client_id=x".into()))));
        assert_eq!(parse("id:S&v=T"), Ok(Some(("id".into(), "S&v=T".into()))));
        assert_eq!(parse("a=b&c:S"), Ok(Some(("a=b&c".into(), "S".into()))));
        // The first ':' separates; later ones belong to the secret.
        assert_eq!(parse("id:a:b"), Ok(Some(("id".into(), "a:b".into()))));
        for bad in ["id:S%00", "id%00:S", "id:%FF", "id:%zz", ":S"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_fits_an_algorithm_by_type_curve_alg_and_use() {
        let jwk = |v: serde_json::Value| Jwk::from_bytes(v.to_string().as_bytes()).unwrap();
        let p256 = jwk(serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}));
        let p384 = jwk(serde_json::json!({"kty": "EC", "crv": "P-384", "x": "AAAA", "y": "AAAA"}));
        let ed = jwk(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}));
        let x25519 = jwk(serde_json::json!({"kty": "OKP", "crv": "X25519", "x": "AAAA"}));
        let rsa = jwk(serde_json::json!({"kty": "RSA", "n": "a", "e": "AQAB"}));
        let rsa_ps = jwk(serde_json::json!({"kty": "RSA", "n": "a", "e": "AQAB", "alg": "PS256"}));
        let rsa_enc = jwk(serde_json::json!({"kty": "RSA", "n": "a", "e": "AQAB", "use": "enc"}));
        let oct = jwk(serde_json::json!({"kty": "oct", "k": "AAAA"}));
        assert!(key_fits(&p256, "ES256") && !key_fits(&p384, "ES256") && !key_fits(&p256, "RS256"));
        assert!(key_fits(&ed, "EdDSA") && !key_fits(&x25519, "EdDSA") && !key_fits(&ed, "ES256"));
        assert!(key_fits(&rsa, "RS256") && key_fits(&rsa, "PS256") && !key_fits(&rsa, "ES256"));
        assert!(key_fits(&rsa_ps, "PS256") && !key_fits(&rsa_ps, "RS256") && !key_fits(&rsa_enc, "RS256"));
        for alg in ["HS256", "none", "ES384", "RS256"] {
            assert!(!key_fits(&oct, alg), "{alg}");
        }
    }

    #[test]
    fn malformed_basic_is_refused() {
        for v in ["Basic !!!", "Bearer abc", "Basic", &format!("Basic {}", STANDARD.encode("nocolon"))] {
            let mut h = HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
            assert!(parse_basic(&h).is_err(), "{v}");
        }
    }
}
