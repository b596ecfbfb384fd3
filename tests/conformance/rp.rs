//! A conformance-style relying party: it checks every response the way the suite does.
use crate::support::{
    Browser, ClientOpts, Landing, PASSWORD, RegisteredClient, TestServer, hidden, pkce_pair, query_param,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use latchkey_core::Clock;
use serde_json::Value;

pub struct Rp {
    pub srv: TestServer,
    pub client: RegisteredClient,
    pub browser: Browser,
    pub user_id: String,
}

/// What one authorization request produced.
pub struct Authz {
    pub code: String,
    pub nonce: Option<String>,
    pub verifier: String,
}

impl Rp {
    pub async fn new() -> Rp {
        Self::with(|_| {}, ClientOpts::default()).await
    }

    pub async fn with(settings: impl FnOnce(&mut latchkey_core::Settings), opts: ClientOpts) -> Rp {
        let srv = TestServer::start_with(settings).await;
        let client = srv.add_client(opts).await;
        let u = srv.add_user("alice").await;
        let browser = srv.browser();
        Rp { srv, client, browser, user_id: u.id }
    }

    /// The authorization URL with PKCE, state and (unless `nonce` is false) a nonce.
    pub fn url(&self, scope: &str, extra: &[(&str, &str)], nonce: bool) -> (String, String, Option<String>, String) {
        let (verifier, challenge) = pkce_pair();
        let state = format!("st-{}", &verifier[..8]);
        let n = nonce.then(|| format!("n-{}", &verifier[8..16]));
        let mut u = url::Url::parse(&self.srv.url("/authorize")).unwrap();
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client.id)
                .append_pair("redirect_uri", &self.client.redirect_uri)
                .append_pair("scope", scope)
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(n) = &n {
                q.append_pair("nonce", n);
            }
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        (u.to_string(), state, n, verifier)
    }

    /// Walk the browser through login and consent (whichever appear) to the client.
    pub async fn complete(&self, mut l: Landing) -> Landing {
        for _ in 0..4 {
            match &l {
                Landing::Page(200, p, _) if p.starts_with("/login") => {
                    l = self.browser.login(l, "alice", PASSWORD).await
                }
                Landing::Page(200, p, _) if p.starts_with("/consent") => l = self.browser.consent(l, "approve").await,
                Landing::Page(200, p, body) if p.starts_with("/select-account") => {
                    let i = hidden(body, "interaction").unwrap();
                    let c = hidden(body, "csrf").unwrap();
                    l = self
                        .browser
                        .submit("/select-account", &[("interaction", &i), ("csrf", &c), ("choice", "continue")])
                        .await
                }
                _ => return l,
            }
        }
        l
    }

    pub async fn authorize(&self, scope: &str, extra: &[(&str, &str)]) -> Authz {
        let (url, state, nonce, verifier) = self.url(scope, extra, true);
        let l = self.complete(self.browser.navigate(&url).await).await;
        let Landing::Client(loc) = l else { panic!("no redirect to the client: {l:?}") };
        // The suite checks state and iss on every authorization response.
        assert_eq!(query_param(&loc, "state").as_deref(), Some(state.as_str()), "state echoed");
        assert_eq!(query_param(&loc, "iss").as_deref(), Some(self.srv.base.as_str()), "iss (RFC 9207)");
        let code = query_param(&loc, "code").unwrap_or_else(|| panic!("no code: {loc}"));
        Authz { code, nonce, verifier }
    }

    pub async fn token(&self, a: &Authz) -> Value {
        let r = self.srv.redeem(&self.client, &a.code, &a.verifier).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        let t: Value = r.json().await.unwrap();
        assert_eq!(t["token_type"], "Bearer");
        assert!(t["expires_in"].as_i64().unwrap() > 0);
        t
    }

    /// Validate an ID token as the suite does (OIDC Core §3.1.3.7) with an independent library
    /// and the published JWKS; returns its claims.
    pub async fn id_token(&self, t: &Value, nonce: Option<&str>) -> Value {
        let token = t["id_token"].as_str().expect("an id_token");
        let jwks: JwkSet = serde_json::from_value(self.srv.get_json("/jwks.json").await).unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256, "default RS256");
        let kid = header.kid.expect("kid in the header");
        let key = DecodingKey::from_jwk(jwks.find(&kid).expect("kid published")).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[&self.client.id]);
        v.set_issuer(&[&self.srv.base]);
        v.validate_exp = false; // the manual clock may have moved past wall time
        let claims = jsonwebtoken::decode::<Value>(token, &key, &v).unwrap().claims;
        let now = self.srv.clock.now();
        assert!(claims["exp"].as_i64().unwrap() > now, "exp in the future");
        assert!(claims["iat"].as_i64().unwrap() <= now + 5, "iat not in the future");
        assert!(claims["sub"].as_str().is_some_and(|s| !s.is_empty() && s.len() <= 255));
        assert!(claims["auth_time"].is_i64(), "auth_time");
        assert_eq!(claims.get("nonce").and_then(Value::as_str), nonce, "nonce");
        if let Some(at) = t["access_token"].as_str() {
            use sha2::Digest;
            let d = sha2::Sha256::digest(at.as_bytes());
            let expected = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &d[..16]);
            assert_eq!(claims["at_hash"], expected.as_str(), "at_hash");
        }
        claims
    }

    pub async fn userinfo(&self, t: &Value) -> Value {
        let r = self
            .srv
            .http
            .get(self.srv.url("/userinfo"))
            .bearer_auth(t["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["sub"], self.user_id.as_str(), "UserInfo sub equals the ID token sub");
        v
    }
}
