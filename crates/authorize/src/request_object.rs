//! Request objects (OIDC Core §6, RFC 9101) and pushed requests (RFC 9126): turn `request`,
//! `request_uri` or a PAR `urn:` reference into the authorization parameters.

use latchkey_core::model::Client;
use latchkey_core::{ErrorCode, OAuthError, SecretToken};
use latchkey_signer::jws;
use latchkey_web::AppState;
use latchkey_web::limits::Kind;
use latchkey_web::params::{MAX_PARAMS, Params};
use serde_json::{Map, Value};

pub const PAR_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

fn invalid_object(why: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequestObject, "the request object is not valid").because(why.to_owned())
}

fn invalid_uri(why: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequestUri, "the request_uri cannot be used").because(why.into())
}

/// The parameters to use, and whether they came from a pushed request.
pub async fn resolve(state: &AppState, client: &Client, params: Params) -> Result<(Params, bool), OAuthError> {
    let request = params.get("request").map(str::to_owned);
    let request_uri = params.get("request_uri").map(str::to_owned);
    match (request, request_uri) {
        (None, None) => Ok((params, false)),
        // OIDC Core §6: not both.
        (Some(_), Some(_)) => Err(OAuthError::invalid_request("request and request_uri cannot both be used")),
        (Some(jwt), None) => Ok((merge(params, verify(state, client, &jwt).await?), false)),
        (None, Some(uri)) if uri.starts_with(PAR_PREFIX) => {
            // RFC 9126 §4: one-time, bound to the client that pushed it. The store spends it
            // only for that client: another client's presentation is refused and spends nothing
            // (docs/SECURITY.md).
            let hash = SecretToken::from_presented(&uri).hash();
            let pushed = state
                .store
                .take_pushed_request(&hash, &client.client_id, state.now())
                .await
                .map_err(OAuthError::server_error)?
                .ok_or_else(|| invalid_uri("unknown, used, expired or pushed by another client"))?;
            let stored: Map<String, Value> =
                serde_json::from_str(&pushed.params).map_err(|e| OAuthError::server_error(e.to_string()))?;
            let mut out = Params::default();
            for (k, v) in stored {
                if let Value::String(s) = v {
                    out.insert(&k, &s);
                }
            }
            Ok((out, true))
        }
        (None, Some(uri)) => {
            if uri.len() > 512 {
                return Err(invalid_uri("request_uri longer than 512 characters"));
            }
            // OIDC Registration §2: only the registered request_uris (issue 13: otherwise anyone
            // could make the server fetch a URL of their choosing); a client that registered
            // none may name any only when require_request_uri_registration is off.
            let bare = uri.split('#').next().unwrap_or_default();
            let registered = client.request_uris.iter().any(|r| r.split('#').next() == Some(bare));
            let open =
                client.request_uris.is_empty() && !state.settings.request_objects.require_request_uri_registration;
            if !registered && !open {
                return Err(invalid_uri("request_uri is not registered for the client"));
            }
            // Fetches per client are limited, registered URIs or not.
            state
                .limiter
                .hit(&state.settings.limits, Kind::RequestUriFetches, &client.client_id, state.now())
                .map_err(|w| w.into_error())?;
            let body = latchkey_web::fetch::get(&uri, state.settings.development_mode)
                .await
                .map_err(|e| invalid_uri(format!("fetching request_uri failed: {e}")))?;
            let jwt = String::from_utf8(body).map_err(|_| invalid_uri("request_uri content is not text"))?;
            Ok((merge(params, verify(state, client, jwt.trim()).await?), false))
        }
    }
}

/// OIDC Core §6.3.3: the request object's values win over the query's.
fn merge(mut query: Params, object: Map<String, Value>) -> Params {
    query.remove("request");
    query.remove("request_uri");
    for (k, v) in object {
        let s = match v {
            Value::String(s) => s,
            Value::Null => continue,
            other => other.to_string(),
        };
        query.insert(&k, &s);
    }
    query
}

/// `typ` values a request object may carry: none, plain `JWT`, or its own explicit type
/// (RFC 9101 §10.8). Anything else names another kind of JWT (RFC 8725 §3.11).
const REQUEST_OBJECT_TYPES: &[&str] = &["oauth-authz-req+jwt", "JWT"];

/// Verify a request object and return its claims.
pub async fn verify(state: &AppState, client: &Client, jwt: &str) -> Result<Map<String, Value>, OAuthError> {
    // Size, structure, encoding, duplicate names, nesting, crit: see latchkey_signer::jws.
    let parsed = jws::parse(jwt, jws::MAX_JWS_BYTES).map_err(|e| invalid_object(&e.to_string()))?;
    if !parsed.typ_absent_or(REQUEST_OBJECT_TYPES) {
        return Err(invalid_object("typ names another kind of JWT"));
    }
    let alg = parsed.alg();
    if let Some(registered) = client.request_object_signing_alg.as_deref()
        && registered != alg
    {
        return Err(invalid_object("alg differs from the registered request_object_signing_alg"));
    }
    let claims = if alg == "none" {
        // Unsigned only when the client registered it and the operator allows it.
        let allowed = client.request_object_signing_alg.as_deref() == Some("none")
            && state.settings.request_objects.allow_unsigned;
        if !allowed || !parsed.unsigned {
            return Err(invalid_object("unsigned request objects are not accepted for this client"));
        }
        parsed.unverified
    } else {
        let verifier = latchkey_web::client_auth::client_verifier(state, client, alg, parsed.kid())
            .await
            .map_err(|e| invalid_object(&e))?;
        parsed.verify(verifier.as_ref()).map_err(|e| invalid_object(&e.to_string()))?
    };
    // The parameter cap holds for parameters inside a request object too (they are merged into
    // the request and, for pushed requests, stored).
    if claims.len() > MAX_PARAMS {
        return Err(invalid_object("the request object has too many members"));
    }
    check_claims(state, client, &claims)?;
    // RFC 9101 §10.2: a jti is single use until the object expires, on every instance (the
    // store the client assertions' jtis use, in a namespace of its own).
    if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or_default();
        let fresh = state
            .store
            .record_assertion_jti(&client.client_id, &format!("{JTI_NAMESPACE}{jti}"), exp)
            .await
            .map_err(OAuthError::server_error)?;
        if !fresh {
            return Err(invalid_object("jti replayed"));
        }
    }
    Ok(claims)
}

/// Prefix of a request object's jti in the assertion jti store, so a client's request object and
/// client assertion may carry the same jti.
const JTI_NAMESPACE: &str = "request_object:";

/// Seconds a request object's `nbf` or `iat` may lie in the future (clock skew), as for client
/// assertions.
const SKEW: i64 = 5;

/// RFC 9101 §4, §6.3 and RFC 7519 §4.1, as required here (issue 13): `iss` is the client, `aud`
/// the issuer, `exp` present, in the future and at most `request_objects.max_lifetime` ahead;
/// `nbf` and `iat`, when present, not in the future; `jti`, when present, a short string.
fn check_claims(state: &AppState, client: &Client, claims: &Map<String, Value>) -> Result<(), OAuthError> {
    let now = state.now();
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    // RFC 9101 §5: client_id inside must match.
    if claims.contains_key("client_id") && s("client_id") != Some(client.client_id.as_str()) {
        return Err(invalid_object("client_id does not match"));
    }
    if s("iss") != Some(client.client_id.as_str()) {
        return Err(invalid_object("iss is missing or not the client"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == &state.settings.issuer,
        Some(Value::Array(v)) => v.iter().any(|a| a.as_str() == Some(state.settings.issuer.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(invalid_object("aud is missing or not this issuer"));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(|| invalid_object("exp is missing"))?;
    if exp <= now {
        return Err(invalid_object("expired"));
    }
    if exp - now > state.settings.request_objects.max_lifetime {
        return Err(invalid_object("exp is further ahead than request_objects.max_lifetime"));
    }
    let time = |k: &str| -> Result<Option<i64>, OAuthError> {
        match claims.get(k) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| invalid_object(&format!("{k} is not a number"))),
        }
    };
    if time("nbf")?.is_some_and(|n| n > now + SKEW) {
        return Err(invalid_object("not yet valid"));
    }
    if time("iat")?.is_some_and(|i| i > now + SKEW) {
        return Err(invalid_object("issued in the future"));
    }
    if let Some(j) = claims.get("jti") {
        let ok = j.as_str().is_some_and(|j| !j.is_empty() && j.len() <= 256);
        if !ok {
            return Err(invalid_object("jti must be a string of 1 to 256 characters"));
        }
    }
    if claims.contains_key("request") || claims.contains_key("request_uri") {
        return Err(invalid_object("request objects cannot nest"));
    }
    Ok(())
}
