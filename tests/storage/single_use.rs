//! The contract of single-use credentials, on every backend path of this run: on SQLite the
//! writer thread (group commit) and the plain sqlx path (`database.sqlite_writer_thread =
//! false`); on PostgreSQL the batched path and the unbatched one (`database.postgres_batching
//! = false`). Each transition through `latchkey_storage::single_use::present`, the runner the
//! token endpoint uses: issue, redeem, refuse without spending (each reason), replay → family
//! revoked exactly once, concurrent presentations (exactly one wins), cancellation after the
//! write, failure while minting.

use latchkey_core::scope::Scope;
use latchkey_core::single_use::{Kind, Presented, Refusal};
use latchkey_core::{OAuthError, TokenHash};
use latchkey_storage::single_use::{Outcome, present, present_pausing_after_commit};
use latchkey_storage::{AccessTokenRecord, CodeRecord, GrantRecord, RefreshTokenRecord, Store, TokensToStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::TestDb;
use crate::{client, user};

const NOW: i64 = 1_800_000_000;
const REDIRECT: &str = "https://c1.example/callback";

/// One store per backend path of this run, each on a fresh database.
async fn paths() -> Vec<(&'static str, TestDb, Arc<dyn Store>)> {
    let mut out = Vec::new();
    for variant in 0..2 {
        let db = TestDb::fresh().await;
        let mut s = db.settings();
        let name = match (db.is_postgres(), variant) {
            (false, 0) => "sqlite writer thread",
            (false, _) => {
                s.database.sqlite_writer_thread = false;
                "sqlite sqlx"
            }
            (true, 0) => "postgres batched",
            (true, _) => {
                s.database.postgres_batching = false;
                "postgres unbatched"
            }
        };
        let store = latchkey_storage::open(&s).await.unwrap();
        store.create_client(&client("c1")).await.unwrap();
        store.create_client(&client("c2")).await.unwrap();
        store.create_user(&user("u1", "alice")).await.unwrap();
        out.push((name, db, store));
    }
    out
}

fn h(s: &str) -> TokenHash {
    TokenHash::from_stored(s.into())
}

fn grant(id: &str) -> GrantRecord {
    GrantRecord {
        id: id.into(),
        client_id: "c1".into(),
        user_id: Some("u1".into()),
        scope: "openid offline_access".into(),
        claims: None,
        auth_time: Some(NOW),
        acr: None,
        amr: vec!["pwd".into()],
        sid: Some("sid-1".into()),
        created_at: NOW,
        expires_at: NOW + 86_400,
    }
}

async fn issue_code(store: &Arc<dyn Store>, code: &str, grant_id: &str) {
    let c = CodeRecord {
        code_hash: h(code),
        grant_id: grant_id.into(),
        redirect_uri: Some(REDIRECT.into()),
        code_challenge: None,
        nonce: Some("n-1".into()),
        created_at: NOW,
        expires_at: NOW + 60,
    };
    store.issue_code(&grant(grant_id), &c).await.unwrap();
}

/// A grant with one unspent refresh token `rt`.
async fn issue_refresh(store: &Arc<dyn Store>, rt: &str, grant_id: &str) {
    issue_code(store, &format!("code-of-{rt}"), grant_id).await;
    let tokens = TokensToStore { access: None, refresh: Some(refresh_record(rt, grant_id, NOW)) };
    store.store_tokens(&tokens).await.unwrap();
}

fn refresh_record(rt: &str, grant_id: &str, created_at: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: h(rt),
        grant_id: grant_id.into(),
        scope: "openid offline_access".into(),
        created_at,
        expires_at: NOW + 3600,
    }
}

fn by(client: &str) -> Presented<'_> {
    Presented {
        client_id: client,
        public_client: false,
        redirect_uri: Some(REDIRECT),
        code_verifier: None,
        scope: None,
        now: NOW + 1,
        refresh_retry_grace: 10,
    }
}

static MINTED: AtomicUsize = AtomicUsize::new(0);

/// The tokens a presentation would store: a fresh access token and refresh token of the
/// credential's grant. The outcome's value is their hashes.
async fn mint_for(
    s: &latchkey_storage::StoredCredential,
    scope: String,
) -> Result<(TokensToStore, (String, String)), OAuthError> {
    let n = MINTED.fetch_add(1, Ordering::SeqCst);
    let (at, rt) = (format!("at-{n}"), format!("rt-{n}"));
    let tokens = TokensToStore {
        access: Some(AccessTokenRecord {
            token_hash: h(&at),
            grant_id: Some(s.grant.id.clone()),
            client_id: s.grant.client_id.clone(),
            scope,
            audience: None,
            created_at: NOW,
            expires_at: NOW + 3600,
        }),
        // Issued at the presentation's time (`by` presents at NOW + 1).
        refresh: Some(refresh_record(&rt, &s.grant.id, NOW + 1)),
    };
    Ok((tokens, (at, rt)))
}

async fn go(store: &Arc<dyn Store>, kind: Kind, credential: &str, p: &Presented<'_>) -> Outcome<(String, String)> {
    present(store, kind, &h(credential), p, |s, scope| {
        let s = s.clone();
        async move { mint_for(&s, scope).await }
    })
    .await
    .unwrap()
}

async fn spent(store: &Arc<dyn Store>, kind: Kind, credential: &str) -> bool {
    store.find_credential(kind, &h(credential)).await.unwrap().unwrap().used_at.is_some()
}

async fn live(store: &Arc<dyn Store>, at: &str) -> bool {
    store.get_access_token(&h(at), NOW + 2).await.unwrap().is_some()
}

#[tokio::test]
async fn a_code_is_issued_once_and_its_tokens_stored() {
    for (path, _db, store) in paths().await {
        issue_code(&store, "code-1", "g1").await;
        let stored = store.find_credential(Kind::AuthorizationCode, &h("code-1")).await.unwrap().unwrap();
        assert_eq!((stored.grant.id.as_str(), stored.nonce.as_deref()), ("g1", Some("n-1")), "{path}");
        assert!(stored.used_at.is_none() && !stored.grant_revoked, "{path}");
        let Outcome::Issued((at, rt)) = go(&store, Kind::AuthorizationCode, "code-1", &by("c1")).await else {
            panic!("{path}: the owner's redemption is issued");
        };
        assert!(live(&store, &at).await, "{path}: its access token is stored");
        assert!(store.get_refresh_token(&h(&rt), NOW + 2).await.unwrap().unwrap().active, "{path}");
        assert!(spent(&store, Kind::AuthorizationCode, "code-1").await, "{path}: the code is spent");
    }
}

#[tokio::test]
async fn every_refusal_spends_nothing_and_the_owner_still_redeems() {
    for (path, _db, store) in paths().await {
        issue_code(&store, "code-1", "g1").await;
        let mut wrong_uri = by("c1");
        wrong_uri.redirect_uri = Some("https://c1.example/other");
        let mut no_uri = by("c1");
        no_uri.redirect_uri = None;
        let mut verifier = by("c1");
        verifier.code_verifier = Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        let mut public = by("c1");
        public.public_client = true;
        let mut late = by("c1");
        late.now = NOW + 61;
        let cases = [
            (by("c2"), Refusal::ForeignClient),
            (by("someone-unknown"), Refusal::ForeignClient),
            (wrong_uri, Refusal::RedirectUriMismatch),
            (no_uri, Refusal::RedirectUriMismatch),
            (verifier, Refusal::VerifierUnexpected),
            (public, Refusal::PkceRequired),
            (late, Refusal::Expired),
        ];
        for (p, why) in &cases {
            match go(&store, Kind::AuthorizationCode, "code-1", p).await {
                Outcome::Refused(r) => assert_eq!(r, *why, "{path}"),
                other => panic!("{path}: {why:?} gave {other:?}"),
            }
            assert!(!spent(&store, Kind::AuthorizationCode, "code-1").await, "{path}: {why:?} spent the code");
        }
        assert!(matches!(
            go(&store, Kind::AuthorizationCode, "unknown", &by("c1")).await,
            Outcome::Refused(Refusal::Unknown)
        ));
        let Outcome::Issued(_) = go(&store, Kind::AuthorizationCode, "code-1", &by("c1")).await else {
            panic!("{path}: the owner redeems after every refusal");
        };

        // The refresh token: another client, a widened scope, then its owner.
        issue_refresh(&store, "rt-a", "g2").await;
        let wide = Scope::parse("openid offline_access email").unwrap();
        let mut widen = by("c1");
        widen.scope = Some(&wide);
        for (p, why) in [(by("c2"), Refusal::ForeignClient), (widen, Refusal::ScopeWidened)] {
            match go(&store, Kind::RefreshToken, "rt-a", &p).await {
                Outcome::Refused(r) => assert_eq!(r, why, "{path}"),
                other => panic!("{path}: {why:?} gave {other:?}"),
            }
            assert!(!spent(&store, Kind::RefreshToken, "rt-a").await, "{path}: {why:?} spent the refresh token");
        }
        let narrow = Scope::parse("openid").unwrap();
        let mut p = by("c1");
        p.scope = Some(&narrow);
        let Outcome::Issued((at, _)) = go(&store, Kind::RefreshToken, "rt-a", &p).await else {
            panic!("{path}: the owner's refresh after the refusals");
        };
        assert_eq!(store.get_access_token(&h(&at), NOW + 2).await.unwrap().unwrap().scope, "openid", "{path}");
        assert!(
            store.get_live_grant("g1").await.unwrap().is_some() && store.get_live_grant("g2").await.unwrap().is_some()
        );
    }
}

#[tokio::test]
async fn a_replay_revokes_the_family_exactly_once() {
    for (path, _db, store) in paths().await {
        issue_code(&store, "code-1", "g1").await;
        let Outcome::Issued((at, rt)) = go(&store, Kind::AuthorizationCode, "code-1", &by("c1")).await else {
            panic!("{path}");
        };
        // Another client presenting the spent code is refused and revokes nothing.
        assert!(matches!(
            go(&store, Kind::AuthorizationCode, "code-1", &by("c2")).await,
            Outcome::Refused(Refusal::ForeignClient)
        ));
        assert!(live(&store, &at).await, "{path}: a foreign presentation revoked the grant");
        match go(&store, Kind::AuthorizationCode, "code-1", &by("c1")).await {
            Outcome::Replayed { grant_id } => assert_eq!(grant_id, "g1", "{path}"),
            other => panic!("{path}: second use gave {other:?}"),
        }
        assert!(!live(&store, &at).await, "{path}: the replay revoked the first redemption's tokens");
        assert!(store.get_refresh_token(&h(&rt), NOW + 2).await.unwrap().is_none(), "{path}");
        assert!(store.get_live_grant("g1").await.unwrap().is_none(), "{path}");
        // Once revoked there is nothing more to revoke: a third use is merely refused.
        assert!(
            matches!(
                go(&store, Kind::AuthorizationCode, "code-1", &by("c1")).await,
                Outcome::Refused(Refusal::Revoked)
            ),
            "{path}"
        );

        // Refresh rotation: a public client's used token presented again revokes the family.
        issue_refresh(&store, "rt-p", "g3").await;
        let mut public = by("c1");
        public.public_client = true;
        let Outcome::Issued((at1, rt1)) = go(&store, Kind::RefreshToken, "rt-p", &public).await else {
            panic!("{path}")
        };
        assert!(matches!(go(&store, Kind::RefreshToken, "rt-p", &public).await, Outcome::Replayed { .. }), "{path}");
        assert!(!live(&store, &at1).await, "{path}");
        assert!(
            matches!(go(&store, Kind::RefreshToken, &rt1, &public).await, Outcome::Refused(Refusal::Unknown)),
            "{path}: the successor died with the family"
        );
    }
}

#[tokio::test]
async fn a_confidential_clients_retry_right_after_rotation_is_refused_without_revoking() {
    for (path, _db, store) in paths().await {
        issue_refresh(&store, "rt-c", "g1").await;
        let Outcome::Issued((at1, rt1)) = go(&store, Kind::RefreshToken, "rt-c", &by("c1")).await else {
            panic!("{path}")
        };
        // The response was lost; the client retries with the same token within the grace.
        assert!(
            matches!(
                go(&store, Kind::RefreshToken, "rt-c", &by("c1")).await,
                Outcome::Refused(Refusal::RetryAfterRotation)
            ),
            "{path}"
        );
        assert!(live(&store, &at1).await, "{path}: the family is kept");
        // The successor works; after it was used, the old token again is a replay.
        let mut later = by("c1");
        later.now = NOW + 2;
        let Outcome::Issued(_) = go(&store, Kind::RefreshToken, &rt1, &later).await else { panic!("{path}") };
        assert!(matches!(go(&store, Kind::RefreshToken, "rt-c", &later).await, Outcome::Replayed { .. }), "{path}");
        assert!(store.get_live_grant("g1").await.unwrap().is_none(), "{path}");
    }
}

#[tokio::test]
async fn concurrent_presentations_have_exactly_one_winner() {
    for (path, _db, store) in paths().await {
        issue_code(&store, "code-1", "g1").await;
        let mut tasks = Vec::new();
        for i in 0..24 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                // Every third presentation is another client's: it must change nothing.
                let client = if i % 3 == 0 { "c2" } else { "c1" };
                (client, go(&store, Kind::AuthorizationCode, "code-1", &by(client)).await)
            }));
        }
        let (mut issued, mut replayed, mut foreign) = (0, 0, 0);
        for t in tasks {
            match t.await.unwrap() {
                ("c1", Outcome::Issued(_)) => issued += 1,
                ("c1", Outcome::Replayed { .. } | Outcome::Refused(Refusal::Revoked)) => replayed += 1,
                ("c2", Outcome::Refused(Refusal::ForeignClient)) => foreign += 1,
                (c, other) => panic!("{path}: {c} got {other:?}"),
            }
        }
        assert_eq!((issued, replayed, foreign), (1, 15, 8), "{path}");
        assert!(store.get_live_grant("g1").await.unwrap().is_none(), "{path}: the owner's replays revoked the grant");

        // Refresh tokens likewise, with foreign presentations only: the owner wins once and
        // the family stays.
        issue_refresh(&store, "rt-0", "g2").await;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let client = if i == 7 { "c1" } else { "c2" };
                (client, go(&store, Kind::RefreshToken, "rt-0", &by(client)).await)
            }));
        }
        for t in tasks {
            match t.await.unwrap() {
                ("c1", Outcome::Issued(_)) | ("c2", Outcome::Refused(Refusal::ForeignClient)) => {}
                (c, other) => panic!("{path}: {c} got {other:?}"),
            }
        }
        assert!(store.get_live_grant("g2").await.unwrap().is_some(), "{path}");
    }
}

#[tokio::test]
async fn a_failure_while_minting_spends_nothing() {
    for (path, _db, store) in paths().await {
        issue_code(&store, "code-1", "g1").await;
        let failed: Outcome<()> = present(&store, Kind::AuthorizationCode, &h("code-1"), &by("c1"), |_, _| async {
            Err(OAuthError::server_error("the signer is unavailable"))
        })
        .await
        .unwrap();
        assert!(matches!(failed, Outcome::MintFailed(_)), "{path}");
        assert!(!spent(&store, Kind::AuthorizationCode, "code-1").await, "{path}");
        let Outcome::Issued(_) = go(&store, Kind::AuthorizationCode, "code-1", &by("c1")).await else {
            panic!("{path}: the retry after a failed mint is issued");
        };
    }
}

/// The request goes away (client disconnected, deadline) after its commit ran but before it
/// took the result: the commit is undone, so the credential is not spent for nobody and the
/// client's retry gets tokens, with no replay.
#[tokio::test]
async fn a_request_cancelled_after_its_commit_has_the_commit_undone() {
    for (path, _db, store) in paths().await {
        for (kind, credential) in [(Kind::AuthorizationCode, "code-1"), (Kind::RefreshToken, "rt-x")] {
            match kind {
                Kind::AuthorizationCode => issue_code(&store, credential, "g1").await,
                Kind::RefreshToken => issue_refresh(&store, credential, "g2").await,
            }
            let pause = Arc::new(tokio::sync::Semaphore::new(0));
            let minted = Arc::new(std::sync::Mutex::new(None));
            let request = {
                let (store, pause, minted) = (store.clone(), pause.clone(), minted.clone());
                tokio::spawn(async move {
                    let p = by("c1");
                    present_pausing_after_commit(
                        &store,
                        kind,
                        &h(credential),
                        &p,
                        |s, scope| {
                            let (s, minted) = (s.clone(), minted.clone());
                            async move {
                                let r = mint_for(&s, scope).await?;
                                *minted.lock().unwrap() = Some(r.1.clone());
                                Ok(r)
                            }
                        },
                        pause,
                    )
                    .await
                })
            };
            // Wait for the commit to land, then drop the request before it hears of it.
            let mut committed = false;
            for _ in 0..500 {
                if spent(&store, kind, credential).await {
                    committed = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(committed, "{path}: the commit ran");
            let (at, _) = minted.lock().unwrap().clone().unwrap();
            assert!(live(&store, &at).await, "{path}: its tokens were stored");
            request.abort();
            assert!(request.await.unwrap_err().is_cancelled());
            // The client retries at once, before the undo has run: the retry waits for it and
            // is issued (not taken for a replay).
            let retry = {
                let store = store.clone();
                tokio::spawn(async move { go(&store, kind, credential, &by("c1")).await })
            };
            tokio::time::sleep(Duration::from_millis(100)).await;
            pause.add_permits(1);
            let Outcome::Issued((retried_at, _)) = retry.await.unwrap() else {
                panic!("{path}: the retry of a cancelled {kind:?} request is issued");
            };
            assert!(!live(&store, &at).await, "{path}: the undelivered tokens are gone");
            assert!(live(&store, &retried_at).await, "{path}: the retry's tokens are stored");
            assert!(
                store
                    .get_live_grant(if kind == Kind::AuthorizationCode { "g1" } else { "g2" })
                    .await
                    .unwrap()
                    .is_some()
            );
        }
    }
}

#[tokio::test]
async fn an_undo_never_takes_back_a_successor_already_used() {
    for (path, _db, store) in paths().await {
        issue_refresh(&store, "rt-0", "g1").await;
        let successor = TokensToStore { access: None, refresh: Some(refresh_record("rt-1", "g1", NOW + 1)) };
        assert!(store.commit_credential(Kind::RefreshToken, &h("rt-0"), NOW + 1, &successor).await.unwrap());
        assert!(
            !store.commit_credential(Kind::RefreshToken, &h("rt-0"), NOW + 1, &successor).await.unwrap(),
            "{path}: a second commit loses"
        );
        let next = TokensToStore { access: None, refresh: Some(refresh_record("rt-2", "g1", NOW + 2)) };
        assert!(store.commit_credential(Kind::RefreshToken, &h("rt-1"), NOW + 2, &next).await.unwrap());
        assert!(!store.undo_credential(Kind::RefreshToken, &h("rt-0"), NOW + 1, &successor).await.unwrap(), "{path}");
        assert!(spent(&store, Kind::RefreshToken, "rt-0").await, "{path}: nothing was undone");
        assert!(spent(&store, Kind::RefreshToken, "rt-1").await, "{path}");
    }
}
