//! Durable security events (`audit_events`). Recording never fails the request: an error is
//! logged as a warning. Details never hold a secret, password or token.

use crate::AppState;
use serde_json::Value;

pub async fn record(
    state: &AppState,
    kind: &str,
    actor: Option<&str>,
    client_id: Option<&str>,
    ip: Option<String>,
    detail: Value,
) {
    let e = latchkey_storage::AuditEvent {
        at: state.now(),
        kind: kind.into(),
        actor: actor.map(str::to_owned),
        client_id: client_id.map(str::to_owned),
        ip,
        detail: detail.to_string(),
    };
    if let Err(err) = state.store.record_audit(&e).await {
        tracing::warn!(error = %err, kind, "could not record audit event");
    }
}

/// A replayed authorization code or refresh token (RFC 9700 §4.14): its grant was revoked.
pub async fn token_reuse(state: &AppState, kind: &str, client_id: &str, grant_id: &str) {
    record(state, kind, None, Some(client_id), None, serde_json::json!({"grant_id": grant_id})).await;
}

/// A valid code or refresh token refused without being spent (presented by another client,
/// with a wrong redirect URI or verifier, or asking for a wider scope): another client holding
/// someone else's credential is worth an operator's attention.
pub async fn token_refused(state: &AppState, kind: &str, client_id: &str, reason: &str) {
    record(state, kind, None, Some(client_id), None, serde_json::json!({"reason": reason})).await;
}
