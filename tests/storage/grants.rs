//! Codes and tokens under concurrency: atomic steps, and (on SQLite) the writer thread's group
//! commit, where one failing write must not take the others with it. Single use itself is
//! the contract suite in `single_use.rs`.

use latchkey_core::TokenHash;
use latchkey_storage::{
    AccessTokenRecord, CodeRecord, GrantRecord, RefreshTokenRecord, SessionRecord, Store, TokensToStore,
};
use std::sync::Arc;

use crate::{client, fresh_store, user};

const NOW: i64 = 1_800_000_000;

async fn with_client_and_user(store: &Arc<dyn Store>) {
    store.create_client(&client("c1")).await.unwrap();
    store.create_user(&user("u1", "alice")).await.unwrap();
}

fn grant(id: &str) -> GrantRecord {
    GrantRecord {
        id: id.into(),
        client_id: "c1".into(),
        user_id: Some("u1".into()),
        scope: "openid".into(),
        claims: None,
        auth_time: Some(NOW),
        acr: None,
        amr: vec!["pwd".into()],
        sid: Some("sid-1".into()),
        created_at: NOW,
        expires_at: NOW + 86_400,
    }
}

fn code(hash: &str, grant_id: &str) -> CodeRecord {
    CodeRecord {
        code_hash: TokenHash::from_stored(hash.into()),
        grant_id: grant_id.into(),
        redirect_uri: Some("https://c1.example/callback".into()),
        code_challenge: None,
        nonce: Some("n-0S6_WzA2Mj".into()),
        created_at: NOW,
        expires_at: NOW + 60,
    }
}

fn access(hash: &str, grant_id: Option<&str>) -> AccessTokenRecord {
    AccessTokenRecord {
        token_hash: TokenHash::from_stored(hash.into()),
        grant_id: grant_id.map(str::to_owned),
        client_id: "c1".into(),
        scope: "openid".into(),
        audience: None,
        created_at: NOW,
        expires_at: NOW + 3600,
    }
}

fn refresh(hash: &str, grant_id: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: TokenHash::from_stored(hash.into()),
        grant_id: grant_id.into(),
        scope: "openid".into(),
        created_at: NOW,
        expires_at: NOW + 3600,
    }
}

fn h(s: &str) -> TokenHash {
    TokenHash::from_stored(s.into())
}

#[tokio::test]
async fn a_write_that_fails_among_parallel_writes_is_rolled_back_alone() {
    let (_db, store) = fresh_store().await;
    with_client_and_user(&store).await;
    store.issue_code(&grant("g1"), &code("code-1", "g1")).await.unwrap();
    store.store_access_token(&access("taken", None)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Task 7 stores a refresh token, then an access token whose hash is taken: the
            // whole step fails, so its refresh token must not be there either.
            let t = if i == 7 {
                TokensToStore { access: Some(access("taken", None)), refresh: Some(refresh("rt-bad", "g1")) }
            } else {
                TokensToStore { access: Some(access(&format!("at-{i}"), None)), refresh: None }
            };
            (i, store.store_tokens(&t).await)
        }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        if i == 7 {
            assert!(r.is_err(), "a duplicate token hash is refused");
        } else {
            r.unwrap();
            let view = store.get_access_token(&h(&format!("at-{i}")), NOW + 1).await.unwrap();
            assert!(view.is_some(), "write {i} committed");
        }
    }
    assert!(store.get_refresh_token(&h("rt-bad"), NOW + 1).await.unwrap().is_none(), "the failed step left nothing");
    // The code is untouched by all this and still redeems.
    let kind = latchkey_core::single_use::Kind::AuthorizationCode;
    assert!(store.commit_credential(kind, &h("code-1"), NOW + 1, &TokensToStore::default()).await.unwrap());
}

#[tokio::test]
async fn token_writes_and_other_writes_interleave_without_errors() {
    let (_db, store) = fresh_store().await;
    with_client_and_user(&store).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let s = SessionRecord {
                    id_hash: h(&format!("session-{i}")),
                    sid: format!("sid-{i}"),
                    user_id: "u1".into(),
                    auth_time: NOW,
                    acr: None,
                    amr: vec!["pwd".into()],
                    created_at: NOW,
                    expires_at: NOW + 3600,
                };
                store.create_session(&s).await.unwrap();
                store.put_consent("u1", "c1", &["openid".to_owned()], NOW).await.unwrap();
            } else {
                let g = format!("g{i}");
                store.issue_code(&grant(&g), &code(&format!("code-{i}"), &g)).await.unwrap();
                store
                    .store_tokens(&TokensToStore { access: Some(access(&format!("at-{i}"), Some(&g))), refresh: None })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for i in (0..40).filter(|i| i % 2 == 0) {
        assert!(store.get_session(&h(&format!("session-{i}")), NOW + 1).await.unwrap().is_some());
    }
    for i in (0..40).filter(|i| i % 2 == 1) {
        let at = store.get_access_token(&h(&format!("at-{i}")), NOW + 1).await.unwrap().unwrap();
        assert_eq!(at.grant.unwrap().id, format!("g{i}"));
    }
}

#[tokio::test]
async fn parallel_inserts_with_one_duplicate_fail_only_the_duplicate() {
    let (_db, store) = fresh_store().await;
    with_client_and_user(&store).await;
    store.store_access_token(&access("taken", None)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let hash = if i == 13 { "taken".to_owned() } else { format!("at-{i}") };
            (i, store.store_access_token(&access(&hash, None)).await)
        }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        if i == 13 {
            assert!(r.is_err(), "the duplicate hash is refused");
        } else {
            assert!(r.unwrap(), "insert {i} stored");
            assert!(store.get_access_token(&h(&format!("at-{i}")), NOW + 1).await.unwrap().is_some());
        }
    }
}

/// Lookups answered together (PostgreSQL batches them) still each use their own `now`.
#[tokio::test]
async fn parallel_lookups_each_check_expiry_at_their_own_time() {
    let (_db, store) = fresh_store().await;
    with_client_and_user(&store).await;
    store.issue_code(&grant("g1"), &code("code-1", "g1")).await.unwrap();
    store.store_access_token(&access("at-user", Some("g1"))).await.unwrap();
    store.store_access_token(&access("at-cc", None)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let hash = if i % 2 == 0 { "at-user" } else { "at-cc" };
            // Half the lookups happen after the tokens expired (NOW + 3600).
            let now = if i % 4 < 2 { NOW + 10 } else { NOW + 3600 };
            (hash, now, store.get_access_token(&h(hash), now).await.unwrap())
        }));
    }
    for t in tasks {
        let (hash, now, view) = t.await.unwrap();
        match (now == NOW + 10, view) {
            (true, Some(v)) => {
                assert_eq!(v.client_id, "c1");
                assert_eq!(v.grant.is_some(), hash == "at-user", "{hash} comes with its grant only if it has one");
            }
            (false, None) => {}
            (live, v) => panic!("{hash} at {now}: live={live} but got {v:?}"),
        }
    }
    assert!(store.get_access_token(&h("unknown"), NOW).await.unwrap().is_none());
}
