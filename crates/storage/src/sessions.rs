//! Browser sessions. Here: the SQL text, the row types (read by column name), and the store trait's
//! implementation, expanded once per backend (the code is the same; only the sqlx database type
//! differs).

use crate::sql::from_json;
use crate::{SessionRecord, StoreError, StoreResult};
use latchkey_core::TokenHash;

pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions (id_hash, sid, user_id, auth_time, acr, amr, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(crate) const SELECT_SESSION: &str = "SELECT id_hash, sid, user_id, auth_time, acr, amr, created_at, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2";

pub(crate) const DELETE_SESSION: &str = "DELETE FROM sessions WHERE id_hash = $1 RETURNING id_hash, sid, user_id, auth_time, acr, amr, created_at, expires_at";

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id_hash: String,
    sid: String,
    user_id: String,
    auth_time: i64,
    acr: Option<String>,
    amr: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<SessionRow> for SessionRecord {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> StoreResult<SessionRecord> {
        Ok(SessionRecord {
            amr: from_json("amr", &r.amr)?,
            id_hash: TokenHash::from_stored(r.id_hash),
            sid: r.sid,
            user_id: r.user_id,
            auth_time: r.auth_time,
            acr: r.acr,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

macro_rules! impl_session_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::SessionStore for $ty {
            async fn create_session(&self, s: &$crate::SessionRecord) -> $crate::StoreResult<()> {
                sqlx::query($crate::sessions::INSERT_SESSION)
                    .bind(s.id_hash.as_str())
                    .bind(&s.sid)
                    .bind(&s.user_id)
                    .bind(s.auth_time)
                    .bind(&s.acr)
                    .bind($crate::sql::to_json(&s.amr)?)
                    .bind(s.created_at)
                    .bind(s.expires_at)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn get_session(
                &self,
                id_hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<Option<$crate::SessionRecord>> {
                let row: Option<$crate::sessions::SessionRow> = sqlx::query_as($crate::sessions::SELECT_SESSION)
                    .bind(id_hash.as_str())
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn delete_session(
                &self,
                id_hash: &latchkey_core::TokenHash,
            ) -> $crate::StoreResult<Option<$crate::SessionRecord>> {
                let row: Option<$crate::sessions::SessionRow> = sqlx::query_as($crate::sessions::DELETE_SESSION)
                    .bind(id_hash.as_str())
                    .fetch_optional(&mut *self.write().await?)
                    .await?;
                row.map(TryInto::try_into).transpose()
            }
        }
    };
}

pub(crate) use impl_session_store;
