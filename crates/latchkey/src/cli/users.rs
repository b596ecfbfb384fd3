//! `latchkey user …`: accounts, their passwords, groups, consents and sessions.

use clap::{ArgGroup, Args, Subcommand};
use latchkey_core::model::{User, validate_name, validate_user_claims};
use latchkey_core::{Clock, Settings, SystemClock};
use latchkey_storage::{Created, Store};
use serde_json::{Value, json};
use std::io::BufRead;
use std::path::PathBuf;

use super::common::{Fail, audit, dedup, master_key, one_line, open_store, print_json, print_pretty, runtime, usage};
use super::groups::find_group;

#[derive(Subcommand)]
pub(super) enum UserCmd {
    /// Create a user; the password is read from standard input.
    Add(UserAdd),
    /// Change a user; options not given stay as they are.
    Update(UserUpdate),
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a user by username or id.
    Show {
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (read from standard input); ends the user's sessions.
    SetPassword {
        user: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove a user with their sessions, consents and tokens.
    Remove { user: String },
    /// Forget the user's consent for a client and revoke every token the client holds for them.
    RevokeConsent {
        user: String,
        // Client ids made before ids were kept from starting with '-' may start with one.
        #[arg(long, allow_hyphen_values = true)]
        client: String,
    },
    /// End every session of the user and revoke all their tokens.
    SignOutEverywhere { user: String },
}

#[derive(Args)]
pub(super) struct UserAdd {
    #[arg(long)]
    username: String,
    #[arg(long, required = true)]
    password_stdin: bool,
    #[arg(long)]
    email: Option<String>,
    #[arg(long)]
    email_verified: bool,
    #[arg(long)]
    name: Option<String>,
    /// A standard claim, key=value (repeatable).
    #[arg(long = "claim", value_name = "KEY=VALUE")]
    claims: Vec<String>,
    /// A JSON object of OpenID standard claims.
    #[arg(long, value_name = "FILE")]
    claims_json: Option<PathBuf>,
    /// A group the user belongs to (repeatable; the group must exist).
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("change").required(true).args(["groups", "no_groups"])))]
pub(super) struct UserUpdate {
    /// Username or id.
    user: String,
    /// Set the user's groups to exactly these (repeatable; each must exist).
    #[arg(long = "group", value_name = "GROUP", conflicts_with = "no_groups")]
    groups: Vec<String>,
    /// Take the user out of every group.
    #[arg(long)]
    no_groups: bool,
    #[arg(long)]
    json: bool,
}

/// One line from standard input, without the line ending.
fn read_password() -> Result<zeroize::Zeroizing<String>, Fail> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line).map_err(|e| runtime(format!("cannot read the password: {e}")))?;
    let pw = zeroize::Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
    if pw.is_empty() {
        return Err(usage("the password on standard input is empty"));
    }
    if pw.len() > 1024 {
        return Err(usage("the password is longer than 1024 bytes"));
    }
    Ok(pw)
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "sub": u.id,
        "username": u.username,
        "email": u.email,
        "email_verified": u.email_verified,
        "name": u.name,
        "claims": u.claims,
        "created_at": u.created_at,
    })
}

fn claim_value(key: &str, raw: &str) -> Value {
    match key {
        "phone_number_verified" => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        "updated_at" => raw.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(raw.to_owned())),
        _ => Value::String(raw.to_owned()),
    }
}

pub(super) async fn find_user(store: &dyn Store, key: &str) -> Result<User, Fail> {
    if let Some(u) = store.get_user_by_username(key).await? {
        return Ok(u);
    }
    store.get_user(key).await?.ok_or_else(|| runtime(format!("no user `{}`", one_line(key))))
}

fn hasher(settings: &Settings) -> Result<latchkey_web::Passwords, Fail> {
    latchkey_web::Passwords::new(&settings.argon2).map_err(runtime)
}

/// Back-Channel Logout 1.0: queue logout tokens for every session of a user that a command
/// ends; the running server delivers them (or the next one to start). Needs the signing keys,
/// so the master key.
async fn user_sessions_ended(
    store: &dyn Store,
    settings: &Settings,
    user_id: &str,
    now: latchkey_core::UnixTime,
) -> Result<usize, Fail> {
    let master = master_key(settings)?;
    let ring = latchkey_signer::bootstrap(store, settings, &master, now).await.map_err(runtime)?;
    let salt = latchkey_signer::pairwise_salt(store, &master).await.map_err(runtime)?;
    latchkey_web::backchannel::user_sessions_ended(store, &ring, settings, &salt, user_id, now).await.map_err(runtime)
}

pub(super) async fn run(cmd: UserCmd, settings: &Settings) -> Result<(), Fail> {
    let now = SystemClock.now();
    match cmd {
        UserCmd::Add(a) => {
            if a.username.trim().is_empty() || a.username.len() > 255 || a.username.chars().any(char::is_control) {
                return Err(usage("--username must be 1-255 printable characters"));
            }
            let mut claims = serde_json::Map::new();
            if let Some(p) = &a.claims_json {
                let text =
                    std::fs::read_to_string(p).map_err(|e| usage(format!("--claims-json {}: {e}", p.display())))?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(m)) => claims = m,
                    Ok(_) => return Err(usage("--claims-json must hold a JSON object")),
                    Err(e) => return Err(usage(format!("--claims-json {}: {e}", p.display()))),
                }
            }
            for kv in &a.claims {
                let (k, v) = kv.split_once('=').ok_or_else(|| usage(format!("--claim `{kv}` is not key=value")))?;
                claims.insert(k.to_owned(), claim_value(k, v));
            }
            validate_user_claims(&claims).map_err(usage)?;
            let groups = group_names(&a.groups)?;
            let pw = read_password()?;
            let hash = hasher(settings)?.hash_blocking(&pw).map_err(runtime)?;
            let u = User {
                id: uuid::Uuid::new_v4().to_string(),
                username: a.username,
                password_hash: hash,
                email: a.email,
                email_verified: a.email_verified,
                name: a.name,
                claims,
                created_at: now,
                updated_at: now,
            };
            let store = open_store(settings).await?;
            // Every group must exist before the user is created.
            for g in &groups {
                find_group(store.as_ref(), g).await?;
            }
            if store.create_user(&u).await? == Created::AlreadyExists {
                return Err(usage(format!("username `{}` is taken", u.username)));
            }
            let mut detail = serde_json::Map::new();
            detail.insert("user".into(), json!(u.id));
            if !groups.is_empty() {
                store.set_user_groups(&u.id, &groups).await?.map_err(|g| runtime(format!("no group `{g}`")))?;
                detail.insert("groups".into(), json!(groups));
            }
            let detail = Value::Object(detail);
            audit(store.as_ref(), "user.created", None, detail).await;
            if a.json {
                print_json(&with_groups(user_json(&u), &groups))?;
            } else {
                println!("created user {} (sub {})", u.username, u.id);
            }
            Ok(())
        }
        UserCmd::Update(a) => {
            let groups = group_names(&a.groups)?;
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &a.user).await?;
            // `--group` (required unless --no-groups) replaces the memberships; --no-groups clears them.
            store.set_user_groups(&u.id, &groups).await?.map_err(|g| runtime(format!("no group `{g}`")))?;
            audit(store.as_ref(), "user.groups_set", None, json!({"user": u.id, "groups": groups})).await;
            if a.json {
                print_json(&with_groups(user_json(&u), &groups))?;
            } else if groups.is_empty() {
                println!("{} belongs to no group", u.username);
            } else {
                println!("groups of {}: {}", u.username, groups.join(", "));
            }
            Ok(())
        }
        UserCmd::List { json } => {
            let store = open_store(settings).await?;
            let users = store.list_users().await?;
            if json {
                print_json(&Value::Array(users.iter().map(user_json).collect()))?;
            } else {
                for u in &users {
                    println!("{}\t{}", u.id, u.username);
                }
            }
            Ok(())
        }
        UserCmd::Show { user, json } => {
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &user).await?;
            let v = with_groups(user_json(&u), &store.list_user_groups(&u.id).await?);
            if json {
                print_json(&v)?
            } else {
                print_pretty(&v)
            }
            Ok(())
        }
        UserCmd::SetPassword { user, .. } => {
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &user).await?;
            let pw = read_password()?;
            let hash = hasher(settings)?.hash_blocking(&pw).map_err(runtime)?;
            // set_password ends the sessions: their relying parties are told first.
            let told = user_sessions_ended(store.as_ref(), settings, &u.id, now).await?;
            store.set_password(&u.id, &hash, now).await?;
            audit(store.as_ref(), "user.password_set", None, json!({"user": u.id})).await;
            println!(
                "password changed for {}; their sessions have ended ({told} back-channel logouts queued)",
                u.username
            );
            Ok(())
        }
        UserCmd::RevokeConsent { user, client } => {
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &user).await?;
            let had = store.delete_consent(&u.id, &client).await?;
            let n = store.revoke_user_grants(&u.id, Some(&client), now).await?;
            audit(store.as_ref(), "consent.revoked", Some(&client), json!({"user": u.id, "grants_revoked": n})).await;
            println!(
                "{} consent of {} for {client}; {n} token families revoked",
                if had { "removed" } else { "no" },
                u.username
            );
            Ok(())
        }
        UserCmd::SignOutEverywhere { user } => {
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &user).await?;
            let told = user_sessions_ended(store.as_ref(), settings, &u.id, now).await?;
            let sessions = store.delete_user_sessions(&u.id).await?;
            let n = store.revoke_user_grants(&u.id, None, now).await?;
            audit(store.as_ref(), "user.signed_out_everywhere", None, json!({"user": u.id})).await;
            println!(
                "{} sessions ended, {n} token families revoked, {told} back-channel logouts queued for {}",
                sessions.len(),
                u.username
            );
            Ok(())
        }
        UserCmd::Remove { user } => {
            let store = open_store(settings).await?;
            let u = find_user(store.as_ref(), &user).await?;
            // Before deletion: the user's sessions end with it, and their relying parties are told.
            user_sessions_ended(store.as_ref(), settings, &u.id, now).await?;
            store.delete_user(&u.id).await?;
            audit(store.as_ref(), "user.removed", None, json!({"user": u.id})).await;
            println!("removed user {}", u.username);
            Ok(())
        }
    }
}

/// `--group` values: valid names, each once, sorted.
fn group_names(names: &[String]) -> Result<Vec<String>, Fail> {
    for n in names {
        validate_name("group", n).map_err(|e| usage(format!("--group: {e}")))?;
    }
    let mut v = dedup(names.to_vec());
    v.sort();
    Ok(v)
}

fn with_groups(mut v: Value, groups: &[String]) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("groups".into(), json!(groups));
    }
    v
}
