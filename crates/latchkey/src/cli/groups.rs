//! `latchkey group add|list|remove`.

use clap::Subcommand;
use latchkey_core::model::{Group, validate_name};
use latchkey_core::{Clock, Settings, SystemClock};
use latchkey_storage::{Created, Store};
use serde_json::{Value, json};

use super::common::{Fail, audit, open_store, print_json, runtime, usage};

#[derive(Subcommand)]
pub(super) enum GroupCmd {
    /// Create a group.
    Add {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List groups with their member counts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a group with its memberships and the roles granted to it.
    Remove { name: String },
}

pub(super) async fn find_group(store: &dyn Store, name: &str) -> Result<Group, Fail> {
    validate_name("group", name).map_err(usage)?;
    store.get_group_by_name(name).await?.ok_or_else(|| runtime(format!("no group `{name}`")))
}

pub(super) async fn run(cmd: GroupCmd, settings: &Settings) -> Result<(), Fail> {
    match cmd {
        GroupCmd::Add { name, json } => {
            validate_name("group", &name).map_err(usage)?;
            let g = Group { id: uuid::Uuid::new_v4().to_string(), name, created_at: SystemClock.now() };
            let store = open_store(settings).await?;
            if store.create_group(&g).await? == Created::AlreadyExists {
                return Err(usage(format!("group `{}` exists", g.name)));
            }
            audit(store.as_ref(), "group.created", None, json!({"group": g.name})).await;
            if json {
                print_json(&json!({"id": g.id, "name": g.name, "members": 0, "created_at": g.created_at}))?;
            } else {
                println!("created group {}", g.name);
            }
            Ok(())
        }
        GroupCmd::List { json } => {
            let store = open_store(settings).await?;
            let groups = store.list_groups().await?;
            if json {
                let list: Vec<Value> = groups
                    .iter()
                    .map(|s| {
                        json!({"id": s.group.id, "name": s.group.name, "members": s.members, "created_at": s.group.created_at})
                    })
                    .collect();
                print_json(&Value::Array(list))?;
            } else {
                for s in &groups {
                    println!("{}\t{}", s.group.name, s.members);
                }
            }
            Ok(())
        }
        GroupCmd::Remove { name } => {
            validate_name("group", &name).map_err(usage)?;
            let store = open_store(settings).await?;
            if !store.delete_group(&name).await? {
                return Err(runtime(format!("no group `{name}`")));
            }
            audit(store.as_ref(), "group.removed", None, json!({"group": name})).await;
            println!("removed group {name}");
            Ok(())
        }
    }
}
