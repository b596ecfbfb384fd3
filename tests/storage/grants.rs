//! Codes and tokens under concurrency: single use, atomic steps, and (on SQLite) the writer
//! thread's group commit, where one failing write must not take the others with it.

use latchkey_core::{OAuthError, TokenHash};
use latchkey_storage::{
    AccessTokenRecord, CodeRecord, GrantRecord, Redemption, RefreshTokenRecord, SessionRecord, Store, TokensToStore,
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
async fn parallel_redemptions_of_one_code_redeem_it_once_and_revoke_what_it_gave() {
    let (_db, store) = fresh_store().await;
    with_client_and_user(&store).await;
    store.issue_code(&grant("g1"), &code("code-1", "g1")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let decide = move |_: &latchkey_storage::RedeemedCode| -> Result<TokensToStore, OAuthError> {
                Ok(TokensToStore {
                    access: Some(access(&format!("at-{i}"), Some("g1"))),
                    refresh: Some(refresh(&format!("rt-{i}"), "g1")),
                })
            };
            store.redeem_code(&h("code-1"), NOW + 1, Box::new(decide)).await.unwrap()
        }));
    }
    let mut redeemed = Vec::new();
    let mut replayed = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Redemption::Redeemed(r) => {
                assert_eq!(r.grant.id, "g1");
                assert_eq!(r.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
                redeemed.push(i);
            }
            Redemption::Replayed { grant_id } => {
                assert_eq!(grant_id, "g1");
                replayed += 1;
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(redeemed.len(), 1, "exactly one caller redeems the code");
    assert_eq!(replayed, 15);
    // The replays revoked the grant: the winner's tokens are gone too (RFC 6749 §4.1.2).
    let w = redeemed[0];
    assert!(store.get_access_token(&h(&format!("at-{w}")), NOW + 2).await.unwrap().is_none());
    assert!(store.get_live_grant("g1").await.unwrap().is_none());
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
    let decide = |_: &latchkey_storage::RedeemedCode| Ok(TokensToStore::default());
    assert!(matches!(
        store.redeem_code(&h("code-1"), NOW + 1, Box::new(decide)).await.unwrap(),
        Redemption::Redeemed(_)
    ));
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

/// Decisions run on the writer thread (SQLite) or in a batch worker (PostgreSQL): one that
/// panics is a failed write, rolled back (the code stays unused; on PostgreSQL with its batch),
/// and the thread or worker goes on serving the others.
#[tokio::test]
async fn a_panicking_decision_fails_its_write_only() {
    let (_db, store) = fresh_store().await;
    with_client_and_user(&store).await;
    store.issue_code(&grant("g1"), &code("code-1", "g1")).await.unwrap();
    let boom = |_: &latchkey_storage::RedeemedCode| -> Result<TokensToStore, OAuthError> { panic!("decision bug") };
    assert!(store.redeem_code(&h("code-1"), NOW + 1, Box::new(boom)).await.is_err());
    let fine = |_: &latchkey_storage::RedeemedCode| Ok(TokensToStore::default());
    assert!(
        matches!(store.redeem_code(&h("code-1"), NOW + 1, Box::new(fine)).await.unwrap(), Redemption::Redeemed(_)),
        "the panicking redemption was rolled back, so the code is still unused"
    );
    store.store_access_token(&access("after", None)).await.unwrap();
    assert!(store.get_access_token(&h("after"), NOW + 1).await.unwrap().is_some());
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

#[tokio::test]
async fn parallel_rotations_of_one_refresh_token_rotate_it_once_and_revoke_the_family() {
    let (_db, store) = fresh_store().await;
    with_client_and_user(&store).await;
    store.issue_code(&grant("g1"), &code("code-1", "g1")).await.unwrap();
    store.store_tokens(&TokensToStore { access: None, refresh: Some(refresh("rt-0", "g1")) }).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let decide = move |g: &GrantRecord, scope: &str| -> Result<TokensToStore, OAuthError> {
                assert_eq!((g.id.as_str(), scope), ("g1", "openid"));
                Ok(TokensToStore {
                    access: Some(access(&format!("at-{i}"), Some("g1"))),
                    refresh: Some(refresh(&format!("rt-{}", i + 1), "g1")),
                })
            };
            store.rotate_refresh(&h("rt-0"), NOW + 1, Box::new(decide)).await.unwrap()
        }));
    }
    let (mut rotated, mut replayed, mut unknown) = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            latchkey_storage::Rotation::Rotated { grant, scope } => {
                assert_eq!((grant.id.as_str(), scope.as_str()), ("g1", "openid"));
                rotated += 1;
            }
            latchkey_storage::Rotation::Replayed { grant_id } => {
                assert_eq!(grant_id, "g1");
                replayed += 1;
            }
            // Once a replay has revoked the family its tokens are deleted: a later presentation
            // finds nothing (invalid_grant to the client either way).
            latchkey_storage::Rotation::Unknown => unknown += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(rotated, 1, "exactly one rotation");
    assert!(replayed >= 1, "the first presentation after it is a replay");
    assert_eq!(rotated + replayed + unknown, 12);
    assert!(store.get_live_grant("g1").await.unwrap().is_none(), "the replays revoked the family");
    for i in 0..12 {
        assert!(store.get_access_token(&h(&format!("at-{i}")), NOW + 2).await.unwrap().is_none());
    }
}

/// A refused decision releases its claim (RFC 6749 §4.1.3, §6): the code and the refresh token
/// are still usable by their owner, nothing was stored for the refusal and no family was
/// revoked, also when refusals share a batch (writer-thread transaction, PostgreSQL batch)
/// with the owner's own presentation.
#[tokio::test]
async fn a_refused_decision_spends_nothing_even_among_parallel_presentations() {
    let (_db, store) = fresh_store().await;
    with_client_and_user(&store).await;
    store.issue_code(&grant("g1"), &code("code-1", "g1")).await.unwrap();
    let refuse = |_: &latchkey_storage::RedeemedCode| -> Result<TokensToStore, OAuthError> {
        Err(OAuthError::invalid_grant("the authorization code was issued to another client"))
    };
    assert!(matches!(
        store.redeem_code(&h("code-1"), NOW + 1, Box::new(refuse)).await.unwrap(),
        Redemption::Refused(_)
    ));
    // Refusals in parallel with each other, then the owner: the owner wins, exactly once.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let decide = move |_: &latchkey_storage::RedeemedCode| -> Result<TokensToStore, OAuthError> {
                Err(OAuthError::invalid_grant(if i % 2 == 0 { "wrong verifier" } else { "wrong client" }))
            };
            store.redeem_code(&h("code-1"), NOW + 1, Box::new(decide)).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Redemption::Refused(_)));
    }
    let owner = |_: &latchkey_storage::RedeemedCode| {
        Ok(TokensToStore { access: Some(access("at-owner", Some("g1"))), refresh: Some(refresh("rt-0", "g1")) })
    };
    assert!(matches!(
        store.redeem_code(&h("code-1"), NOW + 1, Box::new(owner)).await.unwrap(),
        Redemption::Redeemed(_)
    ));
    assert!(store.get_live_grant("g1").await.unwrap().is_some(), "no refusal revoked the grant");

    // The same for the refresh token.
    let refuse = |_: &GrantRecord, _: &str| -> Result<TokensToStore, OAuthError> {
        Err(OAuthError::invalid_scope("the requested scope exceeds the grant"))
    };
    let r = store.rotate_refresh(&h("rt-0"), NOW + 2, Box::new(refuse)).await.unwrap();
    assert!(matches!(r, latchkey_storage::Rotation::Refused(_)), "{r:?}");
    let rotate = |_: &GrantRecord, _: &str| {
        Ok(TokensToStore { access: Some(access("at-1", Some("g1"))), refresh: Some(refresh("rt-1", "g1")) })
    };
    let r = store.rotate_refresh(&h("rt-0"), NOW + 2, Box::new(rotate)).await.unwrap();
    assert!(matches!(r, latchkey_storage::Rotation::Rotated { .. }), "the owner's rotation after a refusal: {r:?}");
    assert!(store.get_access_token(&h("at-1"), NOW + 3).await.unwrap().is_some());
    assert!(store.get_access_token(&h("at-owner"), NOW + 3).await.unwrap().is_some(), "the family is alive");
}
