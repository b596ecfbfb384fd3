use crate::fresh_store;
use latchkey_storage::AuditEvent;

fn event(at: i64, kind: &str) -> AuditEvent {
    AuditEvent {
        at,
        kind: kind.to_string(),
        actor: Some(format!("actor-{at}")),
        client_id: Some("client-1".into()),
        ip: Some("192.0.2.7".into()),
        detail: format!(r#"{{"n":{at},"note":"ünïcode \"quoted\""}}"#),
    }
}

#[tokio::test]
async fn audit_events_round_trip_in_recording_order() {
    let (_db, store) = fresh_store().await;
    let bare = AuditEvent { at: 150, kind: "cli".into(), actor: None, client_id: None, ip: None, detail: "{}".into() };
    let events = [event(100, "login"), bare, event(300, "logout"), event(200, "key.rotate")];
    for e in &events {
        store.record_audit(e).await.unwrap();
    }
    assert_eq!(store.list_audit(0, 100).await.unwrap(), events.to_vec());
}

#[tokio::test]
async fn list_audit_filters_by_since_inclusively() {
    let (_db, store) = fresh_store().await;
    for at in [100, 200, 300] {
        store.record_audit(&event(at, "k")).await.unwrap();
    }
    let got: Vec<i64> = store.list_audit(200, 100).await.unwrap().iter().map(|e| e.at).collect();
    assert_eq!(got, vec![200, 300]);
    let got: Vec<i64> = store.list_audit(201, 100).await.unwrap().iter().map(|e| e.at).collect();
    assert_eq!(got, vec![300]);
    assert!(store.list_audit(301, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn list_audit_returns_at_most_limit_events_oldest_first() {
    let (_db, store) = fresh_store().await;
    for at in [100, 200, 300, 400] {
        store.record_audit(&event(at, "k")).await.unwrap();
    }
    let got: Vec<i64> = store.list_audit(0, 2).await.unwrap().iter().map(|e| e.at).collect();
    assert_eq!(got, vec![100, 200]);
    let got: Vec<i64> = store.list_audit(200, 2).await.unwrap().iter().map(|e| e.at).collect();
    assert_eq!(got, vec![200, 300]);
    assert!(store.list_audit(0, 0).await.unwrap().is_empty());
}
