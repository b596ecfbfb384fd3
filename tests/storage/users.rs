use crate::support::query_i64;
use crate::{assert_session_eq, assert_user_eq, fresh_store, session, user};
use latchkey_storage::Created;

#[tokio::test]
async fn user_round_trips_through_create_get_get_by_username_list() {
    let (_db, store) = fresh_store().await;
    let mut bob = user("u-bob", "bob");
    bob.email = None;
    bob.email_verified = false;
    bob.name = None;
    bob.claims = serde_json::Map::new();
    let alice = user("u-alice", "alice");

    assert_eq!(store.create_user(&bob).await.unwrap(), Created::Created);
    assert_eq!(store.create_user(&alice).await.unwrap(), Created::Created);

    assert_user_eq(&store.get_user("u-alice").await.unwrap().unwrap(), &alice);
    assert_user_eq(&store.get_user("u-bob").await.unwrap().unwrap(), &bob);
    assert_user_eq(&store.get_user_by_username("alice").await.unwrap().unwrap(), &alice);
    assert_user_eq(&store.get_user_by_username("bob").await.unwrap().unwrap(), &bob);
    assert!(store.get_user("nobody").await.unwrap().is_none());
    assert!(store.get_user_by_username("nobody").await.unwrap().is_none());
    assert!(store.get_user_by_username("u-alice").await.unwrap().is_none(), "ids are not usernames");

    // Listed by username.
    let listed = store.list_users().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_user_eq(&listed[0], &alice);
    assert_user_eq(&listed[1], &bob);
}

#[tokio::test]
async fn creating_a_user_with_a_taken_username_returns_already_exists() {
    let (_db, store) = fresh_store().await;
    let first = user("u-1", "carol");
    assert_eq!(store.create_user(&first).await.unwrap(), Created::Created);

    let second = user("u-2", "carol");
    assert_eq!(store.create_user(&second).await.unwrap(), Created::AlreadyExists);
    assert!(store.get_user("u-2").await.unwrap().is_none());
    assert_user_eq(&store.get_user_by_username("carol").await.unwrap().unwrap(), &first);
    assert_eq!(store.list_users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn creating_a_user_with_a_taken_id_returns_already_exists() {
    let (_db, store) = fresh_store().await;
    let first = user("u-1", "dave");
    assert_eq!(store.create_user(&first).await.unwrap(), Created::Created);
    assert_eq!(store.create_user(&user("u-1", "erin")).await.unwrap(), Created::AlreadyExists);
    assert!(store.get_user_by_username("erin").await.unwrap().is_none());
    assert_user_eq(&store.get_user("u-1").await.unwrap().unwrap(), &first);
}

#[tokio::test]
async fn set_password_replaces_the_hash_and_ends_only_that_users_sessions() {
    let (_db, store) = fresh_store().await;
    store.create_user(&user("u-1", "frank")).await.unwrap();
    store.create_user(&user("u-2", "grace")).await.unwrap();
    let now = 1_800_000_000;
    let s1 = session("hash-frank-1", "u-1", now + 3600);
    let s2 = session("hash-frank-2", "u-1", now + 7200);
    let other = session("hash-grace", "u-2", now + 3600);
    for s in [&s1, &s2, &other] {
        store.create_session(s).await.unwrap();
    }
    assert!(store.get_session(&s1.id_hash, now).await.unwrap().is_some());

    assert!(store.set_password("u-1", "$argon2id$new", now).await.unwrap());

    let u = store.get_user("u-1").await.unwrap().unwrap();
    assert_eq!(u.password_hash, "$argon2id$new");
    assert_eq!(u.updated_at, now);
    assert!(store.get_session(&s1.id_hash, now).await.unwrap().is_none());
    assert!(store.get_session(&s2.id_hash, now).await.unwrap().is_none());
    assert_session_eq(&store.get_session(&other.id_hash, now).await.unwrap().unwrap(), &other);
}

#[tokio::test]
async fn set_password_returns_false_for_unknown_user() {
    let (_db, store) = fresh_store().await;
    assert!(!store.set_password("ghost", "$argon2id$x", 1).await.unwrap());
    assert!(store.get_user("ghost").await.unwrap().is_none());
}

#[tokio::test]
async fn delete_user_cascades_to_sessions() {
    let (db, store) = fresh_store().await;
    store.create_user(&user("u-1", "heidi")).await.unwrap();
    store.create_user(&user("u-2", "ivan")).await.unwrap();
    let now = 1_800_000_000;
    let mine = session("hash-heidi", "u-1", now + 3600);
    let theirs = session("hash-ivan", "u-2", now + 3600);
    store.create_session(&mine).await.unwrap();
    store.create_session(&theirs).await.unwrap();

    assert!(store.delete_user("u-1").await.unwrap());

    assert!(store.get_user("u-1").await.unwrap().is_none());
    assert!(store.get_user_by_username("heidi").await.unwrap().is_none());
    assert!(store.get_session(&mine.id_hash, now).await.unwrap().is_none());
    assert!(store.delete_session(&mine.id_hash).await.unwrap().is_none(), "the row itself is gone");
    assert_eq!(query_i64(&db, "SELECT COUNT(*) FROM sessions WHERE user_id = 'u-1'").await, 0);
    assert_session_eq(&store.get_session(&theirs.id_hash, now).await.unwrap().unwrap(), &theirs);
    assert_eq!(store.list_users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn delete_user_returns_false_for_unknown_id() {
    let (_db, store) = fresh_store().await;
    assert!(!store.delete_user("ghost").await.unwrap());
    store.create_user(&user("u-1", "judy")).await.unwrap();
    assert!(store.delete_user("u-1").await.unwrap());
    assert!(!store.delete_user("u-1").await.unwrap(), "second delete finds nothing");
}
