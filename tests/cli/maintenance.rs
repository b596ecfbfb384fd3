//! Maintenance commands: master-key rewrap, online backup, and the audit log.
use crate::support::{
    Browser, ClientOpts, Landing, PASSWORD, TestDb, TestServer, authorize_url, cli, data_dir, hidden, stderr, stdout,
};
use latchkey_core::ManualClock;
use latchkey_core::model::ClientAuthMethod;
use latchkey_signer::MasterKey;
use serde_json::Value;
use std::sync::Arc;

fn one_json(out: &str) -> Value {
    let mut it = serde_json::Deserializer::from_str(out).into_iter::<Value>();
    let first = it.next().expect("no JSON on stdout").expect("stdout is not JSON");
    assert!(it.next().is_none(), "more than one JSON value on stdout: {out}");
    first
}

/// Everything sealed under the master key, as stored.
async fn sealed(db: &TestDb) -> (Vec<(String, String, String)>, Vec<Option<String>>, Vec<Option<String>>) {
    let store = latchkey_storage::open(&db.settings()).await.unwrap();
    let mut keys: Vec<_> =
        store.list_keys().await.unwrap().into_iter().map(|k| (k.kid, k.public_jwk, k.private_key)).collect();
    keys.sort();
    let secrets = store.list_clients().await.unwrap().into_iter().map(|c| c.secret_enc).collect();
    let meta = vec![store.get_meta("master_key_check").await.unwrap(), store.get_meta("pairwise_salt").await.unwrap()];
    store.close().await;
    (keys, secrets, meta)
}

#[tokio::test]
async fn rewrap_moves_every_sealed_value_to_the_new_key_and_the_old_one_is_refused() {
    let old = MasterKey::generate();
    let db = Arc::new(TestDb::fresh().await);
    let srv = TestServer::start_on(db.clone(), old.clone(), ManualClock::starting_now(), |_| {}).await;
    let c = srv.add_client(ClientOpts { auth_method: ClientAuthMethod::ClientSecretJwt, ..Default::default() }).await;
    let jwks_before = srv.get_json("/jwks.json").await;
    srv.stop().await;
    let salt_before = {
        let store = latchkey_storage::open(&db.settings()).await.unwrap();
        let s = latchkey_signer::pairwise_salt(store.as_ref(), &old).await.unwrap();
        store.close().await;
        s
    };

    let new = MasterKey::generate();
    let (old_s, new_s) = (old.encode(), new.encode());
    let o = cli(
        &db,
        &[("LATCHKEY_MASTER_KEY", &old_s), ("LATCHKEY_NEW_MASTER_KEY", &new_s)],
        &["keys", "rewrap", "--json"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v = one_json(&stdout(&o));
    assert!(v["keys"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["client_secrets"], 1);
    assert_eq!(v["meta"], 2, "the check value and the pairwise salt");
    assert!(v.get("new_master_key").is_none(), "a given key is not echoed");

    // The old key no longer starts anything; the new one does.
    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", &old_s)], &["keys", "list"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("master key"), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1);
    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", &new_s)], &["keys", "list"], None);
    assert!(o.status.success(), "{}", stderr(&o));

    // The client secret and the salt decrypt under the new key to what they were.
    let store = latchkey_storage::open(&db.settings()).await.unwrap();
    let enc = store.get_client(&c.id).await.unwrap().unwrap().secret_enc.unwrap();
    let aad = format!("client_secret:{}", c.id);
    assert_eq!(new.decrypt(&enc, &aad).unwrap().as_slice(), c.secret.as_deref().unwrap().as_bytes());
    assert!(old.decrypt(&enc, &aad).is_err());
    let salt_after = latchkey_signer::pairwise_salt(store.as_ref(), &new).await.unwrap();
    assert_eq!(salt_after.as_slice(), salt_before.as_slice());
    let events = store.list_audit(0, 100).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "keys.rewrapped"));
    store.close().await;

    // A server on the new key publishes the same JWKS.
    let srv = TestServer::start_on(db.clone(), new.clone(), ManualClock::starting_now(), |_| {}).await;
    assert_eq!(srv.get_json("/jwks.json").await, jwks_before);
    srv.stop().await;
}

#[tokio::test]
async fn rewrap_with_a_wrong_current_key_or_an_undecryptable_value_changes_nothing() {
    let db = TestDb::fresh().await;
    let right = MasterKey::generate().encode();
    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", &right)], &["keys", "list"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = sealed(&db).await;

    let (wrong, new) = (MasterKey::generate().encode(), MasterKey::generate().encode());
    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", &wrong), ("LATCHKEY_NEW_MASTER_KEY", &new)], &["keys", "rewrap"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("master key"), "{}", stderr(&o));
    assert_eq!(sealed(&db).await, before);

    // A client secret sealed under some other key: the whole rewrap is refused.
    let store = latchkey_storage::open(&db.settings()).await.unwrap();
    let stray = MasterKey::generate();
    let c = latchkey_core::model::Client {
        client_id: "stray".into(),
        name: "Stray".into(),
        redirect_uris: vec!["https://rp.example/cb".into()],
        auth_method: ClientAuthMethod::ClientSecretJwt,
        secret_enc: Some(stray.encrypt(b"s", "client_secret:stray").unwrap()),
        ..Default::default()
    };
    store.create_client(&c).await.unwrap();
    store.close().await;
    let before = sealed(&db).await;
    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", &right), ("LATCHKEY_NEW_MASTER_KEY", &new)], &["keys", "rewrap"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("stray") && stderr(&o).contains("nothing was changed"), "{}", stderr(&o));
    assert_eq!(sealed(&db).await, before);
    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", &right)], &["keys", "list"], None);
    assert!(o.status.success(), "{}", stderr(&o));

    // No new key given: a usage error.
    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", &right)], &["keys", "rewrap"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[tokio::test]
async fn rewrap_generate_replaces_the_key_file_after_the_commit() {
    let db = TestDb::fresh().await;
    let o = cli(&db, &[], &["keys", "list"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let path = data_dir(&db).join("master.key");
    let old = std::fs::read_to_string(&path).unwrap().trim().to_owned();

    let o = cli(&db, &[], &["keys", "rewrap", "--generate", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = one_json(&stdout(&o));
    let new = v["new_master_key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), new);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(data_dir(&db))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("master.key."))
        .collect();
    assert!(leftovers.is_empty(), "no temp file is left behind");

    let o = cli(&db, &[], &["keys", "list"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", &old)], &["keys", "list"], None);
    assert_eq!(o.status.code(), Some(1));
}

#[tokio::test]
async fn backup_copies_a_live_sqlite_database_and_postgres_points_to_pg_dump() {
    let db = Arc::new(TestDb::fresh().await);
    let target = db.dir.path().join("backup.db");
    let target_s = target.display().to_string();
    if db.is_postgres() {
        let o = cli(&db, &[], &["backup", &target_s], None);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("pg_dump"), "{}", stderr(&o));
        assert_eq!(stderr(&o).trim().lines().count(), 1);
        assert!(!target.exists());
        return;
    }
    let srv = TestServer::start_on(db.clone(), MasterKey::generate(), ManualClock::starting_now(), |_| {}).await;
    let c = srv.add_client(ClientOpts::default()).await;
    // While the server runs.
    let o = cli(&db, &[], &["backup", &target_s], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(target.exists());
    let o = cli(&db, &[], &["backup", &target_s], None);
    assert_eq!(o.status.code(), Some(2), "an existing file is refused");
    srv.stop().await;

    let url = format!("sqlite://{target_s}");
    let o = cli(&db, &[("LATCHKEY_DATABASE_URL", &url)], &["client", "list", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&c.id), "{}", stdout(&o));
}

/// Submit the login form a failed login answered with (at `/login`, no query).
async fn login_again(b: &Browser, l: Landing, username: &str, password: &str) -> Landing {
    let Landing::Page(200, _, body) = l else { panic!("expected the login form again, got {l:?}") };
    assert!(body.contains("incorrect"), "the failure is shown");
    let interaction = hidden(&body, "interaction").unwrap();
    let csrf = hidden(&body, "csrf").unwrap();
    b.submit(
        "/login",
        &[("interaction", &interaction), ("csrf", &csrf), ("username", username), ("password", password)],
    )
    .await
}

#[tokio::test]
async fn logins_and_consent_are_audited_with_reasons_and_never_the_password() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    let alice = srv.add_user("alice").await;
    let b: Browser = srv.browser();
    let (url, _, _, verifier) = authorize_url(&srv.base, &c, "openid", &[]);
    let l = b.navigate(&url).await;
    let l = b.login(l, "nobody", PASSWORD).await;
    let l = login_again(&b, l, "alice", "wrong password 123").await;
    let l = login_again(&b, l, "alice", PASSWORD).await;
    let l = b.consent(l, "approve").await;
    let Landing::Client(loc) = l else { panic!("expected a redirect to the client, got {l:?}") };
    let code = crate::support::query_param(&loc, "code").unwrap();
    assert_eq!(srv.redeem(&c, &code, &verifier).await.status(), 200);
    assert_eq!(srv.redeem(&c, &code, &verifier).await.status(), 400);

    let events = srv.state().store.list_audit(0, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["login.failed", "login.failed", "login.succeeded", "consent.granted", "authorization_code.reused"],
        "{events:?}"
    );
    let detail = |i: usize| -> Value { serde_json::from_str(&events[i].detail).unwrap() };
    assert_eq!(detail(0)["reason"], "unknown_user");
    assert_eq!(detail(0)["user"], "nobody");
    assert_eq!(detail(1)["reason"], "bad_password");
    assert_eq!(events[1].actor.as_deref(), Some(alice.id.as_str()));
    assert_eq!(events[2].actor.as_deref(), Some(alice.id.as_str()));
    assert!(!events[4].detail.contains(&code), "no token in the log");
    for e in &events[..4] {
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"), "{e:?}");
        assert_eq!(e.client_id.as_deref(), Some(c.id.as_str()));
        assert!(!e.detail.contains(PASSWORD) && !e.detail.contains("wrong password"), "{e:?}");
    }

    // Signing out (confirmed on the form, everywhere) is recorded too.
    let Landing::Page(200, _, body) = b.navigate("/logout").await else { panic!("no logout form") };
    let csrf = hidden(&body, "csrf").unwrap();
    b.submit("/logout", &[("csrf", &csrf), ("everywhere", "on")]).await;
    let events = srv.state().store.list_audit(0, 100).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.kind, "logout.everywhere");
    assert_eq!(last.actor.as_deref(), Some(alice.id.as_str()));

    // The CLI on the same database: one JSON array, oldest first, filters applied.
    let o = cli(&srv.db, &[], &["audit", "--json", "--user", "alice"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let arr = one_json(&stdout(&o));
    let ks: Vec<&str> = arr.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(ks, ["login.failed", "login.succeeded", "consent.granted", "logout.everywhere"]);
    assert!(!stdout(&o).contains(PASSWORD));
    let o = cli(&srv.db, &[], &["audit", "--json", "--kind", "login.failed", "--limit", "1"], None);
    let arr = one_json(&stdout(&o));
    assert_eq!(arr.as_array().unwrap().len(), 1);
    assert_eq!(arr[0]["detail"]["reason"], "unknown_user");
    let o = cli(&srv.db, &[], &["audit", "--json", "--since", "2999-01-01T00:00:00Z"], None);
    assert_eq!(one_json(&stdout(&o)), Value::Array(vec![]));
    let o = cli(&srv.db, &[], &["audit", "--since", "yesterday"], None);
    assert_eq!(o.status.code(), Some(2));
    srv.stop().await;
}
