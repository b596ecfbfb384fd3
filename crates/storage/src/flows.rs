//! Pending authorization requests (interactions) and remembered consent. Here: the SQL text, the
//! row types (read by column name), and the store trait's implementation, expanded once per backend
//! (the code is the same; only the sqlx database type differs).

use crate::sql::from_json;
use crate::{InteractionRecord, StoreError, StoreResult};
use latchkey_core::TokenHash;

pub(crate) const INSERT_INTERACTION: &str = "INSERT INTO interactions (id_hash, client_id, request, browser_hash, login_sid, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const SELECT_INTERACTION: &str = "SELECT id_hash, client_id, request, browser_hash, login_sid, consent, consent_user_id, consent_sid, created_at, expires_at FROM interactions WHERE id_hash = $1 AND expires_at > $2";

pub(crate) const SET_INTERACTION_LOGIN: &str = "UPDATE interactions SET login_sid = $2 WHERE id_hash = $1";

pub(crate) const SET_INTERACTION_CONSENT: &str =
    "UPDATE interactions SET consent = $2, consent_user_id = $3, consent_sid = $4 WHERE id_hash = $1";

pub(crate) const DELETE_INTERACTION: &str = "DELETE FROM interactions WHERE id_hash = $1";

pub(crate) const SELECT_CONSENT: &str = "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2";

pub(crate) const UPSERT_CONSENT: &str = "INSERT INTO consents (user_id, client_id, scopes, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct InteractionRow {
    id_hash: String,
    client_id: String,
    request: String,
    browser_hash: String,
    login_sid: Option<String>,
    consent: Option<String>,
    consent_user_id: Option<String>,
    consent_sid: Option<String>,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<InteractionRow> for InteractionRecord {
    type Error = StoreError;
    fn try_from(r: InteractionRow) -> StoreResult<InteractionRecord> {
        Ok(InteractionRecord {
            request: from_json("request", &r.request)?,
            id_hash: TokenHash::from_stored(r.id_hash),
            client_id: r.client_id,
            browser_hash: TokenHash::from_stored(r.browser_hash),
            login_sid: r.login_sid,
            // A decision is only a decision with the user and session that made it.
            consent: match (r.consent.as_deref(), r.consent_user_id, r.consent_sid) {
                (Some(d @ ("granted" | "denied")), Some(user_id), Some(sid)) => {
                    Some(crate::InteractionConsent { granted: d == "granted", user_id, sid })
                }
                _ => None,
            },
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

macro_rules! impl_flow_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::FlowStore for $ty {
            async fn create_interaction(&self, i: &$crate::InteractionRecord) -> $crate::StoreResult<()> {
                sqlx::query($crate::flows::INSERT_INTERACTION)
                    .bind(i.id_hash.as_str())
                    .bind(&i.client_id)
                    .bind($crate::sql::to_json(&i.request)?)
                    .bind(i.browser_hash.as_str())
                    .bind(&i.login_sid)
                    .bind(i.created_at)
                    .bind(i.expires_at)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }

            async fn get_interaction(
                &self,
                id_hash: &latchkey_core::TokenHash,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<Option<$crate::InteractionRecord>> {
                let row: Option<$crate::flows::InteractionRow> = sqlx::query_as($crate::flows::SELECT_INTERACTION)
                    .bind(id_hash.as_str())
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn set_interaction_login(
                &self,
                id_hash: &latchkey_core::TokenHash,
                sid: &str,
            ) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::flows::SET_INTERACTION_LOGIN)
                    .bind(id_hash.as_str())
                    .bind(sid)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_interaction_consent(
                &self,
                id_hash: &latchkey_core::TokenHash,
                consent: &$crate::InteractionConsent,
            ) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::flows::SET_INTERACTION_CONSENT)
                    .bind(id_hash.as_str())
                    .bind(if consent.granted { "granted" } else { "denied" })
                    .bind(&consent.user_id)
                    .bind(&consent.sid)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn take_interaction(&self, id_hash: &latchkey_core::TokenHash) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::flows::DELETE_INTERACTION)
                    .bind(id_hash.as_str())
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn get_consent(&self, user_id: &str, client_id: &str) -> $crate::StoreResult<Option<Vec<String>>> {
                let row: Option<(String,)> = sqlx::query_as($crate::flows::SELECT_CONSENT)
                    .bind(user_id)
                    .bind(client_id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|(s,)| $crate::sql::from_json("consents.scopes", &s)).transpose()
            }

            async fn put_consent(
                &self,
                user_id: &str,
                client_id: &str,
                scopes: &[String],
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<()> {
                sqlx::query($crate::flows::UPSERT_CONSENT)
                    .bind(user_id)
                    .bind(client_id)
                    .bind($crate::sql::to_json(scopes)?)
                    .bind(now)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_flow_store;
