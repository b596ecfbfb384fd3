//! What every command shares: the failure type and its exit codes, the store and master key,
//! output helpers and the audit record of admin actions.

use latchkey_core::{Clock, Settings, SystemClock};
use latchkey_signer::MasterKey;
use latchkey_storage::Store;
use serde_json::Value;
use std::io::Write;
use std::sync::Arc;

use crate::server::{StartupError, redact};

/// A failure and its exit code.
pub(super) struct Fail {
    pub(super) code: u8,
    pub(super) msg: String,
}

pub(super) fn usage(msg: impl Into<String>) -> Fail {
    Fail { code: 2, msg: msg.into() }
}
pub(super) fn runtime(msg: impl std::fmt::Display) -> Fail {
    Fail { code: 1, msg: msg.to_string() }
}

impl From<StartupError> for Fail {
    fn from(e: StartupError) -> Self {
        match e {
            StartupError::Config(m) => Fail { code: 2, msg: m },
            other => runtime(other),
        }
    }
}

impl From<latchkey_storage::StoreError> for Fail {
    fn from(e: latchkey_storage::StoreError) -> Self {
        runtime(e)
    }
}

pub(super) fn master_key(settings: &Settings) -> Result<MasterKey, Fail> {
    let env = std::env::var("LATCHKEY_MASTER_KEY").ok();
    MasterKey::load(env.as_deref(), &settings.data_dir).map_err(runtime)
}

pub(super) async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, Fail> {
    latchkey_storage::open(settings)
        .await
        .map_err(|e| runtime(format!("cannot open database {}: {e}", redact(&settings.effective_database_url()))))
}

pub(super) fn print_json(v: &Value) -> Result<(), Fail> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, v).map_err(runtime)?;
    writeln!(out).map_err(runtime)
}

pub(super) fn print_pretty(v: &Value) {
    if let Some(obj) = v.as_object() {
        for (k, v) in obj {
            let shown = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{k}: {shown}");
        }
    }
}

pub(super) async fn audit(store: &dyn Store, kind: &str, client_id: Option<&str>, detail: Value) {
    let e = latchkey_storage::AuditEvent {
        at: SystemClock.now(),
        kind: kind.into(),
        actor: Some("cli".into()),
        client_id: client_id.map(str::to_owned),
        ip: None,
        detail: detail.to_string(),
    };
    if let Err(err) = store.record_audit(&e).await {
        tracing::warn!(error = %err, "could not record audit event");
    }
}

pub(super) fn dedup<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out = Vec::new();
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// A name as typed, for an error message: control characters escaped, so it stays one line.
pub(super) fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}
