//! The server under test: `latchkey serve` as a child process on a free loopback port with a
//! fresh data directory, on SQLite or on a fresh PostgreSQL database (dropped afterwards), seeded
//! through the CLI. Its peak RSS comes from /proc.

use anyhow::{Context, Result, anyhow, bail};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::client::Conn;
use crate::flow::{ClientCreds, UserCreds};

/// Where the servers keep their data.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// A PostgreSQL server URL; each server gets a fresh database on it, named after its path.
    Postgres(url::Url),
}

impl Backend {
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite => "SQLite".into(),
            Backend::Postgres(u) => {
                format!("PostgreSQL ({}:{})", u.host_str().unwrap_or("?"), u.port().unwrap_or(5432))
            }
        }
    }
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// A fresh PostgreSQL database, dropped by [`PgDatabase::drop_it`].
struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create(server: &url::Url) -> Result<Self> {
        let base = server.path().trim_start_matches('/');
        let base = if base.is_empty() { "latchkey_bench" } else { base };
        if !base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            bail!("--database-url: use a database name of letters, digits and `_` (got `{base}`)");
        }
        let n = DATABASES.fetch_add(1, Ordering::SeqCst);
        let name = format!("{base}_bench_{}_{n}", std::process::id());
        let mut admin = server.clone();
        admin.set_path("/postgres");
        let mut url = server.clone();
        url.set_path(&format!("/{name}"));
        let db = Self { admin: admin.to_string(), name, url: url.to_string() };
        db.exec(&format!("CREATE DATABASE \"{}\"", db.name)).await?;
        Ok(db)
    }

    async fn exec(&self, sql: &str) -> Result<()> {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&self.admin)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(&self.admin)))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut c).await.with_context(|| sql.to_owned())?;
        c.close().await.ok();
        Ok(())
    }

    async fn drop_it(&self) {
        if let Err(e) = self.exec(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).await {
            eprintln!("latchkey-bench: could not drop database {}: {e:#}", self.name);
        }
    }
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A running `latchkey serve`.
pub struct Server {
    child: Child,
    pid: u32,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, also the issuer.
    pub base: String,
    bin: PathBuf,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    pg: Option<PgDatabase>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// Start a server with `extra` settings (environment `LATCHKEY_…`) and wait until it is ready.
    pub async fn start(bin: &Path, backend: &Backend, extra: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("latchkey-bench-").tempdir()?;
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres(u) => Some(PgDatabase::create(u).await?),
        };
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let base = format!("http://{addr}");
        let mut env: Vec<(String, String)> = vec![
            ("LATCHKEY_BIND".into(), addr.to_string()),
            ("LATCHKEY_ISSUER".into(), base.clone()),
            ("LATCHKEY_DATA_DIR".into(), dir.path().join("data").display().to_string()),
            ("LATCHKEY_LOG_FILTER".into(), "warn".into()),
            // Metrics are recorded as in production; their loopback listener on a free port, so
            // instances started together do not compete for the default one.
            ("LATCHKEY_METRICS__BIND".into(), "127.0.0.1:0".into()),
            // Codes are made before the timed phase and redeemed during it.
            ("LATCHKEY_LIFETIMES__AUTHORIZATION_CODE".into(), "600".into()),
        ];
        if let Some(db) = &pg {
            env.push(("LATCHKEY_DATABASE_URL".into(), db.url.clone()));
        }
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let mut cmd = command(bin, &env);
        cmd.arg("serve").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(log)).kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("the server exited at once"))?;
        let mut srv = Self { child, pid, addr, base, bin: bin.to_owned(), env, dir, pg };
        if let Err(e) = srv.wait_ready().await {
            let log = srv.log_tail();
            srv.stop().await;
            bail!("{e:#}\nserver log:\n{log}");
        }
        Ok(srv)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut conn = Conn::new(self.addr, Duration::from_secs(2))?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited during start-up ({status})");
            }
            if let Ok(r) = conn.get("/readyz", &[]).await
                && r.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the server was not ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines.iter().skip(lines.len().saturating_sub(20)).copied().collect::<Vec<_>>().join("\n")
    }

    /// Run `latchkey ARGS` against this server's database; its stdout.
    pub async fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut cmd = command(&self.bin, &self.env);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().with_context(|| format!("cannot run {}", self.bin.display()))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).await?;
            pipe.write_all(b"\n").await?;
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            let verb = args.iter().take(2).copied().collect::<Vec<_>>().join(" ");
            bail!("`latchkey {verb}` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `latchkey client add --name NAME --redirect-uri … OPTIONS --json`.
    pub async fn add_client(&self, name: &str, options: &[&str]) -> Result<ClientCreds> {
        let redirect = "https://rp.example/cb";
        let mut args = vec!["client", "add", "--name", name, "--redirect-uri", redirect, "--json"];
        args.extend_from_slice(options);
        let out = self.cli(&args, None).await?;
        let v: serde_json::Value = serde_json::from_str(out.trim()).context("client add --json printed no JSON")?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let id = field("client_id").ok_or_else(|| anyhow!("client add printed no client_id"))?;
        let secret = field("client_secret").ok_or_else(|| anyhow!("client add printed no client_secret"))?;
        Ok(ClientCreds::new(id, secret, redirect.into()))
    }

    /// `latchkey user add --username U --password-stdin`, hashed at the server's argon2 settings.
    pub async fn add_user(&self, username: &str) -> Result<UserCreds> {
        let password = crate::flow::random_token();
        self.cli(
            &[
                "user",
                "add",
                "--username",
                username,
                "--password-stdin",
                "--email-verified",
                "--email",
                &format!("{username}@example.com"),
                "--name",
                "Bench User",
            ],
            Some(&password),
        )
        .await?;
        Ok(UserCreds { username: username.into(), password })
    }

    /// Forget the peak RSS so far (`/proc/PID/clear_refs`, value 5), so the next reading covers
    /// what follows. Best effort: without it the peak is the process's lifetime peak.
    pub fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5");
    }

    /// Peak resident set size in MiB (`VmHWM` in /proc/PID/status).
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// Resident set size now, in MiB (`VmRSS`).
    pub fn rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// Open file descriptors (entries of /proc/PID/fd).
    pub fn open_fds(&self) -> Option<usize> {
        Some(std::fs::read_dir(format!("/proc/{}/fd", self.pid)).ok()?.count())
    }

    /// The SQLite database file (its `-wal` file beside it); None on PostgreSQL.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match self.pg {
            None => Some(self.dir.path().join("data").join("latchkey.db")),
            Some(_) => None,
        }
    }

    /// The PostgreSQL database's URL; None on SQLite.
    pub fn pg_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|d| d.url.as_str())
    }

    /// Whether the server process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Stop the server (SIGKILL: its data is thrown away) and drop its database.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        if let Some(db) = &self.pg {
            db.drop_it().await;
        }
    }
}

/// `latchkey` with a clean `LATCHKEY_*` environment plus `env`.
fn command(bin: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        if k.starts_with("LATCHKEY_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}
