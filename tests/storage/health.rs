use crate::fresh_store;
use latchkey_core::settings::Backend;

#[tokio::test]
async fn ping_answers_on_an_open_store() {
    let (_db, store) = fresh_store().await;
    store.ping().await.unwrap();
}

#[tokio::test]
async fn backend_matches_the_configured_database() {
    let (db, store) = fresh_store().await;
    let want = if db.is_postgres() { Backend::Postgres } else { Backend::Sqlite };
    assert_eq!(store.backend(), want);
}

#[tokio::test]
async fn ping_fails_after_close() {
    let (_db, store) = fresh_store().await;
    store.close().await;
    assert!(store.ping().await.is_err());
}
