use crate::support::{TestDb, exec_sql};
use crate::{fresh_store, key};
use latchkey_storage::{KeyRecord, Store};
use std::collections::BTreeMap;
use std::sync::Arc;

fn kids(keys: &[KeyRecord]) -> Vec<&str> {
    keys.iter().map(|k| k.kid.as_str()).collect()
}

fn by_kid(keys: Vec<KeyRecord>) -> BTreeMap<String, KeyRecord> {
    keys.into_iter().map(|k| (k.kid.clone(), k)).collect()
}

#[tokio::test]
async fn keys_round_trip_every_field() {
    let (_db, store) = fresh_store().await;
    assert!(store.list_keys().await.unwrap().is_empty());
    let a = key("k-a", "RS256", 1_000, None);
    let b = key("k-b", "ES256", 2_000, Some(3_000));
    assert_eq!(store.insert_initial_keys(&[a.clone(), b.clone()]).await.unwrap(), vec!["k-a", "k-b"]);
    assert_eq!(store.list_keys().await.unwrap(), vec![a, b]);
}

#[tokio::test]
async fn insert_initial_keys_inserts_only_for_algorithms_without_a_key() {
    let (_db, store) = fresh_store().await;
    let first = [key("rs-1", "RS256", 1_000, None), key("es-1", "ES256", 1_000, None)];
    assert_eq!(store.insert_initial_keys(&first).await.unwrap(), vec!["rs-1", "es-1"]);

    // Same algorithms again: nothing is inserted.
    let again = [key("rs-2", "RS256", 1_100, None), key("es-2", "ES256", 1_100, None)];
    assert!(store.insert_initial_keys(&again).await.unwrap().is_empty());
    let listed = store.list_keys().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(by_kid(listed), by_kid(first.to_vec()));

    // A mix: only the algorithm without a key gets one.
    let mixed = [key("rs-3", "RS256", 1_200, None), key("ed-1", "EdDSA", 1_200, None)];
    assert_eq!(store.insert_initial_keys(&mixed).await.unwrap(), vec!["ed-1"]);
    let listed = store.list_keys().await.unwrap();
    let mut got = kids(&listed);
    got.sort_unstable();
    assert_eq!(got, vec!["ed-1", "es-1", "rs-1"]);
}

#[tokio::test]
async fn insert_initial_keys_counts_retired_keys_as_existing() {
    let (_db, store) = fresh_store().await;
    store.insert_initial_keys(&[key("old", "PS256", 1_000, Some(1_500))]).await.unwrap();
    assert!(store.insert_initial_keys(&[key("new", "PS256", 2_000, None)]).await.unwrap().is_empty());
    assert_eq!(kids(&store.list_keys().await.unwrap()), vec!["old"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_insert_initial_keys_from_two_instances_leaves_exactly_one_set() {
    for round in 0..3 {
        let db = TestDb::fresh().await;
        let a: Arc<dyn Store> = latchkey_storage::open(&db.settings()).await.unwrap();
        let b: Arc<dyn Store> = latchkey_storage::open(&db.settings()).await.unwrap();
        let algs = ["RS256", "PS256", "ES256", "EdDSA"];
        let set_a: Vec<KeyRecord> = algs.iter().map(|alg| key(&format!("a-{alg}"), alg, 1_000, None)).collect();
        let set_b: Vec<KeyRecord> = algs.iter().map(|alg| key(&format!("b-{alg}"), alg, 1_000, None)).collect();

        let (ta, tb) = {
            let (a, b, set_a, set_b) = (a.clone(), b.clone(), set_a.clone(), set_b.clone());
            (
                tokio::spawn(async move { a.insert_initial_keys(&set_a).await }),
                tokio::spawn(async move { b.insert_initial_keys(&set_b).await }),
            )
        };
        let (ra, rb) = tokio::join!(ta, tb);
        let ra = ra.unwrap().unwrap();
        let rb = rb.unwrap().unwrap();

        let want_a: Vec<String> = kids(&set_a).into_iter().map(String::from).collect();
        let want_b: Vec<String> = kids(&set_b).into_iter().map(String::from).collect();
        let winner = match (ra.is_empty(), rb.is_empty()) {
            (false, true) => {
                assert_eq!(ra, want_a, "round {round}");
                set_a
            }
            (true, false) => {
                assert_eq!(rb, want_b, "round {round}");
                set_b
            }
            _ => panic!("round {round}: exactly one instance must insert; got a={ra:?} b={rb:?}"),
        };
        let stored = a.list_keys().await.unwrap();
        assert_eq!(by_kid(stored.clone()), by_kid(winner), "round {round}");
        assert_eq!(b.list_keys().await.unwrap(), stored, "both handles see the same keys");
        a.close().await;
        b.close().await;
    }
}

#[tokio::test]
async fn rotate_keys_retires_older_keys_of_the_same_alg_when_the_new_key_activates() {
    let (_db, store) = fresh_store().await;
    let rs_old = key("rs-old", "RS256", 1_000, None);
    // A key retired earlier than the coming rotation; inserting it through rotate_keys
    // leaves rs-old alone, since rs-gone activates before rs-old does.
    let rs_gone = key("rs-gone", "RS256", 500, Some(900));
    let es = key("es-1", "ES256", 1_000, None);
    store.insert_initial_keys(&[rs_old.clone(), es.clone()]).await.unwrap();
    store.rotate_keys(std::slice::from_ref(&rs_gone)).await.unwrap();
    let ks = by_kid(store.list_keys().await.unwrap());
    assert_eq!(ks["rs-old"].retired_at, None, "a key activating earlier retires nothing");
    assert_eq!(ks["rs-gone"].retired_at, Some(900));

    let rs_new = key("rs-new", "RS256", 5_000, None);
    store.rotate_keys(std::slice::from_ref(&rs_new)).await.unwrap();

    let ks = by_kid(store.list_keys().await.unwrap());
    assert_eq!(ks.len(), 4);
    assert_eq!(ks["rs-old"].retired_at, Some(5_000), "current key retires when the new one activates");
    assert_eq!(ks["rs-gone"].retired_at, Some(900), "an earlier retirement is kept");
    assert_eq!(ks["es-1"], es, "other algorithms are left alone");
    assert_eq!(ks["rs-new"], rs_new, "the new key is stored as given");
    // Everything but retired_at is unchanged on the retired key.
    assert_eq!(KeyRecord { retired_at: None, ..ks["rs-old"].clone() }, rs_old);
}

#[tokio::test]
async fn rotate_keys_handles_several_algorithms_in_one_call() {
    let (_db, store) = fresh_store().await;
    let initial =
        [key("rs-1", "RS256", 1_000, None), key("es-1", "ES256", 1_000, None), key("ed-1", "EdDSA", 1_000, None)];
    store.insert_initial_keys(&initial).await.unwrap();
    store.rotate_keys(&[key("rs-2", "RS256", 4_000, None), key("es-2", "ES256", 6_000, None)]).await.unwrap();

    let ks = by_kid(store.list_keys().await.unwrap());
    assert_eq!(ks["rs-1"].retired_at, Some(4_000));
    assert_eq!(ks["es-1"].retired_at, Some(6_000));
    assert_eq!(ks["ed-1"].retired_at, None, "EdDSA was not rotated");
    assert_eq!(ks["rs-2"].retired_at, None);
    assert_eq!(ks["es-2"].retired_at, None);
}

#[tokio::test]
async fn a_second_rotation_pulls_the_pending_retirement_forward() {
    let (_db, store) = fresh_store().await;
    store.insert_initial_keys(&[key("k1", "RS256", 1_000, None)]).await.unwrap();
    store.rotate_keys(&[key("k2", "RS256", 5_000, None)]).await.unwrap();
    store.rotate_keys(&[key("k3", "RS256", 6_000, None)]).await.unwrap();
    let ks = by_kid(store.list_keys().await.unwrap());
    assert_eq!(ks["k1"].retired_at, Some(5_000), "k1 already retires before k3 activates");
    assert_eq!(ks["k2"].retired_at, Some(6_000));
    assert_eq!(ks["k3"].retired_at, None);
}

#[tokio::test]
async fn prune_keys_removes_only_keys_retired_before_the_cutoff() {
    let (_db, store) = fresh_store().await;
    store
        .rotate_keys(&[
            key("early", "RS256", 100, Some(500)),
            key("at-cutoff", "PS256", 100, Some(1_000)),
            key("late", "ES256", 100, Some(1_500)),
            key("current", "EdDSA", 100, None),
        ])
        .await
        .unwrap();
    assert_eq!(store.prune_keys(1_000).await.unwrap(), 1);
    let mut left = kids(&store.list_keys().await.unwrap()).into_iter().map(String::from).collect::<Vec<_>>();
    left.sort_unstable();
    assert_eq!(left, vec!["at-cutoff", "current", "late"]);

    assert_eq!(store.prune_keys(1_000).await.unwrap(), 0, "nothing more to prune");
    assert_eq!(store.prune_keys(i64::MAX).await.unwrap(), 2, "never prunes an unretired key");
    assert_eq!(kids(&store.list_keys().await.unwrap()), vec!["current"]);
}

#[tokio::test]
async fn put_meta_if_absent_keeps_the_first_value() {
    let (_db, store) = fresh_store().await;
    assert_eq!(store.get_meta("master_key_check").await.unwrap(), None);
    assert_eq!(store.put_meta_if_absent("master_key_check", "first").await.unwrap(), "first");
    assert_eq!(store.put_meta_if_absent("master_key_check", "second").await.unwrap(), "first");
    assert_eq!(store.get_meta("master_key_check").await.unwrap().as_deref(), Some("first"));
    assert_eq!(store.put_meta_if_absent("other", "x").await.unwrap(), "x", "keys are independent");
    assert_eq!(store.get_meta("master_key_check").await.unwrap().as_deref(), Some("first"));
}

#[tokio::test]
async fn rewrap_keys_replaces_private_keys_and_the_master_key_check() {
    let (_db, store) = fresh_store().await;
    let k1 = key("k1", "RS256", 1_000, None);
    let k2 = key("k2", "ES256", 1_000, Some(2_000));
    let k3 = key("k3", "EdDSA", 1_000, None);
    store.insert_initial_keys(&[k1.clone(), k2.clone(), k3.clone()]).await.unwrap();
    store.put_meta_if_absent("master_key_check", "check-under-old").await.unwrap();

    store
        .rewrap_keys(&[("k1".into(), "k1-under-new".into()), ("k2".into(), "k2-under-new".into())], "check-under-new")
        .await
        .unwrap();

    let ks = by_kid(store.list_keys().await.unwrap());
    assert_eq!(ks["k1"], KeyRecord { private_key: "k1-under-new".into(), ..k1 });
    assert_eq!(ks["k2"], KeyRecord { private_key: "k2-under-new".into(), ..k2 });
    assert_eq!(ks["k3"], k3, "keys not listed are untouched");
    assert_eq!(store.get_meta("master_key_check").await.unwrap().as_deref(), Some("check-under-new"));
}

/// Make every UPDATE of `meta` fail, on either backend.
async fn break_meta_updates(db: &TestDb) {
    if db.is_postgres() {
        exec_sql(
            db,
            "CREATE FUNCTION lk_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'meta is read-only'; END $$;
             CREATE TRIGGER lk_test_fail BEFORE UPDATE ON meta FOR EACH ROW EXECUTE FUNCTION lk_test_fail();",
        )
        .await;
    } else {
        exec_sql(
            db,
            "CREATE TRIGGER lk_test_fail BEFORE UPDATE ON meta BEGIN SELECT RAISE(ABORT, 'meta is read-only'); END;",
        )
        .await;
    }
}

#[tokio::test]
async fn rewrap_keys_changes_nothing_when_the_check_cannot_be_written() {
    let (db, store) = fresh_store().await;
    let k1 = key("k1", "RS256", 1_000, None);
    store.insert_initial_keys(std::slice::from_ref(&k1)).await.unwrap();
    store.put_meta_if_absent("master_key_check", "check-under-old").await.unwrap();
    break_meta_updates(&db).await;

    let r = store.rewrap_keys(&[("k1".into(), "k1-under-new".into())], "check-under-new").await;
    assert!(r.is_err(), "the failing meta update must fail the rewrap");
    assert_eq!(store.list_keys().await.unwrap(), vec![k1], "private keys are rolled back");
    assert_eq!(store.get_meta("master_key_check").await.unwrap().as_deref(), Some("check-under-old"));
}

#[tokio::test]
async fn reseal_all_rewrites_keys_client_secrets_and_meta_or_nothing() {
    let (_db, store) = fresh_store().await;
    let k1 = key("k1", "RS256", 1_000, None);
    store.insert_initial_keys(std::slice::from_ref(&k1)).await.unwrap();
    store.put_meta_if_absent("master_key_check", "check-old").await.unwrap();
    store.put_meta_if_absent("pairwise_salt", "salt-old").await.unwrap();
    let c = latchkey_core::model::Client {
        client_id: "c1".into(),
        name: "C".into(),
        redirect_uris: vec!["https://rp.example/cb".into()],
        secret_enc: Some("secret-old".into()),
        ..Default::default()
    };
    store.create_client(&c).await.unwrap();
    let metas = ["master_key_check", "pairwise_salt"];

    let refuse =
        |_: latchkey_storage::SealedValues| -> Result<latchkey_storage::SealedValues, String> { Err("no".into()) };
    assert_eq!(store.reseal_all(&metas, &refuse).await.unwrap(), Err("no".to_string()));
    assert_eq!(store.get_meta("pairwise_salt").await.unwrap().as_deref(), Some("salt-old"));

    let bump = |v: latchkey_storage::SealedValues| -> Result<latchkey_storage::SealedValues, String> {
        let re = |xs: Vec<(String, String)>| xs.into_iter().map(|(k, v)| (k, v.replace("old", "new"))).collect();
        Ok(latchkey_storage::SealedValues {
            keys: v.keys.into_iter().map(|(k, v)| (k, format!("{v}-new"))).collect(),
            client_secrets: re(v.client_secrets),
            meta: re(v.meta),
        })
    };
    let seen = store.reseal_all(&metas, &bump).await.unwrap().unwrap();
    assert_eq!(seen.client_secrets, vec![("c1".to_string(), "secret-new".to_string())]);
    assert_eq!(seen.meta.len(), 2);
    assert_eq!(store.get_client("c1").await.unwrap().unwrap().secret_enc.as_deref(), Some("secret-new"));
    assert_eq!(store.get_meta("master_key_check").await.unwrap().as_deref(), Some("check-new"));
    assert_eq!(store.get_meta("pairwise_salt").await.unwrap().as_deref(), Some("salt-new"));
    assert_eq!(by_kid(store.list_keys().await.unwrap())["k1"].private_key, format!("{}-new", k1.private_key));
}
