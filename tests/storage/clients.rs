use crate::{assert_client_eq, client, fresh_store, public_client};
use latchkey_core::TokenHash;
use latchkey_core::model::{ClientAuthMethod, GrantType, SigningAlg};
use latchkey_storage::Created;

#[tokio::test]
async fn client_round_trips_every_field_through_create_get_list_update_delete() {
    let (_db, store) = fresh_store().await;
    let confidential = client("conf-1");
    let public = public_client("pub-1");

    assert_eq!(store.create_client(&confidential).await.unwrap(), Created::Created);
    assert_eq!(store.create_client(&public).await.unwrap(), Created::Created);

    assert_client_eq(&store.get_client("conf-1").await.unwrap().unwrap(), &confidential);
    assert_client_eq(&store.get_client("pub-1").await.unwrap().unwrap(), &public);
    assert!(store.get_client("nobody").await.unwrap().is_none());

    // Listed in creation order (conf-1 was created first).
    let listed = store.list_clients().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_client_eq(&listed[0], &confidential);
    assert_client_eq(&listed[1], &public);

    // Update every mutable field, flipping bools and optional values both ways.
    let mut changed = confidential.clone();
    changed.name = "renamed".into();
    changed.secret_hash = Some(TokenHash::from_stored("rotated-hash".into()));
    changed.redirect_uris = vec!["https://new.example/cb".into()];
    changed.post_logout_redirect_uris = vec![];
    changed.auth_method = ClientAuthMethod::ClientSecretBasic;
    changed.grant_types = vec![GrantType::ClientCredentials];
    changed.scopes = vec!["openid".into(), "api:read".into()];
    changed.skip_consent = false;
    changed.require_pkce = true;
    changed.id_token_signed_response_alg = None;
    changed.updated_at = confidential.updated_at + 50;
    assert!(store.update_client(&changed).await.unwrap());
    assert_client_eq(&store.get_client("conf-1").await.unwrap().unwrap(), &changed);

    let mut public_changed = public.clone();
    public_changed.id_token_signed_response_alg = Some(SigningAlg::EdDSA);
    public_changed.post_logout_redirect_uris = vec!["https://pub-1.example/a".into(), "https://pub-1.example/b".into()];
    public_changed.skip_consent = true;
    public_changed.updated_at += 1;
    assert!(store.update_client(&public_changed).await.unwrap());
    assert_client_eq(&store.get_client("pub-1").await.unwrap().unwrap(), &public_changed);

    assert!(store.delete_client("conf-1").await.unwrap());
    assert!(store.get_client("conf-1").await.unwrap().is_none());
    let listed = store.list_clients().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_client_eq(&listed[0], &public_changed);
}

#[tokio::test]
async fn every_signing_alg_and_auth_method_round_trips() {
    let (_db, store) = fresh_store().await;
    for (i, (alg, method)) in SigningAlg::ALL.into_iter().zip(ClientAuthMethod::ALL.into_iter().cycle()).enumerate() {
        let mut c = client(&format!("c{i}"));
        c.id_token_signed_response_alg = Some(alg);
        c.auth_method = method;
        assert_eq!(store.create_client(&c).await.unwrap(), Created::Created);
        assert_client_eq(&store.get_client(&c.client_id).await.unwrap().unwrap(), &c);
    }
}

#[tokio::test]
async fn creating_a_client_with_an_existing_id_returns_already_exists() {
    let (_db, store) = fresh_store().await;
    let original = client("dup");
    assert_eq!(store.create_client(&original).await.unwrap(), Created::Created);

    let mut other = public_client("dup");
    other.name = "impostor".into();
    assert_eq!(store.create_client(&other).await.unwrap(), Created::AlreadyExists);

    // The first record is untouched.
    assert_client_eq(&store.get_client("dup").await.unwrap().unwrap(), &original);
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
}

#[tokio::test]
async fn update_client_returns_false_for_unknown_id() {
    let (_db, store) = fresh_store().await;
    assert!(!store.update_client(&client("ghost")).await.unwrap());
    assert!(store.get_client("ghost").await.unwrap().is_none(), "update must not insert");
}

#[tokio::test]
async fn delete_client_returns_false_for_unknown_id() {
    let (_db, store) = fresh_store().await;
    assert!(!store.delete_client("ghost").await.unwrap());

    store.create_client(&client("real")).await.unwrap();
    assert!(store.delete_client("real").await.unwrap());
    assert!(!store.delete_client("real").await.unwrap(), "second delete finds nothing");
}
