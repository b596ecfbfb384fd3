use crate::support::TestServer;

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let srv = TestServer::start().await;
    let r = srv.http.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = srv.http.get(srv.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_security_headers() {
    let srv = TestServer::start().await;
    let r = srv.http.get(srv.url("/healthz")).send().await.unwrap();
    let h = r.headers();
    assert!(!h["x-request-id"].is_empty());
    assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_gone() {
    let srv = TestServer::start().await;
    srv.state().store.close().await;
    let r = srv.http.get(srv.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let r = srv.http.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "liveness does not depend on the database");
}

#[tokio::test]
async fn graceful_shutdown_finishes_and_frees_the_port() {
    let srv = TestServer::start().await;
    let addr = srv.base.trim_start_matches("http://").to_string();
    srv.stop().await;
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err(), "still accepting after shutdown");
}
