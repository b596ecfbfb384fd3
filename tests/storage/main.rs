//! Storage contract tests: the same rules checked on SQLite (default) and PostgreSQL
//! (`TEST_DATABASE_URL=postgres://…`), through the `Store` traits only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::field_reassign_with_default,
    clippy::collapsible_if
)]

#[path = "../support/mod.rs"]
mod support;

mod audit;
mod clients;
mod directory;
mod grants;
mod health;
mod housekeeping;
mod keys;
mod migrations;
mod sessions;
mod single_use;
mod users;
mod wal;

use latchkey_core::TokenHash;
use latchkey_core::model::{Client, ClientAuthMethod, GrantType, SigningAlg, User};
use latchkey_storage::{KeyRecord, SessionRecord, Store};
use std::sync::Arc;
use support::TestDb;

/// A fresh database and a migrated store on it. Keep the `TestDb` alive for the test.
pub async fn fresh_store() -> (TestDb, Arc<dyn Store>) {
    let db = TestDb::fresh().await;
    let store = latchkey_storage::open(&db.settings()).await.unwrap();
    (db, store)
}

/// A confidential client with every optional field set.
pub fn client(id: &str) -> Client {
    Client {
        client_id: id.to_string(),
        name: format!("Client “{id}” with \"quotes\""),
        secret_hash: Some(TokenHash::from_stored(format!("hash-of-{id}"))),
        redirect_uris: vec![
            format!("https://{id}.example/callback"),
            "http://127.0.0.1:9000/cb?x=\"1\"&y=é".to_string(),
        ],
        post_logout_redirect_uris: vec![format!("https://{id}.example/bye")],
        auth_method: ClientAuthMethod::ClientSecretPost,
        grant_types: vec![GrantType::RefreshToken, GrantType::AuthorizationCode, GrantType::ClientCredentials],
        scopes: vec!["openid".into(), "profile".into(), "email".into(), "offline_access".into()],
        skip_consent: true,
        require_pkce: false,
        id_token_signed_response_alg: Some(SigningAlg::ES256),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_001,
        ..Default::default()
    }
}

/// A public client: no secret, no alg, empty lists where allowed, the other bool values.
pub fn public_client(id: &str) -> Client {
    Client {
        client_id: id.to_string(),
        name: format!("public {id}"),
        secret_hash: None,
        redirect_uris: vec![format!("https://{id}.example/cb")],
        post_logout_redirect_uris: vec![],
        auth_method: ClientAuthMethod::None,
        grant_types: vec![GrantType::AuthorizationCode],
        scopes: vec!["openid".into()],
        skip_consent: false,
        require_pkce: true,
        id_token_signed_response_alg: None,
        created_at: 1_700_000_100,
        updated_at: 1_700_000_100,
        ..Default::default()
    }
}

/// `Client` has no `PartialEq`; compare every field.
pub fn assert_client_eq(got: &Client, want: &Client) {
    assert_eq!(got.client_id, want.client_id, "client_id");
    assert_eq!(got.name, want.name, "name");
    assert_eq!(got.secret_hash, want.secret_hash, "secret_hash of {}", want.client_id);
    assert_eq!(got.redirect_uris, want.redirect_uris, "redirect_uris");
    assert_eq!(got.post_logout_redirect_uris, want.post_logout_redirect_uris, "post_logout_redirect_uris");
    assert_eq!(got.auth_method, want.auth_method, "auth_method");
    assert_eq!(got.grant_types, want.grant_types, "grant_types");
    assert_eq!(got.scopes, want.scopes, "scopes");
    assert_eq!(got.skip_consent, want.skip_consent, "skip_consent");
    assert_eq!(got.require_pkce, want.require_pkce, "require_pkce");
    assert_eq!(got.id_token_signed_response_alg, want.id_token_signed_response_alg, "alg");
    assert_eq!(got.created_at, want.created_at, "created_at");
    assert_eq!(got.updated_at, want.updated_at, "updated_at");
}

pub fn user(id: &str, username: &str) -> User {
    let claims = serde_json::json!({
        "given_name": "Ada",
        "locale": "en-GB",
        "address": { "street_address": "1 Analytical Way", "country": "UK" },
        "phone_number_verified": false,
    });
    User {
        id: id.to_string(),
        username: username.to_string(),
        password_hash: format!("$argon2id$v=19$m=256,t=1,p=1$c2FsdA${id}"),
        email: Some(format!("{username}@example.org")),
        email_verified: true,
        name: Some(format!("Name of {username}")),
        claims: claims.as_object().unwrap().clone(),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_002,
    }
}

/// `User` has no `PartialEq`; compare every field.
pub fn assert_user_eq(got: &User, want: &User) {
    assert_eq!(got.id, want.id, "id");
    assert_eq!(got.username, want.username, "username");
    assert_eq!(got.password_hash, want.password_hash, "password_hash");
    assert_eq!(got.email, want.email, "email");
    assert_eq!(got.email_verified, want.email_verified, "email_verified");
    assert_eq!(got.name, want.name, "name");
    assert_eq!(got.claims, want.claims, "claims");
    assert_eq!(got.created_at, want.created_at, "created_at");
    assert_eq!(got.updated_at, want.updated_at, "updated_at");
}

pub fn session(id_hash: &str, user_id: &str, expires_at: i64) -> SessionRecord {
    SessionRecord {
        id_hash: TokenHash::from_stored(id_hash.to_string()),
        sid: format!("sid-{id_hash}"),
        user_id: user_id.to_string(),
        auth_time: expires_at - 100,
        acr: Some("urn:latchkey:acr:pwd".into()),
        amr: vec!["pwd".into(), "otp".into()],
        created_at: expires_at - 90,
        expires_at,
    }
}

/// `SessionRecord` has no `PartialEq`; compare every field.
pub fn assert_session_eq(got: &SessionRecord, want: &SessionRecord) {
    assert_eq!(got.id_hash, want.id_hash, "id_hash");
    assert_eq!(got.sid, want.sid, "sid");
    assert_eq!(got.user_id, want.user_id, "user_id");
    assert_eq!(got.auth_time, want.auth_time, "auth_time");
    assert_eq!(got.acr, want.acr, "acr");
    assert_eq!(got.amr, want.amr, "amr");
    assert_eq!(got.created_at, want.created_at, "created_at");
    assert_eq!(got.expires_at, want.expires_at, "expires_at");
}

/// A key record made by hand: the store treats the JWK and private key as opaque strings.
pub fn key(kid: &str, alg: &str, activates_at: i64, retired_at: Option<i64>) -> KeyRecord {
    KeyRecord {
        kid: kid.to_string(),
        alg: alg.to_string(),
        public_jwk: format!(r#"{{"kty":"fake","kid":"{kid}","alg":"{alg}"}}"#),
        private_key: format!("sealed-private-key-of-{kid}"),
        created_at: activates_at - 10,
        activates_at,
        retired_at,
    }
}
