use crate::support::{TestDb, cli, stderr, stdout};
use latchkey_core::SecretToken;
use serde_json::Value;

fn one_json_object(out: &str) -> serde_json::Map<String, Value> {
    let mut it = serde_json::Deserializer::from_str(out).into_iter::<Value>();
    let first = it.next().expect("no JSON on stdout").expect("stdout is not JSON");
    assert!(it.next().is_none(), "more than one JSON value on stdout: {out}");
    match first {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

#[tokio::test]
async fn client_add_json_prints_one_object_with_id_and_a_secret_shown_once() {
    let db = TestDb::fresh().await;
    let o = cli(
        &db,
        &[],
        &[
            "client",
            "add",
            "--name",
            "Shop",
            "--redirect-uri",
            "https://shop.example/cb",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--scope",
            "openid email",
            "--json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let obj = one_json_object(&stdout(&o));
    let id = obj["client_id"].as_str().unwrap().to_string();
    let secret = obj["client_secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 43, "client secrets carry at least 256 bits");
    assert_eq!(obj["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(obj["redirect_uris"].as_array().unwrap().len(), 2);

    // Stored only as a hash.
    let store = latchkey_storage::open(&db.settings()).await.unwrap();
    let c = store.get_client(&id).await.unwrap().unwrap();
    let h = c.secret_hash.clone().unwrap();
    assert_ne!(h.as_str(), secret);
    assert!(h.matches(&SecretToken::from_presented(&secret).hash()));
    store.close().await;

    // `show` never prints the secret again.
    let o = cli(&db, &[], &["client", "show", &id, "--json"], None);
    assert!(o.status.success());
    assert!(!stdout(&o).contains(&secret));
    let o = cli(&db, &[], &["client", "list", "--json"], None);
    assert!(stdout(&o).contains(&id) && !stdout(&o).contains(&secret));
}

#[tokio::test]
async fn public_clients_get_no_secret_and_require_pkce() {
    let db = TestDb::fresh().await;
    let o = cli(
        &db,
        &[],
        &["client", "add", "--name", "App", "--redirect-uri", "com.example.app:/cb", "--public", "--json"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let obj = one_json_object(&stdout(&o));
    assert!(obj.get("client_secret").is_none());
    assert_eq!(obj["token_endpoint_auth_method"], "none");
    assert_eq!(obj["require_pkce"], true);
}

#[tokio::test]
async fn client_update_and_remove() {
    let db = TestDb::fresh().await;
    let o = cli(&db, &[], &["client", "add", "--name", "A", "--redirect-uri", "https://a.example/cb", "--json"], None);
    let id = one_json_object(&stdout(&o))["client_id"].as_str().unwrap().to_string();
    let o = cli(
        &db,
        &[],
        &["client", "update", &id, "--name", "B", "--skip-consent", "true", "--rotate-secret", "--json"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let obj = one_json_object(&stdout(&o));
    assert_eq!(obj["client_name"], "B");
    assert_eq!(obj["skip_consent"], true);
    assert!(obj["client_secret"].is_string());
    let o = cli(&db, &[], &["client", "remove", &id], None);
    assert!(o.status.success());
    let o = cli(&db, &[], &["client", "show", &id], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&id));
}

#[tokio::test]
async fn bad_arguments_exit_2_with_one_line() {
    let db = TestDb::fresh().await;
    for args in [
        &["client", "add", "--name", "X", "--redirect-uri", "https://x.example/cb#frag"][..],
        &["client", "add", "--name", "X", "--redirect-uri", "javascript:alert(1)"][..],
        &["client", "add", "--name", "X", "--redirect-uri", "http://remote.example/cb"][..],
        &["client", "add", "--name", "X"][..],
        &["client", "add", "--name", "X", "--redirect-uri", "https://x.example/cb", "--auth-method", "magic"][..],
        &[
            "client",
            "add",
            "--name",
            "X",
            "--redirect-uri",
            "https://x.example/cb",
            "--public",
            "--grant-type",
            "client_credentials",
        ][..],
        &["client", "frobnicate"][..],
        &["user", "add", "--username", "bob"][..],
    ] {
        let o = cli(&db, &[], args, Some("pw\n"));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(stdout(&o).is_empty());
    }
}

#[tokio::test]
async fn user_add_reads_the_password_from_stdin_and_prints_json() {
    let db = TestDb::fresh().await;
    let claims = db.dir.path().join("claims.json");
    std::fs::write(
        &claims,
        r#"{"given_name":"Ada","family_name":"Lovelace","locale":"en-GB","phone_number":"+44 20 7946 0000","address":{"street_address":"12 St James's Sq","locality":"London","country":"UK"}}"#,
    )
    .unwrap();
    let o = cli(
        &db,
        &[],
        &[
            "user",
            "add",
            "--username",
            "ada",
            "--password-stdin",
            "--email",
            "ada@example.com",
            "--email-verified",
            "--name",
            "Ada Lovelace",
            "--claim",
            "nickname=countess",
            "--claims-json",
            claims.to_str().unwrap(),
            "--json",
        ],
        Some("analytical engine\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let obj = one_json_object(&stdout(&o));
    assert_eq!(obj["username"], "ada");
    assert_eq!(obj["email_verified"], true);
    assert_eq!(obj["claims"]["address"]["locality"], "London");
    assert_eq!(obj["claims"]["nickname"], "countess");
    assert!(!stdout(&o).contains("analytical engine"));

    let store = latchkey_storage::open(&db.settings()).await.unwrap();
    let u = store.get_user_by_username("ada").await.unwrap().unwrap();
    assert!(u.password_hash.starts_with("$argon2id$"));
    let p = latchkey_web::Passwords::new(&db.settings().argon2).unwrap();
    assert!(p.verify(Some(&u.password_hash), "analytical engine".into()).await);
    store.close().await;

    // The same username again is refused; a bad claim is refused.
    let o = cli(&db, &[], &["user", "add", "--username", "ada", "--password-stdin"], Some("x\n"));
    assert_eq!(o.status.code(), Some(2));
    let o =
        cli(&db, &[], &["user", "add", "--username", "bob", "--password-stdin", "--claim", "shoe_size=9"], Some("x\n"));
    assert_eq!(o.status.code(), Some(2));

    // set-password changes the hash; remove deletes.
    let o = cli(&db, &[], &["user", "set-password", "ada", "--password-stdin"], Some("difference engine\n"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(&db, &[], &["user", "show", "ada", "--json"], None);
    assert!(o.status.success());
    let o = cli(&db, &[], &["user", "remove", "ada"], None);
    assert!(o.status.success());
    let o = cli(&db, &[], &["user", "list", "--json"], None);
    assert_eq!(stdout(&o).trim(), "[]");
}

#[tokio::test]
async fn keys_list_and_rotate() {
    let db = TestDb::fresh().await;
    let o = cli(&db, &[], &["keys", "list", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let list: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(list.len(), 4);
    assert!(list.iter().all(|k| k["state"] == "active"));
    let o = cli(&db, &[], &["keys", "rotate", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(&db, &[], &["keys", "list", "--json"], None);
    let list: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(list.len(), 8);
    assert_eq!(list.iter().filter(|k| k["state"] == "pending").count(), 4);
}

#[tokio::test]
async fn client_add_for_private_key_jwt_takes_public_keys_only() {
    let db = TestDb::fresh().await;
    let kp = josekit::jws::ES256.generate_key_pair().unwrap();
    let public = db.dir.path().join("public.json");
    let private = db.dir.path().join("private.json");
    std::fs::write(&public, format!("{{\"keys\":[{}]}}", kp.to_jwk_public_key())).unwrap();
    std::fs::write(&private, format!("{{\"keys\":[{}]}}", kp.to_jwk_private_key())).unwrap();
    let base =
        ["client", "add", "--name", "svc", "--grant-type", "client_credentials", "--auth-method", "private_key_jwt"];
    let o = cli(&db, &[], &[&base[..], &["--jwks", public.to_str().unwrap(), "--json"]].concat(), None);
    assert!(o.status.success(), "{}", stderr(&o));
    let obj = one_json_object(&stdout(&o));
    assert_eq!(obj["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(obj["has_jwks"], true);
    assert!(obj.get("client_secret").is_none(), "private_key_jwt clients have no secret");
    let o = cli(&db, &[], &[&base[..], &["--jwks", private.to_str().unwrap()]].concat(), None);
    assert_eq!(o.status.code(), Some(2), "private key material refused");
    assert!(stderr(&o).contains("private key"));
    let o = cli(&db, &[], &base, None);
    assert_eq!(o.status.code(), Some(2), "keys are required");
    let o = cli(&db, &[], &[&base[..], &["--jwks-uri", "http://keys.example/jwks"]].concat(), None);
    assert_eq!(o.status.code(), Some(2), "jwks_uri must be https");
}

#[tokio::test]
async fn client_add_records_token_format_resources_and_introspection() {
    let db = TestDb::fresh().await;
    let o = cli(
        &db,
        &[],
        &[
            "client",
            "add",
            "--name",
            "rs",
            "--grant-type",
            "client_credentials",
            "--access-token-format",
            "jwt",
            "--resource",
            "https://api.example.com",
            "--introspection",
            "--scope",
            "api",
            "--json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let obj = one_json_object(&stdout(&o));
    assert_eq!(obj["access_token_format"], "jwt");
    assert_eq!(obj["resources"], serde_json::json!(["https://api.example.com"]));
    assert_eq!(obj["introspection"], true);
    let o = cli(
        &db,
        &[],
        &["client", "add", "--name", "x", "--grant-type", "client_credentials", "--resource", "not a uri"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let o = cli(
        &db,
        &[],
        &["client", "add", "--name", "x", "--grant-type", "client_credentials", "--access-token-format", "paper"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
}

#[tokio::test]
async fn client_secret_jwt_secrets_are_stored_encrypted_not_in_clear() {
    let db = TestDb::fresh().await;
    let o = cli(
        &db,
        &[],
        &[
            "client",
            "add",
            "--name",
            "hs",
            "--grant-type",
            "client_credentials",
            "--auth-method",
            "client_secret_jwt",
            "--json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let obj = one_json_object(&stdout(&o));
    let secret = obj["client_secret"].as_str().unwrap().to_string();
    let store = latchkey_storage::open(&db.settings()).await.unwrap();
    let c = store.get_client(obj["client_id"].as_str().unwrap()).await.unwrap().unwrap();
    let enc = c.secret_enc.unwrap();
    assert!(enc.starts_with("v1.") && !enc.contains(&secret));
    store.close().await;
}

#[tokio::test]
async fn registration_token_json_prints_one_object_and_stores_only_a_single_use_hash() {
    let db = TestDb::fresh().await;
    let o = cli(&db, &[], &["registration", "token", "--expires-in", "600", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let obj = one_json_object(&stdout(&o));
    let token = obj["initial_access_token"].as_str().unwrap().to_string();
    assert!(token.len() >= 43, "initial access tokens carry at least 256 bits");
    assert_eq!(obj["expires_in"], 600);
    let expires_at = obj["expires_at"].as_i64().unwrap();

    let store = latchkey_storage::open(&db.settings()).await.unwrap();
    let hash = SecretToken::from_presented(&token).hash();
    // Expired after its lifetime, usable once before.
    assert!(!store.use_initial_access_token(&hash, expires_at + 1).await.unwrap());
    assert!(store.use_initial_access_token(&hash, expires_at - 1).await.unwrap());
    assert!(!store.use_initial_access_token(&hash, expires_at - 1).await.unwrap());
    store.close().await;

    // The default lifetime is a day; the plain output shows the token once.
    let o = cli(&db, &[], &["registration", "token"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("initial_access_token: "));

    for args in [
        &["registration", "token", "--expires-in", "0"][..],
        &["registration", "token", "--expires-in", "abc"][..],
        &["registration", "token", "--expires-in", "99999999999"][..],
        &["registration", "frobnicate"][..],
    ] {
        let o = cli(&db, &[], args, None);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
}

/// Issue 13: only registered request_uris are fetched, so CLI clients can register them.
#[tokio::test]
async fn client_request_uris_are_registered_with_the_cli() {
    let db = TestDb::fresh().await;
    let base = ["client", "add", "--name", "A", "--redirect-uri", "https://a.example/cb", "--json"];
    let o = cli(&db, &[], &[&base[..], &["--request-uri", "https://a.example/req#v1"]].concat(), None);
    assert!(o.status.success(), "{}", stderr(&o));
    let obj = one_json_object(&stdout(&o));
    assert_eq!(obj["request_uris"], serde_json::json!(["https://a.example/req#v1"]));
    let id = obj["client_id"].as_str().unwrap().to_string();
    let o = cli(&db, &[], &["client", "update", &id, "--request-uri", "https://a.example/other", "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(one_json_object(&stdout(&o))["request_uris"], serde_json::json!(["https://a.example/other"]));
    let o = cli(&db, &[], &[&base[..], &["--request-uri", "http://a.example/req"]].concat(), None);
    assert_eq!(o.status.code(), Some(2), "plain http is refused: {}", stderr(&o));
}

/// Issue 13: an id that starts with `-` reads as an option; every command taking a client id,
/// user, group or role accepts it after `--` (clients made before generated ids were kept from
/// starting with `-` may have one; a username may start with one).
#[tokio::test]
async fn ids_starting_with_a_hyphen_are_accepted_after_a_double_dash() {
    let db = TestDb::fresh().await;
    let o = cli(&db, &[], &["client", "add", "--name", "A", "--redirect-uri", "https://a.example/cb", "--json"], None);
    let id = one_json_object(&stdout(&o))["client_id"].as_str().unwrap().to_string();
    assert!(!id.starts_with('-'));
    crate::support::exec_sql(&db, &format!("UPDATE clients SET client_id = '-legacy' WHERE client_id = '{id}'")).await;
    let ok = |args: &[&str], stdin: Option<&str>| {
        let o = cli(&db, &[], args, stdin);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    // Without `--` it is an unknown option (exit 2), with it the id.
    assert_eq!(cli(&db, &[], &["client", "show", "-legacy"], None).status.code(), Some(2));
    assert_eq!(one_json_object(&ok(&["client", "show", "--json", "--", "-legacy"], None))["client_id"], "-legacy");
    ok(&["client", "update", "--name", "B", "--", "-legacy"], None);
    ok(&["user", "add", "--username=-eve", "--password-stdin"], Some("pw for eve\n"));
    ok(&["user", "show", "--", "-eve"], None);
    ok(&["user", "set-password", "--password-stdin", "--", "-eve"], Some("another pw\n"));
    ok(&["user", "update", "--no-groups", "--", "-eve"], None);
    ok(&["user", "revoke-consent", "--client", "-legacy", "--", "-eve"], None);
    ok(&["group", "add", "--", "-staff"], None);
    ok(&["role", "grant", "--group=-staff", "--client", "-legacy", "--", "-admin"], None);
    ok(&["role", "grant", "--user=-eve", "--", "-admin"], None);
    ok(&["role", "revoke", "--user=-eve", "--", "-admin"], None);
    ok(&["user", "sign-out-everywhere", "--", "-eve"], None);
    ok(&["user", "remove", "--", "-eve"], None);
    ok(&["group", "remove", "--", "-staff"], None);
    ok(&["client", "remove", "--", "-legacy"], None);
    assert_eq!(cli(&db, &[], &["client", "show", "--", "-legacy"], None).status.code(), Some(1));
}
