//! `latchkey group …`, `latchkey role …`, and `user add/update --group`.
use crate::support::{TestDb, cli, stderr, stdout};
use latchkey_core::claims::MembershipClaims;
use serde_json::{Value, json};

/// Run and expect success; stdout.
fn ok(db: &TestDb, args: &[&str], stdin: Option<&str>) -> String {
    let o = cli(db, &[], args, stdin);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn json_of(out: &str) -> Value {
    let mut it = serde_json::Deserializer::from_str(out).into_iter::<Value>();
    let v = it.next().expect("no JSON on stdout").expect("stdout is not JSON");
    assert!(it.next().is_none(), "more than one JSON value on stdout: {out}");
    v
}

/// Run and expect exit `code` with one line on stderr (returned) and nothing on stdout.
fn fails(db: &TestDb, code: i32, args: &[&str]) -> String {
    let o = cli(db, &[], args, Some("pw\n"));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.starts_with("latchkey: "), "{args:?}: {err}");
    assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
    err
}

fn add_user(db: &TestDb, username: &str, groups: &[&str]) -> Value {
    let mut args = vec!["user", "add", "--username", username, "--password-stdin", "--json"];
    for g in groups {
        args.extend(["--group", g]);
    }
    json_of(&ok(db, &args, Some("a password\n")))
}

fn audit_kinds(db: &TestDb) -> Vec<Value> {
    let v = json_of(&ok(db, &["audit", "--json"], None));
    v.as_array().unwrap().clone()
}

#[tokio::test]
async fn group_add_list_remove() {
    let db = TestDb::fresh().await;
    let eng = json_of(&ok(&db, &["group", "add", "eng", "--json"], None));
    assert_eq!(eng["name"], "eng");
    assert_eq!(eng["members"], 0);
    assert!(ok(&db, &["group", "add", "Site Reliability"], None).contains("created group Site Reliability"));
    let err = fails(&db, 2, &["group", "add", "eng"]);
    assert!(err.contains("`eng` exists"), "{err}");
    add_user(&db, "alice", &["eng"]);

    let list = json_of(&ok(&db, &["group", "list", "--json"], None));
    let got: Vec<(String, i64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["name"].as_str().unwrap().to_string(), g["members"].as_i64().unwrap()))
        .collect();
    assert_eq!(got, [("Site Reliability".to_string(), 0), ("eng".to_string(), 1)]);
    assert_eq!(ok(&db, &["group", "list"], None), "Site Reliability\t0\neng\t1\n");

    assert!(ok(&db, &["group", "remove", "eng"], None).contains("removed group eng"));
    let err = fails(&db, 1, &["group", "remove", "eng"]);
    assert!(err.contains("no group `eng`"), "{err}");
    let shown = json_of(&ok(&db, &["user", "show", "alice", "--json"], None));
    assert_eq!(shown["groups"], json!([]), "the membership went with the group");

    let kinds: Vec<String> = audit_kinds(&db).iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "group.created").count(), 2, "{kinds:?}");
    assert!(kinds.contains(&"group.removed".to_string()), "{kinds:?}");
}

#[tokio::test]
async fn user_groups_are_set_by_add_and_replaced_or_cleared_by_update() {
    let db = TestDb::fresh().await;
    ok(&db, &["group", "add", "eng"], None);
    ok(&db, &["group", "add", "ops"], None);
    let alice = add_user(&db, "alice", &["ops", "eng", "ops"]);
    assert_eq!(alice["groups"], json!(["eng", "ops"]));

    // An unknown group: exit 1, and the user is not created.
    let err = fails(&db, 1, &["user", "add", "--username", "bob", "--password-stdin", "--group", "nope"]);
    assert!(err.contains("no group `nope`"), "{err}");
    fails(&db, 1, &["user", "show", "bob"]);

    let v = json_of(&ok(&db, &["user", "update", "alice", "--group", "ops", "--json"], None));
    assert_eq!(v["groups"], json!(["ops"]));
    assert_eq!(v["username"], "alice");
    let err = fails(&db, 1, &["user", "update", "alice", "--group", "eng", "--group", "nope"]);
    assert!(err.contains("no group `nope`"), "{err}");
    let shown = json_of(&ok(&db, &["user", "show", "alice", "--json"], None));
    assert_eq!(shown["groups"], json!(["ops"]), "a failed update changes nothing");
    assert!(ok(&db, &["user", "update", "alice", "--no-groups"], None).contains("belongs to no group"));
    let shown = json_of(&ok(&db, &["user", "show", "alice", "--json"], None));
    assert_eq!(shown["groups"], json!([]));
    let err = fails(&db, 1, &["user", "update", "nobody", "--group", "eng"]);
    assert!(err.contains("no user `nobody`"), "{err}");

    let id = alice["id"].as_str().unwrap();
    let sets: Vec<Value> = audit_kinds(&db).into_iter().filter(|e| e["kind"] == "user.groups_set").collect();
    assert_eq!(sets.len(), 2, "{sets:?}");
    assert_eq!(sets[0]["detail"], json!({"user": id, "groups": ["ops"]}));
    assert_eq!(sets[1]["detail"], json!({"user": id, "groups": []}));
}

#[tokio::test]
async fn role_grant_revoke_and_list() {
    let db = TestDb::fresh().await;
    ok(&db, &["group", "add", "eng"], None);
    let alice = add_user(&db, "alice", &["eng"]);
    let alice_id = alice["id"].as_str().unwrap().to_string();
    let app = json_of(&ok(
        &db,
        &["client", "add", "--name", "App", "--redirect-uri", "https://app.example/cb", "--json"],
        None,
    ));
    let app = app["client_id"].as_str().unwrap().to_string();
    let scope =
        json_of(&ok(&db, &["client", "show", "--json", "--", &app], None))["scope"].as_str().unwrap().to_string();
    let scopes: Vec<&str> = scope.split(' ').collect();
    assert!(
        scopes.contains(&"groups") && scopes.contains(&"roles"),
        "new clients may ask for groups and roles: {scope}"
    );

    assert!(
        ok(&db, &["role", "grant", "admin", "--user", "alice"], None)
            .contains("granted role admin of user alice for every client")
    );
    assert!(ok(&db, &["role", "grant", "admin", "--user", &alice_id], None).contains("already granted"), "by id too");
    ok(&db, &["role", "grant", "deployer", "--group", "eng", "--client", &app], None);
    ok(&db, &["role", "grant", "auditor", "--group", "eng"], None);

    let all = json_of(&ok(&db, &["role", "list", "--json"], None));
    assert_eq!(
        all,
        json!([
            {"role": "admin", "user": "alice", "group": null, "client_id": null, "created_at": all[0]["created_at"]},
            {"role": "auditor", "user": null, "group": "eng", "client_id": null, "created_at": all[1]["created_at"]},
            {"role": "deployer", "user": null, "group": "eng", "client_id": app, "created_at": all[2]["created_at"]},
        ])
    );
    assert_eq!(
        ok(&db, &["role", "list", "--group", "eng"], None),
        format!("auditor\tgroup:eng\t*\ndeployer\tgroup:eng\t{app}\n")
    );
    assert_eq!(json_of(&ok(&db, &["role", "list", "--user", "alice", "--json"], None)).as_array().unwrap().len(), 3);

    // What tokens for `app` and for any other client would carry.
    let store = latchkey_storage::open(&db.settings()).await.unwrap();
    let both = MembershipClaims { groups: true, roles: true };
    let m = store.memberships(&alice_id, &app, both).await.unwrap();
    assert_eq!(
        (m.groups, m.roles),
        (vec!["eng".to_string()], vec!["admin".into(), "auditor".into(), "deployer".into()])
    );
    assert_eq!(store.memberships(&alice_id, "another-client", both).await.unwrap().roles, ["admin", "auditor"]);

    // Revoke needs the same holder and client as the grant.
    let err = fails(&db, 1, &["role", "revoke", "deployer", "--group", "eng"]);
    assert!(err.contains("no such grant: role deployer of group eng for every client"), "{err}");
    ok(&db, &["role", "revoke", "deployer", "--group", "eng", "--client", &app], None);
    ok(&db, &["role", "revoke", "admin", "--user", "alice"], None);
    assert_eq!(store.memberships(&alice_id, &app, both).await.unwrap().roles, ["auditor"]);
    store.close().await;

    let events = audit_kinds(&db);
    let granted: Vec<&Value> = events.iter().filter(|e| e["kind"] == "role.granted").collect();
    assert_eq!(granted.len(), 3, "a repeated grant is not a new event: {granted:?}");
    assert_eq!(granted[0]["detail"], json!({"role": "admin", "user": alice_id}));
    assert_eq!(granted[1]["client_id"], app.as_str());
    assert_eq!(events.iter().filter(|e| e["kind"] == "role.revoked").count(), 2);
}

#[tokio::test]
async fn bad_arguments_exit_2_and_unknown_names_exit_1_each_with_one_line() {
    let db = TestDb::fresh().await;
    ok(&db, &["group", "add", "eng"], None);
    add_user(&db, "alice", &[]);
    let long = "r".repeat(129);
    for args in [
        &["group", "add"][..],
        &["group", "add", ""][..],
        &["group", "add", " eng"][..],
        &["group", "add", "line\nbreak"][..],
        &["group", "add", &long][..],
        &["group", "frobnicate"][..],
        &["role", "grant", "admin"][..],
        &["role", "grant", "admin", "--user", "alice", "--group", "eng"][..],
        &["role", "grant", "", "--user", "alice"][..],
        &["role", "grant", &long, "--user", "alice"][..],
        &["role", "grant", "tab\there", "--group", "eng"][..],
        &["role", "revoke", "admin"][..],
        &["role", "list", "--user", "alice", "--group", "eng"][..],
        &["role", "frobnicate"][..],
        &["user", "update", "alice"][..],
        &["user", "update", "alice", "--group", "eng", "--no-groups"][..],
        &["user", "update", "alice", "--group", "bad\u{7}name"][..],
        &["user", "add", "--username", "carol", "--password-stdin", "--group", "eng "][..],
    ] {
        fails(&db, 2, args);
    }
    for (args, names) in [
        (&["role", "grant", "admin", "--user", "nobody"][..], "nobody"),
        (&["role", "grant", "admin", "--user", "no\nbody"][..], "no\\nbody"),
        (&["role", "grant", "admin", "--group", "nogroup"][..], "nogroup"),
        (&["role", "grant", "admin", "--user", "alice", "--client", "noclient"][..], "noclient"),
        // Client ids are base64url: one may start with '-'.
        (&["role", "grant", "admin", "--user", "alice", "--client", "-Kno"][..], "no client `-Kno`"),
        (&["role", "revoke", "never-granted", "--user", "alice"][..], "never-granted"),
        (&["role", "list", "--user", "nobody"][..], "nobody"),
        (&["role", "list", "--group", "nogroup"][..], "nogroup"),
        (&["user", "update", "alice", "--group", "nogroup"][..], "nogroup"),
    ] {
        let err = fails(&db, 1, args);
        assert!(err.contains(names), "{args:?}: {err}");
    }
    // Nothing was granted or created by any of them.
    assert_eq!(json_of(&ok(&db, &["role", "list", "--json"], None)), json!([]));
    fails(&db, 1, &["user", "show", "carol"]);
}
