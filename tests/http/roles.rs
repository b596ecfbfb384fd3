//! Roles and groups (issue 8): the `groups` and `roles` claims in ID tokens, UserInfo, RFC 9068
//! JWT access tokens and introspection, resolved from the database at each issuance.
use crate::support::{ClientOpts, Landing, PASSWORD, RegisteredClient, TestServer, authorize_url, query_param};
use latchkey_core::model::{AccessTokenFormat, Group, RoleGrant, RoleHolder, User};
use latchkey_storage::Created;
use serde_json::{Map, Value, json};

async fn add_group(srv: &TestServer, name: &str) -> Group {
    let g = Group { id: format!("gid-{name}"), name: name.into(), created_at: 1 };
    assert_eq!(srv.state().store.create_group(&g).await.unwrap(), Created::Created);
    g
}

async fn set_groups(srv: &TestServer, u: &User, names: &[&str]) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    srv.state().store.set_user_groups(&u.id, &names).await.unwrap().unwrap();
}

fn to_user(u: &User, role: &str, client: Option<&RegisteredClient>) -> RoleGrant {
    RoleGrant { role: role.into(), holder: RoleHolder::User(u.id.clone()), client_id: client.map(|c| c.id.clone()) }
}

fn to_group(g: &Group, role: &str, client: Option<&RegisteredClient>) -> RoleGrant {
    RoleGrant { role: role.into(), holder: RoleHolder::Group(g.id.clone()), client_id: client.map(|c| c.id.clone()) }
}

async fn grant(srv: &TestServer, g: RoleGrant) {
    srv.state().store.grant_role(&g, 1).await.unwrap();
}

/// A client that skips consent and gets RFC 9068 JWT access tokens, refresh tokens without
/// offline_access, and may introspect.
async fn jwt_client(srv: &TestServer) -> RegisteredClient {
    srv.add_client(ClientOpts {
        skip_consent: true,
        access_token_format: Some(AccessTokenFormat::Jwt),
        refresh_without_offline_access: true,
        ..Default::default()
    })
    .await
}

/// Sign in (the user has a session after the first time) and redeem: the token response.
async fn tokens(srv: &TestServer, c: &RegisteredClient, user: &str, scope: &str, extra: &[(&str, &str)]) -> Value {
    let b = srv.browser();
    let (url, _, _, verifier) = authorize_url(&srv.base, c, scope, extra);
    let mut l = b.navigate(&url).await;
    if matches!(&l, Landing::Page(_, p, _) if p.starts_with("/login")) {
        l = b.login(l, user, PASSWORD).await;
    }
    if matches!(&l, Landing::Page(_, p, _) if p.starts_with("/consent")) {
        l = b.consent(l, "approve").await;
    }
    let Landing::Client(loc) = l else { panic!("expected a redirect to the client, got {l:?}") };
    let r = srv.redeem(c, &query_param(&loc, "code").unwrap(), &verifier).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn id_claims(srv: &TestServer, t: &Value) -> Map<String, Value> {
    srv.state().keys.verify(t["id_token"].as_str().expect("an ID token")).unwrap()
}

fn at_claims(srv: &TestServer, t: &Value) -> Map<String, Value> {
    srv.state().keys.verify_typed(t["access_token"].as_str().unwrap(), "at+jwt").expect("a JWT access token")
}

async fn introspect(srv: &TestServer, c: &RegisteredClient, token: &str) -> Value {
    let r = srv
        .http
        .post(srv.url("/introspect"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn refresh(srv: &TestServer, c: &RegisteredClient, t: &Value) -> Value {
    let rt = t["refresh_token"].as_str().expect("a refresh token");
    let r = srv.token(c, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn groups_and_roles_reach_the_id_token_userinfo_jwt_access_token_and_introspection() {
    let srv = TestServer::start().await;
    let c = jwt_client(&srv).await;
    let alice = srv.add_user("alice").await;
    let eng = add_group(&srv, "eng").await;
    add_group(&srv, "ops").await;
    add_group(&srv, "unrelated").await;
    set_groups(&srv, &alice, &["ops", "eng"]).await;
    grant(&srv, to_user(&alice, "admin", None)).await;
    grant(&srv, to_group(&eng, "deployer", None)).await;
    // The same role directly and through a group is listed once.
    grant(&srv, to_group(&eng, "admin", None)).await;

    let t = tokens(&srv, &c, "alice", "openid groups roles", &[]).await;
    assert_eq!(t["scope"], "groups openid roles");
    let groups = vec!["eng".to_string(), "ops".to_string()];
    let roles = vec!["admin".to_string(), "deployer".to_string()];

    let id = id_claims(&srv, &t);
    assert_eq!(list(id.get("groups")), groups, "ID token: {id:?}");
    assert_eq!(list(id.get("roles")), roles, "ID token: {id:?}");
    let at = at_claims(&srv, &t);
    assert_eq!(list(at.get("groups")), groups, "access token: {at:?}");
    assert_eq!(list(at.get("roles")), roles, "access token: {at:?}");
    let ui = srv.userinfo(&t).await;
    assert_eq!(list(ui.get("groups")), groups, "UserInfo: {ui}");
    assert_eq!(list(ui.get("roles")), roles, "UserInfo: {ui}");
    let info = introspect(&srv, &c, t["access_token"].as_str().unwrap()).await;
    assert_eq!(info["active"], true);
    assert_eq!(list(info.get("groups")), groups, "introspection: {info}");
    assert_eq!(list(info.get("roles")), roles, "introspection: {info}");
    let info = introspect(&srv, &c, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(list(info.get("roles")), roles, "refresh token introspection: {info}");

    // Only what was asked for: `groups` alone brings no roles.
    let t = tokens(&srv, &c, "alice", "openid groups", &[]).await;
    let id = id_claims(&srv, &t);
    assert_eq!(list(id.get("groups")), groups);
    assert!(id.get("roles").is_none(), "{id:?}");
    assert!(at_claims(&srv, &t).get("roles").is_none());
    assert!(srv.userinfo(&t).await.get("roles").is_none());
}

#[tokio::test]
async fn a_per_client_role_reaches_only_that_client_and_a_global_role_every_client() {
    let srv = TestServer::start().await;
    let a = jwt_client(&srv).await;
    let b = jwt_client(&srv).await;
    let alice = srv.add_user("alice").await;
    let eng = add_group(&srv, "eng").await;
    set_groups(&srv, &alice, &["eng"]).await;
    grant(&srv, to_user(&alice, "everywhere", None)).await;
    grant(&srv, to_user(&alice, "editor-of-a", Some(&a))).await;
    grant(&srv, to_group(&eng, "auditor-of-a", Some(&a))).await;
    grant(&srv, to_user(&alice, "viewer-of-b", Some(&b))).await;

    let ta = tokens(&srv, &a, "alice", "openid roles", &[]).await;
    let want_a = ["auditor-of-a", "editor-of-a", "everywhere"];
    assert_eq!(list(id_claims(&srv, &ta).get("roles")), want_a);
    assert_eq!(list(at_claims(&srv, &ta).get("roles")), want_a);
    assert_eq!(list(srv.userinfo(&ta).await.get("roles")), want_a);
    assert_eq!(list(introspect(&srv, &a, ta["access_token"].as_str().unwrap()).await.get("roles")), want_a);

    let tb = tokens(&srv, &b, "alice", "openid roles", &[]).await;
    let want_b = ["everywhere", "viewer-of-b"];
    assert_eq!(list(id_claims(&srv, &tb).get("roles")), want_b);
    assert_eq!(list(at_claims(&srv, &tb).get("roles")), want_b);
    assert_eq!(list(srv.userinfo(&tb).await.get("roles")), want_b);
    // A resource server introspecting B's token sees B's roles, not its own.
    let rs = srv.add_client(ClientOpts { introspection: true, ..Default::default() }).await;
    grant(&srv, to_user(&alice, "rs-only", Some(&rs))).await;
    assert_eq!(list(introspect(&srv, &rs, tb["access_token"].as_str().unwrap()).await.get("roles")), want_b);
    // A client that may not see the token learns nothing, roles included.
    assert_eq!(introspect(&srv, &a, tb["access_token"].as_str().unwrap()).await, json!({"active": false}));
}

#[tokio::test]
async fn a_role_revoked_between_two_refreshes_is_gone_from_the_refreshed_tokens() {
    let srv = TestServer::start().await;
    let c = jwt_client(&srv).await;
    let alice = srv.add_user("alice").await;
    let eng = add_group(&srv, "eng").await;
    set_groups(&srv, &alice, &["eng"]).await;
    grant(&srv, to_user(&alice, "admin", None)).await;
    grant(&srv, to_group(&eng, "deployer", Some(&c))).await;

    let t0 = tokens(&srv, &c, "alice", "openid groups roles", &[]).await;
    let t1 = refresh(&srv, &c, &t0).await;
    assert_eq!(list(id_claims(&srv, &t1).get("roles")), ["admin", "deployer"]);
    assert_eq!(list(at_claims(&srv, &t1).get("roles")), ["admin", "deployer"]);

    // Revoke the direct role and take alice out of the group that carried the other one.
    assert!(srv.state().store.revoke_role(&to_user(&alice, "admin", None)).await.unwrap());
    set_groups(&srv, &alice, &[]).await;
    let t2 = refresh(&srv, &c, &t1).await;
    for (what, claims) in [("ID token", id_claims(&srv, &t2)), ("access token", at_claims(&srv, &t2))] {
        assert_eq!(list(claims.get("roles")), Vec::<String>::new(), "{what}: {claims:?}");
        assert_eq!(list(claims.get("groups")), Vec::<String>::new(), "{what}: {claims:?}");
    }
    // The earlier JWT keeps what it was issued with; UserInfo and introspection answer as of now.
    assert_eq!(list(at_claims(&srv, &t1).get("roles")), ["admin", "deployer"]);
    assert_eq!(list(srv.userinfo(&t1).await.get("roles")), Vec::<String>::new());
    assert_eq!(
        list(introspect(&srv, &c, t1["access_token"].as_str().unwrap()).await.get("roles")),
        Vec::<String>::new()
    );

    // A grant made now shows at the next refresh.
    grant(&srv, to_user(&alice, "on-call", Some(&c))).await;
    let t3 = refresh(&srv, &c, &t2).await;
    assert_eq!(list(id_claims(&srv, &t3).get("roles")), ["on-call"]);
    assert_eq!(list(at_claims(&srv, &t3).get("roles")), ["on-call"]);
}

#[tokio::test]
async fn opaque_access_tokens_answer_memberships_at_introspection_and_userinfo_time() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts { skip_consent: true, ..Default::default() }).await;
    let alice = srv.add_user("alice").await;
    grant(&srv, to_user(&alice, "admin", None)).await;
    let t = tokens(&srv, &c, "alice", "openid roles", &[]).await;
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(at.split('.').count(), 1, "an opaque token");
    assert_eq!(list(introspect(&srv, &c, at).await.get("roles")), ["admin"]);
    assert_eq!(list(srv.userinfo(&t).await.get("roles")), ["admin"]);
    srv.state().store.revoke_role(&to_user(&alice, "admin", None)).await.unwrap();
    assert_eq!(list(introspect(&srv, &c, at).await.get("roles")), Vec::<String>::new());
    assert_eq!(list(srv.userinfo(&t).await.get("roles")), Vec::<String>::new());
}

#[tokio::test]
async fn without_the_scopes_no_token_or_response_carries_groups_or_roles() {
    let srv = TestServer::start().await;
    let c = jwt_client(&srv).await;
    let alice = srv.add_user("alice").await;
    add_group(&srv, "eng").await;
    set_groups(&srv, &alice, &["eng"]).await;
    grant(&srv, to_user(&alice, "admin", None)).await;

    let t = tokens(&srv, &c, "alice", "openid profile email", &[]).await;
    let t2 = refresh(&srv, &c, &t).await;
    for t in [&t, &t2] {
        let id = id_claims(&srv, t);
        let at = at_claims(&srv, t);
        let ui = srv.userinfo(t).await;
        let info = introspect(&srv, &c, t["access_token"].as_str().unwrap()).await;
        assert_eq!(info["active"], true);
        for (what, v) in [
            ("ID token", Value::Object(id)),
            ("access token", Value::Object(at)),
            ("UserInfo", ui),
            ("introspection", info),
        ] {
            assert!(v.get("groups").is_none() && v.get("roles").is_none(), "{what}: {v}");
        }
    }
}

#[tokio::test]
async fn a_client_not_allowed_the_scopes_gets_neither_by_scope_nor_by_claims_parameter() {
    let srv = TestServer::start().await;
    let c = srv
        .add_client(ClientOpts {
            skip_consent: true,
            access_token_format: Some(AccessTokenFormat::Jwt),
            scopes: vec!["openid".into(), "email".into()],
            ..Default::default()
        })
        .await;
    let alice = srv.add_user("alice").await;
    grant(&srv, to_user(&alice, "admin", None)).await;
    let claims = r#"{"id_token":{"roles":null,"groups":null},"userinfo":{"roles":{"essential":true}}}"#;
    let t = tokens(&srv, &c, "alice", "openid email roles groups", &[("claims", claims)]).await;
    assert_eq!(t["scope"], "email openid", "unregistered scopes are dropped");
    assert!(id_claims(&srv, &t).get("roles").is_none());
    assert!(at_claims(&srv, &t).get("roles").is_none());
    assert!(srv.userinfo(&t).await.get("roles").is_none());
}

#[tokio::test]
async fn the_claims_parameter_asks_for_roles_where_the_client_may_have_them() {
    let srv = TestServer::start().await;
    let c = jwt_client(&srv).await;
    let alice = srv.add_user("alice").await;
    add_group(&srv, "eng").await;
    set_groups(&srv, &alice, &["eng"]).await;
    grant(&srv, to_user(&alice, "admin", None)).await;
    // Scope openid only; the ID token asks for groups, UserInfo for roles.
    let claims = r#"{"id_token":{"groups":null},"userinfo":{"roles":{"essential":true}}}"#;
    let t = tokens(&srv, &c, "alice", "openid", &[("claims", claims)]).await;
    let id = id_claims(&srv, &t);
    assert_eq!(list(id.get("groups")), ["eng"]);
    assert!(id.get("roles").is_none(), "{id:?}");
    let ui = srv.userinfo(&t).await;
    assert_eq!(list(ui.get("roles")), ["admin"]);
    assert!(ui.get("groups").is_none(), "{ui}");
    // The access token's claims follow its scope only.
    let at = at_claims(&srv, &t);
    assert!(at.get("groups").is_none() && at.get("roles").is_none(), "{at:?}");
}

#[tokio::test]
async fn the_consent_page_names_groups_and_roles_in_plain_words() {
    let srv = TestServer::start().await;
    let c = srv.add_client(ClientOpts::default()).await;
    srv.add_user("alice").await;
    let b = srv.browser();
    let (url, ..) = authorize_url(&srv.base, &c, "openid groups roles", &[]);
    let l = b.login(b.navigate(&url).await, "alice", PASSWORD).await;
    let Landing::Page(200, path, body) = &l else { panic!("{l:?}") };
    assert!(path.starts_with("/consent"), "{path}");
    assert!(body.contains("See your group memberships"), "{body}");
    assert!(body.contains("See your roles in this application"), "{body}");
}

#[tokio::test]
async fn discovery_lists_the_scopes_and_claims() {
    let srv = TestServer::start().await;
    let d = srv.get_json("/.well-known/openid-configuration").await;
    for member in ["scopes_supported", "claims_supported"] {
        let v = d[member].as_array().unwrap();
        for name in ["groups", "roles"] {
            assert!(v.contains(&json!(name)), "{member} lacks {name}: {v:?}");
        }
    }
}

#[tokio::test]
async fn client_credentials_cannot_ask_for_groups_or_roles() {
    let srv = TestServer::start().await;
    let c = srv
        .add_client(ClientOpts {
            grant_types: vec![latchkey_core::model::GrantType::ClientCredentials],
            scopes: vec!["roles".into(), "groups".into(), "api".into()],
            ..Default::default()
        })
        .await;
    let r = srv.token(&c, &[("grant_type", "client_credentials"), ("scope", "roles")]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_scope");
    let r = srv.token(&c, &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.json::<Value>().await.unwrap()["scope"], "api");
}
