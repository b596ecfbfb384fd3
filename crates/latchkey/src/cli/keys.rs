//! `latchkey keys list|rotate|rewrap`: signing keys and the master key.

use clap::Subcommand;
use latchkey_core::{Clock, Settings, SystemClock};
use latchkey_signer::MasterKey;
use serde_json::{Value, json};
use std::path::PathBuf;

use super::common::{Fail, audit, master_key, open_store, print_json, runtime, usage};

#[derive(Subcommand)]
pub(super) enum KeysCmd {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Publish new keys now; they sign after signing.rotation_delay.
    Rotate {
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypt everything sealed under the master key with LATCHKEY_NEW_MASTER_KEY.
    Rewrap {
        /// Generate the new master key (printed once) instead of reading LATCHKEY_NEW_MASTER_KEY.
        #[arg(long)]
        generate: bool,
        #[arg(long)]
        json: bool,
    },
}

/// The new master key for `keys rewrap`: generated, or LATCHKEY_NEW_MASTER_KEY.
fn new_master_key(generate: bool) -> Result<MasterKey, Fail> {
    let env = std::env::var("LATCHKEY_NEW_MASTER_KEY").ok();
    match (generate, env) {
        (true, Some(_)) => Err(usage("give either --generate or LATCHKEY_NEW_MASTER_KEY, not both")),
        (true, None) => Ok(MasterKey::generate()),
        (false, Some(v)) => {
            MasterKey::parse(&v).ok_or_else(|| usage("LATCHKEY_NEW_MASTER_KEY must be 32 random bytes, base64-encoded"))
        }
        (false, None) => Err(usage("set LATCHKEY_NEW_MASTER_KEY (base64 of 32 bytes) or pass --generate")),
    }
}

/// Write `key` to a fresh temp file (mode 0600) next to the key file; renamed over it after commit.
fn stage_key_file(settings: &Settings, key: &MasterKey) -> Result<PathBuf, Fail> {
    use std::io::Write;
    let tmp = settings.data_dir.join(format!("{}.new-{}", latchkey_signer::KEY_FILE, std::process::id()));
    let err = |e: std::io::Error| runtime(format!("cannot write {}: {e}; nothing was changed", tmp.display()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(format!("{}\n", key.encode()).as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    Ok(tmp)
}

async fn rewrap(settings: &Settings, generate: bool, json: bool) -> Result<(), Fail> {
    let new = new_master_key(generate)?;
    let master = master_key(settings)?;
    let from_file = std::env::var_os("LATCHKEY_MASTER_KEY").is_none();
    let store = open_store(settings).await?;
    // The new key file is staged before the commit and renamed over the old one after it.
    let staged = if from_file { Some(stage_key_file(settings, &new)?) } else { None };
    let done = latchkey_signer::rewrap(store.as_ref(), &master, &new).await;
    let counts = match done {
        Ok(c) => c,
        Err(e) => {
            if let Some(t) = &staged {
                let _ = std::fs::remove_file(t);
            }
            store.close().await;
            return Err(runtime(e));
        }
    };
    if let Some(t) = &staged {
        let path = settings.data_dir.join(latchkey_signer::KEY_FILE);
        std::fs::rename(t, &path).map_err(|e| {
            runtime(format!(
                "the database now uses the new master key, but {} could not replace {}: {e}; move it there by hand",
                t.display(),
                path.display()
            ))
        })?;
    }
    let detail = json!({"keys": counts.keys, "client_secrets": counts.client_secrets, "meta": counts.meta});
    audit(store.as_ref(), "keys.rewrapped", None, detail.clone()).await;
    store.close().await;
    let shown = if generate { Some(new.encode()) } else { None };
    if json {
        let mut v = detail;
        if let (Some(k), Some(o)) = (&shown, v.as_object_mut()) {
            o.insert("new_master_key".into(), Value::String(k.clone()));
        }
        print_json(&v)?;
    } else {
        println!(
            "re-encrypted {} signing keys, {} client secrets and {} stored values under the new master key",
            counts.keys, counts.client_secrets, counts.meta
        );
        if let Some(k) = &shown {
            println!("new master key (shown once): {k}");
        }
    }
    Ok(())
}

pub(super) async fn run(cmd: KeysCmd, settings: &Settings) -> Result<(), Fail> {
    if let KeysCmd::Rewrap { generate, json } = cmd {
        return rewrap(settings, generate, json).await;
    }
    let master = master_key(settings)?;
    let store = open_store(settings).await?;
    let now = SystemClock.now();
    match cmd {
        KeysCmd::List { json } => {
            let ring = latchkey_signer::bootstrap(store.as_ref(), settings, &master, now).await.map_err(runtime)?;
            let list = ring.summaries(now);
            if json {
                print_json(&serde_json::to_value(&list).map_err(runtime)?)?;
            } else {
                for k in &list {
                    println!("{}\t{}\t{}\tactivates {}", k.kid, k.alg, k.state, k.activates_at);
                }
            }
        }
        KeysCmd::Rotate { json } => {
            latchkey_signer::bootstrap(store.as_ref(), settings, &master, now).await.map_err(runtime)?;
            let fresh = latchkey_signer::rotate(store.as_ref(), settings, &master, now).await.map_err(runtime)?;
            audit(
                store.as_ref(),
                "keys.rotated",
                None,
                json!({"kids": fresh.iter().map(|k| &k.kid).collect::<Vec<_>>()}),
            )
            .await;
            let list: Vec<Value> =
                fresh.iter().map(|k| json!({"kid": k.kid, "alg": k.alg, "activates_at": k.activates_at})).collect();
            if json {
                print_json(&Value::Array(list))?;
            } else {
                for k in &fresh {
                    println!("new {} key {} published; signs from {}", k.alg, k.kid, k.activates_at);
                }
            }
        }
        KeysCmd::Rewrap { .. } => {}
    }
    store.close().await;
    Ok(())
}
