//! `latchkey role grant|revoke|list`: roles held by a user or a group, for every client or one.

use clap::{ArgGroup, Args, Subcommand};
use latchkey_core::model::{RoleGrant, RoleHolder, validate_name};
use latchkey_core::{Clock, Settings, SystemClock};
use latchkey_storage::{Created, RoleFilter, Store};
use serde_json::{Value, json};

use super::common::{Fail, audit, one_line, open_store, print_json, runtime, usage};
use super::groups::find_group;
use super::users::find_user;

/// A role and who holds it: one user or one group, for every client or one.
#[derive(Args)]
#[command(group(ArgGroup::new("holder").required(true).args(["user", "group"])))]
pub(super) struct RoleArgs {
    role: String,
    /// A user (username or id).
    #[arg(long)]
    user: Option<String>,
    /// A group: every member holds the role.
    #[arg(long)]
    group: Option<String>,
    /// Only in tokens for this client (default: for every client).
    // Client ids made before ids were kept from starting with '-' may start with one.
    #[arg(long, value_name = "CLIENT_ID", allow_hyphen_values = true)]
    client: Option<String>,
}

#[derive(Subcommand)]
pub(super) enum RoleCmd {
    /// Grant a role to a user or a group (granting it again changes nothing).
    Grant(RoleArgs),
    /// Revoke a role grant made with the same arguments.
    Revoke(RoleArgs),
    /// List role grants: all, those that reach a user (their own and their groups'), or a group's.
    List {
        #[arg(long, conflicts_with = "group")]
        user: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// A role grant named on the command line, resolved against the database; with its audit
/// detail and its description.
async fn role_grant(store: &dyn Store, a: &RoleArgs) -> Result<(RoleGrant, Value, String), Fail> {
    let (holder, mut detail, who) = match (&a.user, &a.group) {
        (Some(u), None) => {
            let u = find_user(store, u).await?;
            (RoleHolder::User(u.id.clone()), json!({"role": a.role, "user": u.id}), format!("user {}", u.username))
        }
        (None, Some(g)) => {
            let g = find_group(store, g).await?;
            (RoleHolder::Group(g.id), json!({"role": a.role, "group": g.name}), format!("group {}", g.name))
        }
        // clap's `holder` group requires exactly one of them.
        _ => return Err(usage("give --user or --group")),
    };
    if let Some(c) = &a.client {
        store.get_client(c).await?.ok_or_else(|| runtime(format!("no client `{}`", one_line(c))))?;
        if let Some(o) = detail.as_object_mut() {
            o.insert("client_id".into(), json!(c));
        }
    }
    let scope = match &a.client {
        Some(c) => format!("for client {c}"),
        None => "for every client".to_owned(),
    };
    let grant = RoleGrant { role: a.role.clone(), holder, client_id: a.client.clone() };
    Ok((grant, detail, format!("role {} of {who} {scope}", a.role)))
}

fn check_role_args(a: &RoleArgs) -> Result<(), Fail> {
    validate_name("role", &a.role).map_err(usage)?;
    if let Some(g) = &a.group {
        validate_name("group", g).map_err(|e| usage(format!("--group: {e}")))?;
    }
    Ok(())
}

pub(super) async fn run(cmd: RoleCmd, settings: &Settings) -> Result<(), Fail> {
    match cmd {
        RoleCmd::Grant(a) => {
            check_role_args(&a)?;
            let store = open_store(settings).await?;
            let (grant, detail, what) = role_grant(store.as_ref(), &a).await?;
            match store.grant_role(&grant, SystemClock.now()).await? {
                Created::Created => {
                    audit(store.as_ref(), "role.granted", a.client.as_deref(), detail).await;
                    println!("granted {what}");
                }
                Created::AlreadyExists => println!("already granted: {what}"),
            }
            Ok(())
        }
        RoleCmd::Revoke(a) => {
            check_role_args(&a)?;
            let store = open_store(settings).await?;
            let (grant, detail, what) = role_grant(store.as_ref(), &a).await?;
            if !store.revoke_role(&grant).await? {
                return Err(runtime(format!("no such grant: {what}")));
            }
            audit(store.as_ref(), "role.revoked", a.client.as_deref(), detail).await;
            println!("revoked {what}");
            Ok(())
        }
        RoleCmd::List { user, group, json } => {
            let store = open_store(settings).await?;
            let grants = match (&user, &group) {
                (Some(u), _) => {
                    let u = find_user(store.as_ref(), u).await?;
                    store.list_role_grants(RoleFilter::User(&u.id)).await?
                }
                (None, Some(g)) => {
                    let g = find_group(store.as_ref(), g).await?;
                    store.list_role_grants(RoleFilter::Group(&g.id)).await?
                }
                (None, None) => store.list_role_grants(RoleFilter::All).await?,
            };
            if json {
                let list: Vec<Value> = grants
                    .iter()
                    .map(|g| json!({"role": g.role, "user": g.username, "group": g.group, "client_id": g.client_id, "created_at": g.created_at}))
                    .collect();
                print_json(&Value::Array(list))?;
            } else {
                for g in &grants {
                    let holder = match (&g.username, &g.group) {
                        (Some(u), _) => format!("user:{u}"),
                        (None, Some(n)) => format!("group:{n}"),
                        (None, None) => "-".to_owned(),
                    };
                    println!("{}\t{holder}\t{}", g.role, g.client_id.as_deref().unwrap_or("*"));
                }
            }
            Ok(())
        }
    }
}
