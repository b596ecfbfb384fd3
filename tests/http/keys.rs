use crate::support::TestServer;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use latchkey_core::Clock;
use latchkey_core::model::SigningAlg;
use serde_json::json;

const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "k", "oth"];

fn jwt_alg(a: SigningAlg) -> Algorithm {
    match a {
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::PS256 => Algorithm::PS256,
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    }
}

/// Verify `token` with the independent `jsonwebtoken` crate against a JWKS fetched over HTTP.
fn verify_with_jwks(jwks: &JwkSet, token: &str, alg: SigningAlg) -> Result<serde_json::Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks.find(&kid).ok_or(format!("kid {kid} not published"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(jwt_alg(alg));
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v.validate_exp = false;
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map(|d| d.claims).map_err(|e| e.to_string())
}

async fn jwks(srv: &TestServer) -> (serde_json::Value, JwkSet) {
    let raw = srv.get_json("/jwks.json").await;
    let set: JwkSet = serde_json::from_value(raw.clone()).unwrap();
    (raw, set)
}

#[tokio::test]
async fn jwks_has_no_private_members_and_every_key_has_kid_use_alg() {
    let srv = TestServer::start().await;
    let (raw, _) = jwks(&srv).await;
    let keys = raw["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4);
    for k in keys {
        for m in PRIVATE_MEMBERS {
            assert!(k.get(*m).is_none(), "private member {m} published: {k}");
        }
        assert!(k["kid"].is_string());
        assert_eq!(k["use"], "sig");
        assert!(k["alg"].is_string());
    }
}

#[tokio::test]
async fn tokens_from_the_signer_verify_with_an_independent_library_for_every_algorithm() {
    let srv = TestServer::start().await;
    let (_, set) = jwks(&srv).await;
    let now = srv.clock.now();
    for alg in SigningAlg::ALL {
        let claims = json!({"iss": srv.base, "sub": "alice", "iat": now, "alg_under_test": alg.as_str()});
        let signed = srv.state().keys.sign(alg, "JWT", &claims, now).unwrap();
        let got = verify_with_jwks(&set, &signed.token, alg).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(got["sub"], "alice");
        let header = jsonwebtoken::decode_header(&signed.token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(signed.kid.as_str()));
        // And a tampered token does not.
        let mut parts: Vec<String> = signed.token.split('.').map(str::to_owned).collect();
        parts[1] = base64_json(&json!({"sub": "mallory"}));
        assert!(verify_with_jwks(&set, &parts.join("."), alg).is_err(), "{alg} accepted a tampered payload");
    }
}

fn base64_json(v: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn rotation_publishes_at_once_switches_after_the_delay_and_old_tokens_verify_until_expiry() {
    let srv = TestServer::start_with(|s| {
        s.signing.rotation_delay = 600;
        s.lifetimes.id_token = 3600;
        s.lifetimes.access_token = 1800;
    })
    .await;
    let state = srv.state().clone();
    let t0 = srv.clock.now();
    let before = state.keys.sign(SigningAlg::RS256, "JWT", &json!({"n": 1}), t0).unwrap();

    // `latchkey keys rotate`, through the same code path as the CLI, at t0.
    let fresh = latchkey_signer::rotate(state.store.as_ref(), &state.settings, &srv.master, t0).await.unwrap();
    let new_rs = fresh.iter().find(|k| k.alg == "RS256").unwrap().kid.clone();
    srv.reload_keys().await;

    let (_, set) = jwks(&srv).await;
    assert!(set.find(&before.kid).is_some(), "old key still published");
    assert!(set.find(&new_rs).is_some(), "new key published at once");
    assert_eq!(set.keys.len(), 8);

    // Before the delay: the old key signs.
    srv.clock.advance(599);
    let during = state.keys.sign(SigningAlg::RS256, "JWT", &json!({"n": 2}), srv.clock.now()).unwrap();
    assert_eq!(during.kid, before.kid);

    // After the delay: the new key signs; the old key's tokens still verify.
    srv.clock.advance(1);
    srv.reload_keys().await;
    let after = state.keys.sign(SigningAlg::RS256, "JWT", &json!({"n": 3}), srv.clock.now()).unwrap();
    assert_eq!(after.kid, new_rs);
    let (_, set) = jwks(&srv).await;
    verify_with_jwks(&set, &before.token, SigningAlg::RS256).unwrap();
    verify_with_jwks(&set, &after.token, SigningAlg::RS256).unwrap();

    // Until every token the old key signed has expired (the longest lifetime, 3600 s).
    srv.clock.advance(3599);
    srv.reload_keys().await;
    let (_, set) = jwks(&srv).await;
    assert!(set.find(&before.kid).is_some(), "old key must stay while its tokens may be valid");
    srv.clock.advance(1);
    srv.reload_keys().await;
    let (_, set) = jwks(&srv).await;
    assert!(set.find(&before.kid).is_none(), "old key must disappear after its tokens expired");
    assert_eq!(set.keys.len(), 4);
    verify_with_jwks(&set, &after.token, SigningAlg::RS256).unwrap();
}

#[tokio::test]
async fn a_restart_keeps_keys_and_the_master_key_protects_them() {
    let srv = TestServer::start().await;
    let (before, _) = jwks(&srv).await;
    let (db, master, clock) = srv.stop().await;
    let srv = TestServer::start_on(db.clone(), master, clock.clone(), |_| {}).await;
    let (after, _) = jwks(&srv).await;
    assert_eq!(before, after, "keys changed across a restart");
    // Private keys are encrypted at rest: no PEM in the key table.
    let keys = srv.state().store.list_keys().await.unwrap();
    for k in &keys {
        assert!(k.private_key.starts_with("v1."), "private key not encrypted");
        assert!(!k.private_key.contains("PRIVATE KEY"));
    }
    srv.stop().await;
    // A different master key is refused at start-up, naming the problem.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    drop(listener);
    let mut s = db.settings();
    s.issuer = "http://127.0.0.1:1".into();
    let err = latchkey::server::build_state(s, std::sync::Arc::new(clock), latchkey_signer::MasterKey::generate())
        .await
        .err()
        .expect("a wrong master key must not start");
    assert!(err.to_string().contains("master key does not match"), "{err}");
}
