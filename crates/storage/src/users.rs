//! Users: accounts and password hashes. Here: the SQL text, the row types (read by column name),
//! and the store trait's implementation, expanded once per backend (the code is the same; only the
//! sqlx database type differs).

use crate::sql::from_json;
use crate::{StoreError, StoreResult};
use latchkey_core::model::User;

pub(crate) const INSERT_USER: &str = "INSERT INTO users (id, username, password_hash, email, email_verified, name, claims, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) const SELECT_USER: &str = "SELECT id, username, password_hash, email, email_verified, name, claims, created_at, updated_at FROM users WHERE id = $1";

pub(crate) const SELECT_USER_BY_NAME: &str = "SELECT id, username, password_hash, email, email_verified, name, claims, created_at, updated_at FROM users WHERE username = $1";

pub(crate) const LIST_USERS: &str = "SELECT id, username, password_hash, email, email_verified, name, claims, created_at, updated_at FROM users ORDER BY username";

pub(crate) const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";

pub(crate) const DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1";

pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) password_hash: String,
    pub(crate) email: Option<String>,
    pub(crate) email_verified: bool,
    pub(crate) name: Option<String>,
    pub(crate) claims: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> StoreResult<User> {
        Ok(User {
            claims: from_json("claims", &r.claims)?,
            id: r.id,
            username: r.username,
            password_hash: r.password_hash,
            email: r.email,
            email_verified: r.email_verified,
            name: r.name,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

macro_rules! impl_user_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::UserStore for $ty {
            async fn create_user(&self, u: &latchkey_core::model::User) -> $crate::StoreResult<$crate::Created> {
                let r = sqlx::query($crate::users::INSERT_USER)
                    .bind(&u.id)
                    .bind(&u.username)
                    .bind(&u.password_hash)
                    .bind(&u.email)
                    .bind(u.email_verified)
                    .bind(&u.name)
                    .bind($crate::sql::to_json(&u.claims)?)
                    .bind(u.created_at)
                    .bind(u.updated_at)
                    .execute(&mut *self.write().await?)
                    .await;
                match r {
                    Ok(_) => Ok($crate::Created::Created),
                    Err(e) if $crate::sql::is_unique_violation(&e) => Ok($crate::Created::AlreadyExists),
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_user(&self, id: &str) -> $crate::StoreResult<Option<latchkey_core::model::User>> {
                if let Some(f) = self.fast() {
                    return f.get_user(id);
                }
                if let Some(b) = self.batched() {
                    return b.get_user(id).await;
                }
                let row: Option<$crate::users::UserRow> =
                    sqlx::query_as($crate::users::SELECT_USER).bind(id).fetch_optional(&self.pool).await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn get_user_by_username(
                &self,
                username: &str,
            ) -> $crate::StoreResult<Option<latchkey_core::model::User>> {
                let row: Option<$crate::users::UserRow> = sqlx::query_as($crate::users::SELECT_USER_BY_NAME)
                    .bind(username)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn list_users(&self) -> $crate::StoreResult<Vec<latchkey_core::model::User>> {
                let rows: Vec<$crate::users::UserRow> =
                    sqlx::query_as($crate::users::LIST_USERS).fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn set_password(
                &self,
                id: &str,
                password_hash: &str,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.begin().await?;
                let r = sqlx::query($crate::users::SET_PASSWORD)
                    .bind(id)
                    .bind(password_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($crate::users::DELETE_USER_SESSIONS).bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(r.rows_affected() == 1)
            }

            async fn delete_user(&self, id: &str) -> $crate::StoreResult<bool> {
                let r = sqlx::query($crate::users::DELETE_USER).bind(id).execute(&mut *self.write().await?).await?;
                Ok(r.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_user_store;
