//! Database and operations: `migrate`, `backup` (SQLite) and `audit` (the security event log).

use latchkey_core::{Settings, UnixTime};
use serde_json::{Value, json};

use super::common::{Fail, open_store, print_json, runtime, usage};
use crate::server::redact;

pub(super) async fn migrate(settings: &Settings) -> Result<(), Fail> {
    open_store(settings).await?.close().await;
    println!("database is up to date");
    Ok(())
}

pub(super) async fn backup(settings: &Settings, file: &std::path::Path) -> Result<(), Fail> {
    match settings.backend().map_err(|e| usage(e.to_string()))? {
        latchkey_core::settings::Backend::Postgres => {
            Err(usage("latchkey backup supports SQLite only; back up PostgreSQL with `pg_dump -Fc`"))
        }
        latchkey_core::settings::Backend::Sqlite => {
            if file.exists() {
                return Err(usage(format!("{} already exists; choose a new file", file.display())));
            }
            let store = latchkey_storage::sqlite::SqliteStore::open(settings).await.map_err(|e| {
                runtime(format!("cannot open database {}: {e}", redact(&settings.effective_database_url())))
            })?;
            let r = store.backup_into(file).await;
            store.pool().close().await;
            r.map_err(|e| runtime(format!("backup to {} failed: {e}", file.display())))?;
            println!("backed up to {} (the master key is not in it: back it up separately)", file.display());
            Ok(())
        }
    }
}

/// `--since`: RFC 3339 or Unix seconds.
fn parse_since(s: &str) -> Result<UnixTime, Fail> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| usage(format!("--since `{s}` is neither RFC 3339 nor Unix seconds")))
}

pub(super) async fn audit_log(
    settings: &Settings,
    since: Option<&str>,
    user: Option<&str>,
    kind: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<(), Fail> {
    let since = since.map(parse_since).transpose()?.unwrap_or(0);
    let store = open_store(settings).await?;
    // A user is named by username or id; events carry the id as actor and either in detail.user.
    let mut names: Vec<String> = Vec::new();
    if let Some(u) = user {
        names.push(u.to_owned());
        let found = match store.get_user_by_username(u).await? {
            Some(x) => Some(x),
            None => store.get_user(u).await?,
        };
        if let Some(x) = found {
            names.push(x.id);
            names.push(x.username);
        }
    }
    let events = store.list_audit(since, i64::MAX).await?;
    store.close().await;
    let mut out = Vec::new();
    for e in events {
        if kind.is_some_and(|k| k != e.kind) {
            continue;
        }
        let detail: Value = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
        if user.is_some() {
            let du = detail.get("user").and_then(Value::as_str);
            let hit = names.iter().any(|n| Some(n.as_str()) == e.actor.as_deref() || Some(n.as_str()) == du);
            if !hit {
                continue;
            }
        }
        out.push(json!({"at": e.at, "kind": e.kind, "actor": e.actor, "client_id": e.client_id, "ip": e.ip, "detail": detail}));
        if out.len() >= limit {
            break;
        }
    }
    if json {
        print_json(&Value::Array(out))?;
    } else {
        for e in &out {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
            let at = e.get("at").and_then(Value::as_i64).unwrap_or(0);
            let detail = e.get("detail").map(Value::to_string).unwrap_or_default();
            println!("{at}\t{}\t{}\t{}\t{}\t{detail}", s("kind"), s("actor"), s("client_id"), s("ip"));
        }
    }
    Ok(())
}
