//! Test support: fresh databases on the backend chosen by `TEST_DATABASE_URL`, an in-process
//! server on a random loopback port with a manual clock, and the CLI binary.
//!
//! `TEST_DATABASE_URL` unset (or `sqlite`): a SQLite file in a temporary directory per test.
//! `TEST_DATABASE_URL=postgres://user@host:port/NAME`: each test gets a fresh database
//! `NAME_<pid>_<n>` cloned from a migrated template; an unreachable server fails the test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use latchkey::Server;
use latchkey_core::{ManualClock, Settings};
use latchkey_signer::MasterKey;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::OnceCell;

/// Where a test's data lives.
pub struct TestDb {
    pub dir: tempfile::TempDir,
    /// Empty for SQLite (the default file in `dir`), else a postgres URL.
    pub url: String,
}

impl TestDb {
    pub async fn fresh() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = match pg_base() {
            None => String::new(),
            Some(base) => fresh_pg_database(&base).await,
        };
        TestDb { dir, url }
    }

    pub fn is_postgres(&self) -> bool {
        !self.url.is_empty()
    }

    /// Settings pointing at this database, cheap argon2 so tests run fast.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        s.data_dir = self.dir.path().join("data");
        s.database_url = self.url.clone();
        s.argon2.memory_kib = 256;
        s.argon2.iterations = 1;
        s.signing.rotation_delay = 600;
        s.signing.key_refresh_interval = 5;
        s.log_filter = "warn".into();
        // As the default (a loopback listener of its own), on a free port: tests run in parallel.
        s.metrics.bind = "127.0.0.1:0".into();
        s
    }

    /// Environment for the CLI binary.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("LATCHKEY_DATA_DIR".to_string(), self.dir.path().join("data").display().to_string()),
            ("LATCHKEY_ARGON2__MEMORY_KIB".into(), "256".into()),
            ("LATCHKEY_ARGON2__ITERATIONS".into(), "1".into()),
            ("LATCHKEY_METRICS__BIND".into(), "127.0.0.1:0".into()),
        ];
        if !self.url.is_empty() {
            v.push(("LATCHKEY_DATABASE_URL".into(), self.url.clone()));
        }
        v
    }
}

fn pg_base() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => Some(u),
        Ok(u) if u.is_empty() || u == "sqlite" => None,
        Ok(u) => panic!("TEST_DATABASE_URL must be `sqlite` or a postgres:// URL, not `{u}`"),
        Err(_) => None,
    }
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn split_db(url: &str) -> (String, String) {
    let u = url::Url::parse(url).expect("TEST_DATABASE_URL is not a URL");
    let name = u.path().trim_start_matches('/').to_string();
    let name = if name.is_empty() { "latchkey_test".to_string() } else { name };
    let mut admin = u.clone();
    admin.set_path("/postgres");
    (admin.to_string(), name)
}

fn with_db(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_path(&format!("/{db}"));
    u.to_string()
}

async fn admin_exec(admin: &str, sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at TEST_DATABASE_URL is unreachable: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    c.close().await.ok();
}

async fn fresh_pg_database(base: &str) -> String {
    let (admin, name) = split_db(base);
    let pid = std::process::id();
    let template = TEMPLATE
        .get_or_init(|| async {
            let tpl = format!("{name}_{pid}_tpl");
            admin_exec(&admin, &format!("DROP DATABASE IF EXISTS \"{tpl}\"")).await;
            admin_exec(&admin, &format!("CREATE DATABASE \"{tpl}\"")).await;
            let mut s = Settings::default();
            s.database_url = with_db(base, &tpl);
            let store = latchkey_storage::postgres::PgStore::open(&s).await.expect("migrating the template");
            use latchkey_storage::HealthStore;
            store.close().await;
            tpl
        })
        .await;
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let db = format!("{name}_{pid}_{n}");
    admin_exec(&admin, &format!("CREATE DATABASE \"{db}\" TEMPLATE \"{template}\"")).await;
    with_db(base, &db)
}

/// An in-process server on 127.0.0.1:<random> with a manual clock.
pub struct TestServer {
    pub base: String,
    pub server: Option<Server>,
    pub clock: ManualClock,
    pub db: Arc<TestDb>,
    pub master: MasterKey,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut Settings)) -> TestServer {
        let db = Arc::new(TestDb::fresh().await);
        Self::start_on(db, MasterKey::generate(), ManualClock::starting_now(), f).await
    }

    /// With `serve --demo`: the demo user and the demo relying party at `/demo`. Returns the
    /// demo user's password too.
    pub async fn start_demo() -> (TestServer, String) {
        let db = Arc::new(TestDb::fresh().await);
        let mut demo_password = String::new();
        let srv =
            Self::start_inner(db, MasterKey::generate(), ManualClock::starting_now(), |_| {}, Some(&mut demo_password))
                .await;
        (srv, demo_password)
    }

    pub async fn start_on(
        db: Arc<TestDb>,
        master: MasterKey,
        clock: ManualClock,
        f: impl FnOnce(&mut Settings),
    ) -> TestServer {
        Self::start_inner(db, master, clock, f, None).await
    }

    async fn start_inner(
        db: Arc<TestDb>,
        master: MasterKey,
        clock: ManualClock,
        f: impl FnOnce(&mut Settings),
        demo: Option<&mut String>,
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut s = db.settings();
        s.issuer = format!("http://127.0.0.1:{port}");
        s.bind = format!("127.0.0.1:{port}");
        f(&mut s);
        s.validate().unwrap();
        let state = latchkey::server::build_state(s, Arc::new(clock.clone()), master.clone()).await.unwrap();
        let server = match demo {
            None => Server::spawn(state, listener).unwrap(),
            Some(out) => {
                let info = latchkey::demo::setup(&state).await.unwrap();
                *out = info.new_password.clone().unwrap();
                Server::spawn_with(state, listener, Some(&info)).unwrap()
            }
        };
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        TestServer { base: format!("http://127.0.0.1:{port}"), server: Some(server), clock, db, master, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Where `/metrics` is served: the admin listener (`metrics.bind`), else the main one.
    pub fn metrics_base(&self) -> String {
        match self.server.as_ref().and_then(|s| s.metrics_addr) {
            Some(a) => format!("http://{a}"),
            None => self.base.clone(),
        }
    }

    pub fn state(&self) -> &latchkey_web::AppState {
        &self.server.as_ref().unwrap().state
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// Re-read the key table now (as the background job does on its timer).
    pub async fn reload_keys(&self) {
        latchkey::jobs::refresh_keys(self.state()).await;
    }

    pub async fn stop(mut self) -> (Arc<TestDb>, MasterKey, ManualClock) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        (self.db.clone(), self.master.clone(), self.clock.clone())
    }
}

/// The CLI binary under test.
pub fn latchkey_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_latchkey-under-test"))
}

/// Run `latchkey ARGS` with the test database's environment and optional stdin.
pub fn cli(db: &TestDb, extra_env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(latchkey_bin());
    cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in db.env() {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        // A process that rejects its arguments may exit before reading stdin: a broken pipe is not a failure.
        if let Err(e) = child.stdin.take().unwrap().write_all(input.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing stdin: {e}");
        }
    }
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn data_dir(db: &TestDb) -> PathBuf {
    db.dir.path().join("data")
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Run raw SQL against the test database (to simulate corruption or inspect rows).
pub async fn exec_sql(db: &TestDb, sql: &str) {
    let s = db.settings();
    if db.is_postgres() {
        let st = latchkey_storage::postgres::PgStore::connect(&s).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(st.pool()).await.unwrap();
        st.pool().close().await;
    } else {
        let st = latchkey_storage::sqlite::SqliteStore::connect(&s).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(st.pool()).await.unwrap();
        st.pool().close().await;
    }
}

/// A single integer from SQL (e.g. a COUNT).
pub async fn query_i64(db: &TestDb, sql: &'static str) -> i64 {
    let s = db.settings();
    if db.is_postgres() {
        let st = latchkey_storage::postgres::PgStore::connect(&s).await.unwrap();
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(st.pool()).await.unwrap();
        st.pool().close().await;
        n
    } else {
        let st = latchkey_storage::sqlite::SqliteStore::connect(&s).await.unwrap();
        let (n,): (i64,) = sqlx::query_as(sql).fetch_one(st.pool()).await.unwrap();
        st.pool().close().await;
        n
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---- fixtures and a scripted browser for the sign-in flow ----

use latchkey_core::SecretToken;
use latchkey_core::model::{Client, ClientAuthMethod, GrantType, User};

#[derive(Clone)]
pub struct RegisteredClient {
    pub id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
}

pub struct ClientOpts {
    pub auth_method: ClientAuthMethod,
    pub redirect_uris: Vec<String>,
    pub skip_consent: bool,
    pub require_pkce: bool,
    pub scopes: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub alg: Option<latchkey_core::model::SigningAlg>,
    pub refresh_without_offline_access: bool,
    pub access_token_format: Option<latchkey_core::model::AccessTokenFormat>,
    pub resources: Vec<String>,
    pub jwks: Option<String>,
    pub introspection: bool,
}

impl Default for ClientOpts {
    fn default() -> Self {
        Self {
            auth_method: ClientAuthMethod::ClientSecretBasic,
            redirect_uris: vec!["https://rp.example/cb".into()],
            skip_consent: false,
            require_pkce: false,
            scopes: ["openid", "profile", "email", "address", "phone", "groups", "roles", "offline_access"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            alg: None,
            refresh_without_offline_access: false,
            access_token_format: None,
            resources: vec![],
            jwks: None,
            introspection: false,
        }
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

impl TestServer {
    pub async fn add_client(&self, o: ClientOpts) -> RegisteredClient {
        let secret = o.auth_method.uses_secret().then(SecretToken::generate);
        let now = latchkey_core::Clock::now(&self.clock);
        let client_id = format!("client-{}", &SecretToken::generate().expose()[..10]);
        let secret_enc = match (&secret, o.auth_method) {
            (Some(s), ClientAuthMethod::ClientSecretJwt) => {
                Some(self.master.encrypt(s.expose().as_bytes(), &format!("client_secret:{client_id}")).unwrap())
            }
            _ => None,
        };
        let c = Client {
            client_id,
            name: "Test RP".into(),
            secret_hash: secret.as_ref().map(|s| s.hash()),
            redirect_uris: o.redirect_uris.clone(),
            post_logout_redirect_uris: vec![],
            auth_method: o.auth_method,
            grant_types: o.grant_types,
            scopes: o.scopes,
            skip_consent: o.skip_consent,
            require_pkce: o.require_pkce || o.auth_method == ClientAuthMethod::None,
            id_token_signed_response_alg: o.alg,
            access_token_format: o.access_token_format,
            refresh_without_offline_access: o.refresh_without_offline_access,
            resources: o.resources,
            jwks: o.jwks,
            jwks_uri: None,
            secret_enc,
            introspection: o.introspection,
            created_at: now,
            updated_at: now,
            ..Default::default()
        };
        self.state().store.create_client(&c).await.unwrap();
        RegisteredClient {
            id: c.client_id,
            secret: secret.map(|s| s.expose().to_owned()),
            redirect_uri: o.redirect_uris[0].clone(),
        }
    }

    pub async fn add_user(&self, username: &str) -> User {
        let now = latchkey_core::Clock::now(&self.clock);
        let hash = self.state().passwords.hash(PASSWORD.into()).await.unwrap();
        let u = User {
            id: uuid_like(),
            username: username.into(),
            password_hash: hash,
            email: Some(format!("{username}@example.com")),
            email_verified: true,
            name: Some(format!("{username} Example")),
            claims: serde_json::json!({"given_name": username, "family_name": "Example", "locale": "en-GB",
                "phone_number": "+1 555 0100", "address": {"locality": "Springfield", "country": "US"}})
            .as_object()
            .unwrap()
            .clone(),
            created_at: now,
            updated_at: now,
        };
        self.state().store.create_user(&u).await.unwrap();
        u
    }

    /// Change a client behind the server's back, as the CLI does, and drop the server's cached
    /// copy (the server sees the CLI's changes within `database.client_cache_ms`).
    pub async fn update_client(&self, c: &Client) -> bool {
        let ok = self.state().store.update_client(c).await.unwrap();
        self.state().clients.forget(&c.client_id);
        ok
    }

    pub fn browser(&self) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: self.base.clone(),
        }
    }
}

fn uuid_like() -> String {
    SecretToken::generate().expose()[..32].to_string()
}

pub fn pkce_pair() -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let verifier = SecretToken::generate().expose().to_string();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A scripted browser: keeps cookies, follows nothing by itself.
#[derive(Clone)]
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
}

/// Where a step of the flow ended.
#[derive(Debug)]
pub enum Landing {
    /// A page on the server (status, path+query, body).
    Page(u16, String, String),
    /// A redirect to the client (the full Location).
    Client(String),
}

pub fn hidden(body: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let i = body.find(&needle)? + needle.len();
    let j = body[i..].find('"')? + i;
    Some(body[i..j].replace("&amp;", "&").replace("&#x2d;", "-").replace("&#45;", "-"))
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

impl Browser {
    /// GET `url` (absolute or a path on the server) and follow redirects on the server until a
    /// page answers or a redirect leaves for the client.
    pub async fn navigate(&self, url: &str) -> Landing {
        let mut url = if url.starts_with("http") { url.to_string() } else { format!("{}{}", self.base, url) };
        for _ in 0..10 {
            let r = self.http.get(&url).send().await.unwrap();
            if let Some(l) = self.follow(r, &mut url).await {
                return l;
            }
        }
        panic!("redirect loop at {url}");
    }

    async fn follow(&self, r: reqwest::Response, url: &mut String) -> Option<Landing> {
        let status = r.status().as_u16();
        if (300..400).contains(&status) {
            let loc = r.headers()["location"].to_str().unwrap().to_string();
            let abs = if loc.starts_with('/') { format!("{}{}", self.base, loc) } else { loc };
            if !abs.starts_with(&self.base) {
                return Some(Landing::Client(abs));
            }
            *url = abs;
            None
        } else {
            let path = url.trim_start_matches(&self.base).to_string();
            Some(Landing::Page(status, path, r.text().await.unwrap()))
        }
    }

    /// POST a form to a path on the server, then follow redirects.
    pub async fn submit(&self, path: &str, form: &[(&str, &str)]) -> Landing {
        let mut url = format!("{}{}", self.base, path);
        let r = self.http.post(&url).form(form).send().await.unwrap();
        if let Some(l) = self.follow(r, &mut url).await {
            return l;
        }
        self.navigate(&url).await
    }

    pub async fn login(&self, landing: Landing, username: &str, password: &str) -> Landing {
        let Landing::Page(200, path, body) = landing else { panic!("expected the login page, got {landing:?}") };
        assert!(path.starts_with("/login?"), "expected the login page, got {path}");
        let interaction = hidden(&body, "interaction").unwrap();
        let csrf = hidden(&body, "csrf").unwrap();
        self.submit(
            "/login",
            &[("interaction", &interaction), ("csrf", &csrf), ("username", username), ("password", password)],
        )
        .await
    }

    pub async fn consent(&self, landing: Landing, decision: &str) -> Landing {
        let Landing::Page(200, path, body) = landing else { panic!("expected the consent page, got {landing:?}") };
        assert!(path.starts_with("/consent?"), "expected the consent page, got {path}");
        let interaction = hidden(&body, "interaction").unwrap();
        let csrf = hidden(&body, "csrf").unwrap();
        self.submit("/consent", &[("interaction", &interaction), ("csrf", &csrf), ("decision", decision)]).await
    }
}

/// An authorization request URL with PKCE; returns (url, state, nonce, verifier).
pub fn authorize_url(
    base: &str,
    c: &RegisteredClient,
    scope: &str,
    extra: &[(&str, &str)],
) -> (String, String, String, String) {
    let (verifier, challenge) = pkce_pair();
    let state = SecretToken::generate().expose()[..16].to_string();
    let nonce = SecretToken::generate().expose()[..16].to_string();
    let mut u = url::Url::parse(&format!("{base}/authorize")).unwrap();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &c.id)
            .append_pair("redirect_uri", &c.redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    (u.to_string(), state, nonce, verifier)
}

impl TestServer {
    /// Run the whole browser part (authorize → login → consent) and return the code.
    pub async fn sign_in(
        &self,
        b: &Browser,
        c: &RegisteredClient,
        username: &str,
        scope: &str,
    ) -> (String, String, String) {
        let (url, state, nonce, verifier) = authorize_url(&self.base, c, scope, &[]);
        let mut l = b.navigate(&url).await;
        if matches!(&l, Landing::Page(_, p, _) if p.starts_with("/login")) {
            l = b.login(l, username, PASSWORD).await;
        }
        if matches!(&l, Landing::Page(_, p, _) if p.starts_with("/consent")) {
            l = b.consent(l, "approve").await;
        }
        let Landing::Client(loc) = l else { panic!("expected a redirect to the client, got {l:?}") };
        assert_eq!(query_param(&loc, "state").as_deref(), Some(state.as_str()));
        assert_eq!(query_param(&loc, "iss").as_deref(), Some(self.base.as_str()));
        (query_param(&loc, "code").expect("no code"), nonce, verifier)
    }

    /// POST /token with client_secret_basic (or client_id for public clients).
    pub async fn token(&self, c: &RegisteredClient, form: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.http.post(self.url("/token"));
        let mut form: Vec<(&str, &str)> = form.to_vec();
        match &c.secret {
            Some(s) => req = req.basic_auth(&c.id, Some(s)),
            None => form.push(("client_id", &c.id)),
        }
        req.form(&form).send().await.unwrap()
    }

    /// `GET /userinfo` with the access token of a token response; asserts 200.
    pub async fn userinfo(&self, tokens: &serde_json::Value) -> serde_json::Value {
        let at = tokens["access_token"].as_str().unwrap();
        let r = self.http.get(self.url("/userinfo")).bearer_auth(at).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn redeem(&self, c: &RegisteredClient, code: &str, verifier: &str) -> reqwest::Response {
        self.token(
            c,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &c.redirect_uri),
                ("code_verifier", verifier),
            ],
        )
        .await
    }
}

/// How many session rows hold `raw` as their id (must be 0: ids are stored hashed).
pub async fn query_i64_sessions(srv: &TestServer, raw: &str) -> i64 {
    let db = &srv.db;
    let s = db.settings();
    let sql = "SELECT COUNT(*) FROM sessions WHERE id_hash = $1";
    if db.is_postgres() {
        let st = latchkey_storage::postgres::PgStore::connect(&s).await.unwrap();
        let (n,): (i64,) = sqlx::query_as(sql).bind(raw).fetch_one(st.pool()).await.unwrap();
        n
    } else {
        let st = latchkey_storage::sqlite::SqliteStore::connect(&s).await.unwrap();
        let (n,): (i64,) = sqlx::query_as(sql).bind(raw).fetch_one(st.pool()).await.unwrap();
        n
    }
}

/// A compact JWS signed over a header and payload given as text, so a test can send what a
/// JOSE library would never produce (a repeated member name, say).
pub fn sign_raw(signer: &dyn josekit::jws::JwsSigner, header: &str, payload: &str) -> String {
    use base64::Engine;
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let message = format!("{}.{}", enc(header.as_bytes()), enc(payload.as_bytes()));
    let sig = signer.sign(message.as_bytes()).unwrap();
    format!("{message}.{}", enc(&sig))
}
