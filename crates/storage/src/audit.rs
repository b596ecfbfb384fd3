//! The audit log. Here: the SQL text, the row types (read by column name), and the store trait's
//! implementation, expanded once per backend (the code is the same; only the sqlx database type
//! differs).

use crate::AuditEvent;

pub(crate) const INSERT_AUDIT: &str =
    "INSERT INTO audit_events (at, kind, actor, client_id, ip, detail) VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const LIST_AUDIT: &str =
    "SELECT at, kind, actor, client_id, ip, detail FROM audit_events WHERE at >= $1 ORDER BY id LIMIT $2";

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    at: i64,
    kind: String,
    actor: Option<String>,
    client_id: Option<String>,
    ip: Option<String>,
    detail: String,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent { at: r.at, kind: r.kind, actor: r.actor, client_id: r.client_id, ip: r.ip, detail: r.detail }
    }
}

macro_rules! impl_audit_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::AuditStore for $ty {
            async fn record_audit(&self, e: &$crate::AuditEvent) -> $crate::StoreResult<()> {
                sqlx::query($crate::audit::INSERT_AUDIT)
                    .bind(e.at)
                    .bind(&e.kind)
                    .bind(&e.actor)
                    .bind(&e.client_id)
                    .bind(&e.ip)
                    .bind(&e.detail)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn list_audit(
                &self,
                since: latchkey_core::UnixTime,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::AuditEvent>> {
                let rows: Vec<$crate::audit::AuditRow> =
                    sqlx::query_as($crate::audit::LIST_AUDIT).bind(since).bind(limit).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }
        }
    };
}

pub(crate) use impl_audit_store;
