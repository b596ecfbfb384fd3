//! Groups, memberships and role grants, and the one-query resolution of the `groups` and
//! `roles` claims.
use crate::{client, fresh_store, user};
use latchkey_core::claims::MembershipClaims;
use latchkey_core::model::{Group, Memberships, RoleGrant, RoleHolder};
use latchkey_storage::{Created, RoleFilter};

fn group(name: &str) -> Group {
    Group { id: format!("id-{name}"), name: name.into(), created_at: 1_700_000_000 }
}

fn grant(role: &str, holder: RoleHolder, client_id: Option<&str>) -> RoleGrant {
    RoleGrant { role: role.into(), holder, client_id: client_id.map(str::to_owned) }
}

const BOTH: MembershipClaims = MembershipClaims { groups: true, roles: true };

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn groups_are_unique_by_name_and_listed_with_member_counts() {
    let (_db, store) = fresh_store().await;
    assert_eq!(store.create_group(&group("ops")).await.unwrap(), Created::Created);
    assert_eq!(store.create_group(&group("eng")).await.unwrap(), Created::Created);
    let dup = Group { id: "another-id".into(), ..group("eng") };
    assert_eq!(store.create_group(&dup).await.unwrap(), Created::AlreadyExists);
    store.create_user(&user("u1", "ada")).await.unwrap();
    store.create_user(&user("u2", "bob")).await.unwrap();
    store.set_user_groups("u1", &names(&["eng", "ops"])).await.unwrap().unwrap();
    store.set_user_groups("u2", &names(&["eng"])).await.unwrap().unwrap();
    let list = store.list_groups().await.unwrap();
    let got: Vec<(&str, i64)> = list.iter().map(|s| (s.group.name.as_str(), s.members)).collect();
    assert_eq!(got, [("eng", 2), ("ops", 1)]);
    assert_eq!(store.get_group_by_name("eng").await.unwrap(), Some(group("eng")));
    assert_eq!(store.get_group_by_name("nope").await.unwrap(), None);
}

#[tokio::test]
async fn set_user_groups_replaces_and_an_unknown_group_changes_nothing() {
    let (_db, store) = fresh_store().await;
    for g in ["a", "b", "c"] {
        store.create_group(&group(g)).await.unwrap();
    }
    store.create_user(&user("u1", "ada")).await.unwrap();
    store.set_user_groups("u1", &names(&["b", "a"])).await.unwrap().unwrap();
    assert_eq!(store.list_user_groups("u1").await.unwrap(), ["a", "b"]);
    assert_eq!(store.set_user_groups("u1", &names(&["c", "missing"])).await.unwrap(), Err("missing".to_string()));
    assert_eq!(store.list_user_groups("u1").await.unwrap(), ["a", "b"], "unchanged");
    store.set_user_groups("u1", &names(&["c", "c"])).await.unwrap().unwrap();
    assert_eq!(store.list_user_groups("u1").await.unwrap(), ["c"]);
    store.set_user_groups("u1", &[]).await.unwrap().unwrap();
    assert!(store.list_user_groups("u1").await.unwrap().is_empty());
}

#[tokio::test]
async fn memberships_unite_own_and_group_roles_global_or_for_the_client_sorted_and_unique() {
    let (_db, store) = fresh_store().await;
    store.create_client(&client("app")).await.unwrap();
    store.create_client(&client("other")).await.unwrap();
    store.create_user(&user("u1", "ada")).await.unwrap();
    store.create_user(&user("u2", "bob")).await.unwrap();
    for g in ["eng", "ops", "empty"] {
        store.create_group(&group(g)).await.unwrap();
    }
    store.set_user_groups("u1", &names(&["ops", "eng"])).await.unwrap().unwrap();
    store.set_user_groups("u2", &names(&["ops"])).await.unwrap().unwrap();
    let u1 = || RoleHolder::User("u1".into());
    let eng = || RoleHolder::Group("id-eng".into());
    for g in [
        grant("zeta", u1(), None),
        grant("admin", u1(), Some("app")),
        grant("admin", eng(), None), // the same role again, through a group
        grant("deployer", eng(), Some("app")),
        grant("other-only", u1(), Some("other")),
        grant("other-only-too", eng(), Some("other")),
        grant("Upper", RoleHolder::Group("id-ops".into()), None),
        grant("bobs", RoleHolder::User("u2".into()), None),
        grant("unrelated", RoleHolder::Group("id-empty".into()), None),
    ] {
        assert_eq!(store.grant_role(&g, 5).await.unwrap(), Created::Created, "{g:?}");
    }
    assert_eq!(store.grant_role(&grant("zeta", u1(), None), 6).await.unwrap(), Created::AlreadyExists);
    assert_eq!(store.grant_role(&grant("admin", eng(), None), 6).await.unwrap(), Created::AlreadyExists);

    let m = store.memberships("u1", "app", BOTH).await.unwrap();
    assert_eq!(
        m,
        Memberships { groups: names(&["eng", "ops"]), roles: names(&["Upper", "admin", "deployer", "zeta"]) },
        "sorted by bytes"
    );
    let m = store.memberships("u1", "other", BOTH).await.unwrap();
    assert_eq!(m.roles, names(&["Upper", "admin", "other-only", "other-only-too", "zeta"]));
    let only_groups = store.memberships("u1", "app", MembershipClaims { groups: true, roles: false }).await.unwrap();
    assert_eq!(only_groups, Memberships { groups: names(&["eng", "ops"]), roles: vec![] });
    let only_roles = store.memberships("u1", "app", MembershipClaims { groups: false, roles: true }).await.unwrap();
    assert!(only_roles.groups.is_empty() && only_roles.roles.len() == 4);
    assert_eq!(store.memberships("u1", "app", MembershipClaims::default()).await.unwrap(), Memberships::default());
    assert_eq!(store.memberships("u2", "app", BOTH).await.unwrap().roles, names(&["Upper", "bobs"]));

    // Listings: everything that reaches a user, a group's own grants.
    let reach: Vec<(String, Option<String>, Option<String>)> = store
        .list_role_grants(RoleFilter::User("u2"))
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.role, g.username.or(g.group), g.client_id))
        .collect();
    assert_eq!(reach, [("Upper".into(), Some("ops".into()), None), ("bobs".into(), Some("bob".into()), None)]);
    assert_eq!(store.list_role_grants(RoleFilter::Group("id-eng")).await.unwrap().len(), 3);
    assert_eq!(store.list_role_grants(RoleFilter::All).await.unwrap().len(), 9);

    // Revocation matches the holder and the client exactly.
    assert!(!store.revoke_role(&grant("admin", u1(), None)).await.unwrap(), "granted for app only");
    assert!(store.revoke_role(&grant("admin", u1(), Some("app"))).await.unwrap());
    assert!(!store.revoke_role(&grant("admin", u1(), Some("app"))).await.unwrap());
    assert!(store.memberships("u1", "app", BOTH).await.unwrap().roles.contains(&"admin".to_string()), "via eng");
    assert!(store.revoke_role(&grant("admin", eng(), None)).await.unwrap());
    assert!(!store.memberships("u1", "app", BOTH).await.unwrap().roles.contains(&"admin".to_string()));
}

#[tokio::test]
async fn removing_a_group_user_or_client_removes_their_memberships_and_grants() {
    let (db, store) = fresh_store().await;
    store.create_client(&client("app")).await.unwrap();
    store.create_user(&user("u1", "ada")).await.unwrap();
    store.create_group(&group("eng")).await.unwrap();
    store.set_user_groups("u1", &names(&["eng"])).await.unwrap().unwrap();
    store.grant_role(&grant("g", RoleHolder::Group("id-eng".into()), None), 1).await.unwrap();
    store.grant_role(&grant("c", RoleHolder::User("u1".into()), Some("app")), 1).await.unwrap();
    store.grant_role(&grant("u", RoleHolder::User("u1".into()), None), 1).await.unwrap();

    assert!(store.delete_group("eng").await.unwrap());
    assert!(!store.delete_group("eng").await.unwrap());
    assert_eq!(crate::support::query_i64(&db, "SELECT COUNT(*) FROM user_groups").await, 0);
    assert_eq!(
        store.memberships("u1", "app", BOTH).await.unwrap(),
        Memberships { groups: vec![], roles: names(&["c", "u"]) }
    );
    assert!(store.delete_client("app").await.unwrap());
    assert_eq!(store.memberships("u1", "app", BOTH).await.unwrap().roles, ["u"]);
    assert!(store.delete_user("u1").await.unwrap());
    assert_eq!(crate::support::query_i64(&db, "SELECT COUNT(*) FROM role_grants").await, 0);
}

#[tokio::test]
async fn a_grant_must_name_exactly_one_holder() {
    let (db, _store) = fresh_store().await;
    // Neither a user nor a group: refused by the table itself, whatever the code above it does.
    let s = db.settings();
    let sql =
        "INSERT INTO role_grants (role, user_id, group_id, client_id, created_at) VALUES ('r', NULL, NULL, NULL, 1)";
    let refused = if db.is_postgres() {
        let st = latchkey_storage::postgres::PgStore::connect(&s).await.unwrap();
        sqlx::query(sql).execute(st.pool()).await.is_err()
    } else {
        let st = latchkey_storage::sqlite::SqliteStore::connect(&s).await.unwrap();
        sqlx::query(sql).execute(st.pool()).await.is_err()
    };
    assert!(refused, "a grant without a holder was stored");
}
