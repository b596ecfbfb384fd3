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
        s
    }

    /// Environment for the CLI binary.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("LATCHKEY_DATA_DIR".to_string(), self.dir.path().join("data").display().to_string()),
            ("LATCHKEY_ARGON2__MEMORY_KIB".into(), "256".into()),
            ("LATCHKEY_ARGON2__ITERATIONS".into(), "1".into()),
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

    pub async fn start_on(
        db: Arc<TestDb>,
        master: MasterKey,
        clock: ManualClock,
        f: impl FnOnce(&mut Settings),
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut s = db.settings();
        s.issuer = format!("http://127.0.0.1:{port}");
        s.bind = format!("127.0.0.1:{port}");
        f(&mut s);
        s.validate().unwrap();
        let state = latchkey::server::build_state(s, Arc::new(clock.clone()), master.clone()).await.unwrap();
        let server = Server::spawn(state, listener).unwrap();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        TestServer { base: format!("http://127.0.0.1:{port}"), server: Some(server), clock, db, master, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
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
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
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
