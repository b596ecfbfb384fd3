use crate::support::TestServer;

#[tokio::test]
async fn discovery_issuer_and_endpoints_are_absolute_under_the_issuer() {
    let srv = TestServer::start().await;
    let doc = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["issuer"], srv.base.as_str());
    for (k, v) in doc.as_object().unwrap() {
        if k.ends_with("_endpoint") || k.ends_with("_uri") {
            let s = v.as_str().unwrap();
            assert!(s.starts_with(&format!("{}/", srv.base)), "{k} = {s} is not under the issuer");
        }
    }
    let algs = doc["id_token_signing_alg_values_supported"].as_array().unwrap();
    assert!(algs.iter().any(|a| a == "RS256"));
    assert!(doc["subject_types_supported"].as_array().unwrap().iter().any(|s| s == "public"));
}

#[tokio::test]
async fn every_advertised_endpoint_answers() {
    let srv = TestServer::start().await;
    let doc = srv.get_json("/.well-known/openid-configuration").await;
    for (k, v) in doc.as_object().unwrap() {
        if k.ends_with("_endpoint") || k == "jwks_uri" {
            let r = srv.http.get(v.as_str().unwrap()).send().await.unwrap();
            assert_ne!(r.status(), 404, "{k} is advertised but not mounted");
            assert!(r.status().as_u16() < 500, "{k} fails");
        }
    }
}

#[tokio::test]
async fn oauth_metadata_matches_openid_configuration_and_is_cacheable() {
    let srv = TestServer::start().await;
    let a = srv.get_json("/.well-known/openid-configuration").await;
    let b = srv.get_json("/.well-known/oauth-authorization-server").await;
    assert_eq!(a, b);
    let r = srv.http.get(srv.url("/.well-known/openid-configuration")).send().await.unwrap();
    let cc = r.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(cc.contains("max-age="), "{cc}");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
}

#[tokio::test]
async fn signing_algorithms_follow_configuration() {
    let srv = TestServer::start_with(|s| s.signing.algorithms = vec!["RS256".into(), "ES256".into()]).await;
    let doc = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256", "ES256"]));
    let jwks = srv.get_json("/jwks.json").await;
    let algs: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert_eq!(algs.len(), 2);
    assert!(algs.contains(&"RS256") && algs.contains(&"ES256"));
}
