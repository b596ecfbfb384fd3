use crate::support::{TestDb, cli, exec_sql, free_port, latchkey_bin, query_i64, stderr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn one_line(s: &str) -> bool {
    s.trim_end().lines().count() == 1
}

#[tokio::test]
async fn bad_configuration_exits_non_zero_with_one_line_naming_the_key() {
    let db = TestDb::fresh().await;
    for (k, v, key) in [
        ("LATCHKEY_LIFETIMES__ACCESS_TOKEN", "0", "lifetimes.access_token"),
        ("LATCHKEY_ISSUER", "http://id.example.com", "issuer"),
        ("LATCHKEY_BIND", "not-an-address", "bind"),
        ("LATCHKEY_SIGNING__DEFAULT_ALGORITHM", "HS256", "signing.default_algorithm"),
        ("LATCHKEY_LIFETIMES__SESION", "5", "lifetimes.sesion"),
    ] {
        let o = cli(&db, &[(k, v)], &["serve"], None);
        assert_ne!(o.status.code(), Some(0));
        let err = stderr(&o);
        assert!(one_line(&err), "{k}: {err}");
        assert!(err.contains(key), "{k}: {err}");
        assert!(!err.contains("panicked"));
    }
    let o = cli(&db, &[], &["--config", "/nonexistent/latchkey.toml", "serve"], None);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("/nonexistent/latchkey.toml"));
}

#[tokio::test]
async fn unreachable_database_is_a_clean_failure() {
    let db = TestDb::fresh().await;
    let o = cli(
        &db,
        &[
            ("LATCHKEY_DATABASE_URL", "postgres://latchkey:hunter2@127.0.0.1:1/none"),
            ("LATCHKEY_DATABASE__ACQUIRE_TIMEOUT", "2"),
        ],
        &["client", "list"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(one_line(&err), "{err}");
    assert!(err.contains("cannot open database"), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
}

#[tokio::test]
async fn wrong_master_key_and_corrupt_key_rows_stop_start_up_without_writing() {
    let db = TestDb::fresh().await;
    let key_a = latchkey_signer::MasterKey::generate().encode();
    let key_b = latchkey_signer::MasterKey::generate().encode();
    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", &key_a)], &["keys", "list"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let keys_before = query_i64(&db, "SELECT COUNT(*) FROM signing_keys").await;

    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", &key_b)], &["keys", "rotate"], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(one_line(&err) && err.contains("master key does not match"), "{err}");
    assert_eq!(query_i64(&db, "SELECT COUNT(*) FROM signing_keys").await, keys_before, "partial write");

    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", "too-short")], &["keys", "list"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("LATCHKEY_MASTER_KEY"));

    exec_sql(&db, "UPDATE signing_keys SET private_key = 'v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' WHERE alg = 'ES256'").await;
    let o = cli(&db, &[("LATCHKEY_MASTER_KEY", &key_a)], &["keys", "list"], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(one_line(&err) && err.contains("signing key") && err.contains("cannot be used"), "{err}");
}

struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_serve(db: &TestDb, port: u16) -> Serve {
    let mut cmd = Command::new(latchkey_bin());
    cmd.arg("serve").env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in db.env() {
        cmd.env(k, v);
    }
    cmd.env("LATCHKEY_BIND", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_ISSUER", format!("http://127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Serve(cmd.spawn().unwrap())
}

async fn wait_for_discovery(port: u16, within: Duration) -> Option<serde_json::Value> {
    let http = reqwest::Client::new();
    let start = Instant::now();
    while start.elapsed() < within {
        if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/.well-known/openid-configuration")).send().await {
            if r.status() == 200 {
                return r.json().await.ok();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn serve_answers_discovery_within_a_second_on_an_existing_database_and_a_restart_keeps_everything() {
    let db = TestDb::fresh().await;
    // First start creates the database and keys (key generation may take a moment).
    let o = cli(&db, &[], &["migrate"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(&db, &[], &["client", "add", "--name", "A", "--redirect-uri", "https://a.example/cb", "--json"], None);
    assert!(o.status.success());
    let o = cli(&db, &[], &["user", "add", "--username", "u", "--password-stdin"], Some("pw\n"));
    assert!(o.status.success());
    let port = free_port();
    let mut first = spawn_serve(&db, port);
    assert!(wait_for_discovery(port, Duration::from_secs(20)).await.is_some(), "server did not come up");
    let jwks1: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port}/jwks.json")).await.unwrap().json().await.unwrap();

    // Commands work while the server runs on the same database.
    let o = cli(&db, &[], &["client", "add", "--name", "B", "--redirect-uri", "https://b.example/cb"], None);
    assert!(o.status.success(), "{}", stderr(&o));

    // SIGTERM: graceful shutdown, exit 0.
    let pid = first.0.id() as i32;
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let status = first.0.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    drop(first);

    let port = free_port();
    let _second = spawn_serve(&db, port);
    let doc = wait_for_discovery(port, Duration::from_secs(1)).await;
    assert!(doc.is_some(), "no discovery answer within a second of start on an existing database");
    let jwks2: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port}/jwks.json")).await.unwrap().json().await.unwrap();
    assert_eq!(jwks1, jwks2, "keys changed across a restart");
    assert_eq!(query_i64(&db, "SELECT COUNT(*) FROM clients").await, 2);
    assert_eq!(query_i64(&db, "SELECT COUNT(*) FROM users").await, 1);
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// Issue 13: the database holds password hashes, personal data and the audit log. Whatever the
/// umask, the data directory is 0700 and the database with its `-wal` and `-shm` files 0600
/// while a server runs; a backup is 0600 too.
#[tokio::test]
async fn the_data_directory_database_wal_shm_and_backups_are_private_to_the_owner() {
    let db = TestDb::fresh().await;
    let port = free_port();
    let srv = spawn_serve(&db, port);
    assert!(wait_for_discovery(port, Duration::from_secs(30)).await.is_some(), "the server did not start");
    let dir = crate::support::data_dir(&db);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("master.key")), 0o600);
    if !db.is_postgres() {
        for f in ["latchkey.db", "latchkey.db-wal", "latchkey.db-shm"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
    }
    drop(srv);
    if !db.is_postgres() {
        let copy = db.dir.path().join("copy.db");
        let o = cli(&db, &[], &["backup", copy.to_str().unwrap()], None);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(mode(&copy), 0o600);
    }
}

/// Issue 13: files made looser by hand (or by an older version) are not changed behind the
/// operator's back: every start warns, one line each, naming the path and its mode.
#[tokio::test]
async fn a_database_readable_by_others_gets_a_warning_naming_it_at_start() {
    let db = TestDb::fresh().await;
    if db.is_postgres() {
        return; // No database file: PostgreSQL's own storage is its business.
    }
    let o = cli(&db, &[], &["migrate"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("mode"), "{}", stderr(&o));
    let dir = crate::support::data_dir(&db);
    let file = dir.join("latchkey.db");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = cli(&db, &[], &["client", "list"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let line = |p: &std::path::Path, m: &str| {
        err.lines().any(|l| l.contains("WARN") && l.contains(&p.display().to_string()) && l.contains(m))
    };
    assert!(line(&dir, "0755"), "{err}");
    assert!(line(&file, "0644"), "{err}");
    assert_eq!((mode(&dir), mode(&file)), (0o755, 0o644), "left as they were");
}
