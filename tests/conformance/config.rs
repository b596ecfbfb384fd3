//! OpenID Connect Core: Config Certification Profile (oidcc-config-certification-test-plan).
use crate::support::TestServer;
use serde_json::Value;

#[tokio::test]
async fn oidcc_discovery_endpoint_verification() {
    let srv = TestServer::start().await;
    let d = srv.get_json("/.well-known/openid-configuration").await;
    // OIDC Discovery §3: required members.
    for k in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(d.get(k).is_some(), "{k} is required");
    }
    assert_eq!(d["issuer"], srv.base.as_str(), "issuer equals the URL the document was fetched from");
    assert!(d["userinfo_endpoint"].is_string(), "recommended userinfo_endpoint");
    let has = |k: &str, v: &str| d[k].as_array().is_some_and(|a| a.iter().any(|x| x == v));
    assert!(has("scopes_supported", "openid"));
    assert!(has("response_types_supported", "code"));
    assert!(has("id_token_signing_alg_values_supported", "RS256"));
    assert!(has("subject_types_supported", "public"));
    assert!(!has("id_token_signing_alg_values_supported", "none"));
    assert!(d["claims_supported"].as_array().is_some_and(|a| !a.is_empty()));
    // The JWKS is reachable, every key has a kid and use=sig, and no private material.
    let jwks = srv.get_json("/jwks.json").await;
    for k in jwks["keys"].as_array().unwrap() {
        assert!(k["kid"].is_string() && k["use"] == "sig");
        assert!(k.get("d").is_none());
    }
    // Every endpoint is under the issuer (https in production; loopback http here).
    for (k, v) in d.as_object().unwrap() {
        if k.ends_with("_endpoint") || k.ends_with("_uri") {
            assert!(v.as_str().unwrap().starts_with(&srv.base), "{k}");
        }
    }
    let _: Value = d;
}
