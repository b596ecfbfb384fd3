//! Several instances on one database behave as one server (issue "Scale-out"): on PostgreSQL
//! in CI, on one SQLite file locally.
use crate::support::{ClientOpts, Landing, TestServer, authorize_url, query_param};
use latchkey_core::Clock;
use latchkey_core::model::GrantType;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Two instances, A and B, on one database with one issuer (as behind a load balancer).
async fn pair(f: impl Fn(&mut latchkey_core::Settings) + Clone) -> (TestServer, TestServer) {
    let f2 = f.clone();
    let a = TestServer::start_with(move |s| f2(s)).await;
    let issuer = a.base.clone();
    let b = TestServer::start_on(a.db.clone(), a.master.clone(), a.clock.clone(), move |s| {
        f(s);
        s.issuer = issuer.clone();
    })
    .await;
    (a, b)
}

#[tokio::test]
async fn a_login_on_a_is_a_session_on_b_and_a_code_from_a_redeems_on_b_exactly_once() {
    let (a, b) = pair(|_| {}).await;
    a.add_user("alice").await;
    let c = a.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let browser = a.browser();
    let (code, _, verifier) = a.sign_in(&browser, &c, "alice", "openid").await;
    // The browser's session (made on A) is a session on B: prompt=none succeeds there.
    let (url, ..) = authorize_url(&b.base, &c, "openid", &[("prompt", "none")]);
    let Landing::Client(loc) = browser.navigate(&url).await else { panic!() };
    assert!(query_param(&loc, "code").is_some(), "session shared: {loc}");
    // A's code redeems on B, once; the replay on A is refused and revokes B's tokens.
    let r = b.redeem(&c, &code, &verifier).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let r = a.redeem(&c, &code, &verifier).await;
    assert_eq!(r.status(), 400);
    let r = b.http.get(b.url("/userinfo")).bearer_auth(t["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_refresh_family_rotated_on_a_and_replayed_on_b_is_revoked() {
    let (a, b) = pair(|_| {}).await;
    a.add_user("alice").await;
    let c = a
        .add_client(ClientOpts { skip_consent: true, refresh_without_offline_access: true, ..Default::default() })
        .await;
    let browser = a.browser();
    let (code, _, verifier) = a.sign_in(&browser, &c, "alice", "openid").await;
    let t: Value = a.redeem(&c, &code, &verifier).await.json().await.unwrap();
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let r = a.token(&c, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    let t2: Value = r.json().await.unwrap();
    // The successor is used on A, then the first token is replayed on B.
    let r =
        a.token(&c, &[("grant_type", "refresh_token"), ("refresh_token", t2["refresh_token"].as_str().unwrap())]).await;
    let t3: Value = r.json().await.unwrap();
    let r = b.token(&c, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    assert_eq!(r.status(), 400, "replay on B");
    let r =
        a.token(&c, &[("grant_type", "refresh_token"), ("refresh_token", t3["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(r.status(), 400, "the family is revoked for A too");
}

#[tokio::test]
async fn a_key_rotation_on_a_is_published_by_b_within_the_staleness_bound() {
    let (a, b) = pair(|s| {
        s.signing.key_refresh_interval = 1;
        s.signing.rotation_delay = 3;
    })
    .await;
    let st = a.state().clone();
    let fresh = latchkey_signer::rotate(st.store.as_ref(), &st.settings, &a.master, a.clock.now()).await.unwrap();
    let new_kid = fresh[0].kid.clone();
    // B publishes it within key_refresh_interval (1 s; at once on PostgreSQL via NOTIFY).
    let start = Instant::now();
    loop {
        let jwks = b.get_json("/jwks.json").await;
        if jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == new_kid.as_str()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "B did not publish the new key within the bound");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And no instance signs with it before its activation (rotation_delay > refresh interval).
    let signed = b
        .state()
        .keys
        .sign(latchkey_core::model::SigningAlg::RS256, "JWT", &serde_json::json!({}), b.clock.now())
        .unwrap();
    assert_ne!(signed.kid, new_kid);
}

#[tokio::test]
async fn killing_one_instance_mid_load_leaves_the_other_answering() {
    let (a, b) = pair(|_| {}).await;
    let c = a
        .add_client(ClientOpts {
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["api".into()],
            ..Default::default()
        })
        .await;
    let load = {
        let http = b.http.clone();
        let url = b.url("/token");
        let (id, secret) = (c.id.clone(), c.secret.clone());
        tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..60 {
                let r = http
                    .post(&url)
                    .basic_auth(&id, secret.as_deref())
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status() == 200) {
                    ok += 1;
                }
            }
            ok
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    a.stop().await;
    let ok = load.await.unwrap();
    assert_eq!(ok, 60, "every request to B succeeded while A went away");
}

#[tokio::test]
async fn background_jobs_run_on_one_instance_at_a_time_and_another_takes_over() {
    let (a, b) = pair(|_| {}).await;
    let held = a.state().store.try_lease("cluster-test-job").await.unwrap().expect("A leads");
    let other = b.state().store.try_lease("cluster-test-job").await.unwrap();
    if a.db.is_postgres() {
        assert!(other.is_none(), "B must not run the job while A does");
    }
    if let Some(o) = other {
        o.release().await;
    }
    // A goes away (its lease with it): B takes over.
    held.release().await;
    a.stop().await;
    let taken = b.state().store.try_lease("cluster-test-job").await.unwrap();
    assert!(taken.is_some(), "B takes over");
    taken.unwrap().release().await;
}
