//! Token introspection (RFC 7662): `POST /introspect`, client-authenticated. Inactive tokens
//! answer `{"active": false}` and nothing else.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use latchkey_core::claims::{MembershipClaims, user_claim};
use latchkey_core::model::{Client, SubjectType};
use latchkey_core::scope::Scope;
use latchkey_core::{OAuthError, SecretToken};
use latchkey_storage::StoreError;
use latchkey_web::errors::no_store_json;
use latchkey_web::params::FormParams;
use latchkey_web::{AppState, BackChannel, client_auth};
use serde_json::{Map, Value, json};

use crate::access;

pub async fn post_introspect(State(state): State<AppState>, form: FormParams) -> Response {
    let basic_attempted = form.headers.contains_key(http::header::AUTHORIZATION);
    let params = match form.params {
        Ok(p) => p,
        Err(e) => {
            return BackChannel { error: OAuthError::invalid_request(e.describe()), basic_attempted }.into_response();
        }
    };
    let client =
        match client_auth::authenticate(&state, &form.headers, form.peer, &params, crate::INTROSPECT_PATH).await {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        };
    // RFC 7662 §2.1: the caller must be authorised; a public client proves nothing.
    if !client.auth_method.is_confidential() {
        return BackChannel::new(OAuthError::invalid_client("introspection needs a confidential client"))
            .into_response();
    }
    let resp = respond(&state, &client, &params).await;
    latchkey_web::cors::for_client(resp, &client)
}

async fn respond(state: &AppState, client: &latchkey_core::model::Client, params: &latchkey_web::Params) -> Response {
    let Some(token) = params.get("token") else {
        return BackChannel::new(OAuthError::invalid_request("token is required")).into_response();
    };
    let refresh_first = params.get("token_type_hint") == Some("refresh_token");
    let found = if refresh_first {
        match refresh_info(state, client, token).await {
            Ok(None) => access_info(state, client, token).await,
            other => other,
        }
    } else {
        match access_info(state, client, token).await {
            Ok(None) => refresh_info(state, client, token).await,
            other => other,
        }
    };
    match found {
        Ok(Some(mut info)) if may_see(client, &info) => match insert_memberships(state, &mut info).await {
            Ok(()) => no_store_json(StatusCode::OK, Value::Object(info.body)),
            Err(e) => BackChannel::new(OAuthError::server_error(e)).into_response(),
        },
        Ok(_) => no_store_json(StatusCode::OK, json!({"active": false})),
        Err(e) => BackChannel::new(OAuthError::server_error(e)).into_response(),
    }
}

struct Info {
    client_id: String,
    audience: Option<String>,
    body: Map<String, Value>,
    /// The token's user and scope, when it has a user.
    user: Option<(String, String)>,
}

/// A client sees tokens issued to it or meant for it; resource servers registered with
/// `--introspection` see any token. Everyone else learns only `active: false`.
fn may_see(client: &Client, info: &Info) -> bool {
    client.introspection
        || info.client_id == client.client_id
        || info.audience.as_deref() == Some(client.client_id.as_str())
}

/// RFC 7662 `username`: only when the token's scope releases a username (`profile` carries
/// `preferred_username`), and then the value the client would get as `preferred_username` from
/// UserInfo. Without it, a global identifier would let two clients (pairwise ones above all)
/// link a user (issue 13).
async fn username_of(state: &AppState, user_id: &str, scope: &str) -> Result<Option<String>, StoreError> {
    if !Scope::parse(scope).unwrap_or_default().contains("profile") {
        return Ok(None);
    }
    Ok(state
        .store
        .get_user(user_id)
        .await?
        .and_then(|u| user_claim(&u, "preferred_username"))
        .and_then(|v| v.as_str().map(str::to_owned)))
}

/// The `sub` of a user's token: the one its own client knows (pairwise clients get theirs), as
/// a JWT access token carries it (RFC 9068 §2.2) and RFC 7662 peers report it. A pairwise
/// caller never learns the public id: when the token's client is public-subject and the caller
/// pairwise, there is no `sub` (issue 13). Unknown client: no `sub` either, never the user id.
async fn subject_of(
    state: &AppState,
    caller: &Client,
    client_id: &str,
    user_id: &str,
) -> Result<Option<String>, StoreError> {
    let Some(c) = state.client(client_id).await? else { return Ok(None) };
    if c.subject_type == SubjectType::Public && caller.subject_type == SubjectType::Pairwise {
        return Ok(None);
    }
    Ok(Some(latchkey_web::subject::for_client(state, &c, user_id)))
}

/// `sub` and `username` of a user's token, as [`subject_of`] and [`username_of`] allow.
async fn insert_user(
    state: &AppState,
    caller: &Client,
    body: &mut Map<String, Value>,
    client_id: &str,
    user_id: &str,
    scope: &str,
) -> Result<(), StoreError> {
    if let Some(sub) = subject_of(state, caller, client_id, user_id).await? {
        body.insert("sub".into(), json!(sub));
    }
    if let Some(name) = username_of(state, user_id, scope).await? {
        body.insert("username".into(), json!(name));
    }
    Ok(())
}

/// `groups` and `roles` when the token's scope holds them: as they are at introspection time
/// (a JWT carries those of its issuance), for the client the token was issued to. Only for a
/// caller that may see the token: no query otherwise.
async fn insert_memberships(state: &AppState, info: &mut Info) -> Result<(), StoreError> {
    let Some((user_id, scope)) = &info.user else { return Ok(()) };
    let wanted = MembershipClaims::for_scope(&Scope::parse(scope).unwrap_or_default());
    if wanted.any() {
        let m = state.store.memberships(user_id, &info.client_id, wanted).await?;
        wanted.insert(&mut info.body, &m);
    }
    Ok(())
}

async fn access_info(state: &AppState, caller: &Client, token: &str) -> Result<Option<Info>, StoreError> {
    let Some(v) = access::validate(state, token).await? else { return Ok(None) };
    let mut body = Map::new();
    body.insert("active".into(), json!(true));
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("client_id".into(), json!(v.client_id));
    body.insert("iss".into(), json!(state.settings.issuer));
    body.insert("exp".into(), json!(v.exp));
    body.insert("iat".into(), json!(v.iat));
    if !v.scope.is_empty() {
        body.insert("scope".into(), json!(v.scope));
    }
    if let Some(a) = &v.audience {
        body.insert("aud".into(), json!(a));
    }
    match v.user_id() {
        Some(u) => insert_user(state, caller, &mut body, &v.client_id, u, &v.scope).await?,
        None => {
            body.insert("sub".into(), json!(v.client_id));
        }
    }
    if let Some(j) = &v.jti {
        body.insert("jti".into(), json!(j));
    }
    let user = v.user_id().map(|u| (u.to_owned(), v.scope.clone()));
    Ok(Some(Info { client_id: v.client_id, audience: v.audience, body, user }))
}

async fn refresh_info(state: &AppState, caller: &Client, token: &str) -> Result<Option<Info>, StoreError> {
    let Some(v) = state.store.get_refresh_token(&SecretToken::from_presented(token).hash(), state.now()).await? else {
        return Ok(None);
    };
    if !v.active {
        return Ok(None);
    }
    let mut body = Map::new();
    // RFC 7662 §2.2: token_type names access-token types; a refresh token has none.
    body.insert("active".into(), json!(true));
    body.insert("client_id".into(), json!(v.grant.client_id));
    body.insert("iss".into(), json!(state.settings.issuer));
    body.insert("exp".into(), json!(v.expires_at));
    body.insert("iat".into(), json!(v.created_at));
    body.insert("scope".into(), json!(v.scope));
    if let Some(u) = v.grant.user_id.as_deref() {
        insert_user(state, caller, &mut body, &v.grant.client_id, u, &v.scope).await?;
    }
    let user = v.grant.user_id.clone().map(|u| (u, v.scope.clone()));
    Ok(Some(Info { client_id: v.grant.client_id.clone(), audience: None, body, user }))
}
