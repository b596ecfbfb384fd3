use crate::{assert_session_eq, fresh_store, session, user};
use latchkey_core::TokenHash;

#[tokio::test]
async fn get_session_returns_the_live_session_with_every_field() {
    let (_db, store) = fresh_store().await;
    store.create_user(&user("u-1", "kim")).await.unwrap();
    let mut s = session("hash-1", "u-1", 2_000);
    s.acr = None;
    s.amr = vec![];
    let full = session("hash-2", "u-1", 2_000);
    store.create_session(&s).await.unwrap();
    store.create_session(&full).await.unwrap();

    assert_session_eq(&store.get_session(&s.id_hash, 1_000).await.unwrap().unwrap(), &s);
    assert_session_eq(&store.get_session(&full.id_hash, 1_999).await.unwrap().unwrap(), &full);
    let unknown = TokenHash::from_stored("no-such-hash".into());
    assert!(store.get_session(&unknown, 1_000).await.unwrap().is_none());
}

#[tokio::test]
async fn get_session_returns_none_once_expired() {
    let (_db, store) = fresh_store().await;
    store.create_user(&user("u-1", "leo")).await.unwrap();
    let s = session("hash-exp", "u-1", 5_000);
    store.create_session(&s).await.unwrap();

    assert!(store.get_session(&s.id_hash, 4_999).await.unwrap().is_some(), "live one second before");
    assert!(store.get_session(&s.id_hash, 5_000).await.unwrap().is_none(), "expired at expires_at");
    assert!(store.get_session(&s.id_hash, 9_999).await.unwrap().is_none(), "expired after");
}

#[tokio::test]
async fn delete_session_returns_the_record_once_then_none() {
    let (_db, store) = fresh_store().await;
    store.create_user(&user("u-1", "mia")).await.unwrap();
    let s = session("hash-del", "u-1", 5_000);
    let other = session("hash-keep", "u-1", 5_000);
    store.create_session(&s).await.unwrap();
    store.create_session(&other).await.unwrap();

    assert_session_eq(&store.delete_session(&s.id_hash).await.unwrap().unwrap(), &s);
    assert!(store.delete_session(&s.id_hash).await.unwrap().is_none());
    assert!(store.get_session(&s.id_hash, 1_000).await.unwrap().is_none());
    assert!(store.get_session(&other.id_hash, 1_000).await.unwrap().is_some(), "other sessions stay");
}

#[tokio::test]
async fn delete_session_returns_an_expired_session_too() {
    let (_db, store) = fresh_store().await;
    store.create_user(&user("u-1", "ned")).await.unwrap();
    let s = session("hash-old", "u-1", 10);
    store.create_session(&s).await.unwrap();
    assert_session_eq(&store.delete_session(&s.id_hash).await.unwrap().unwrap(), &s);
}
