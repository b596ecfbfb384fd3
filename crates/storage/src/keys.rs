//! Signing keys and the `meta` table (master-key check, sealed values). Here: the SQL text, the row
//! types (read by column name), and the store trait's implementation, expanded once per backend
//! (the code is the same; only the sqlx database type differs).

use crate::KeyRecord;

pub(crate) const LIST_KEYS: &str = "SELECT kid, alg, public_jwk, private_key, created_at, activates_at, retired_at FROM signing_keys ORDER BY activates_at, created_at, kid";

pub(crate) const COUNT_KEYS_FOR_ALG: &str = "SELECT COUNT(*) FROM signing_keys WHERE alg = $1";

pub(crate) const INSERT_KEY: &str = "INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at, activates_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const RETIRE_KEYS: &str = "UPDATE signing_keys SET retired_at = $2 WHERE alg = $1 AND (retired_at IS NULL OR retired_at > $2) AND activates_at < $2";

pub(crate) const PRUNE_KEYS: &str = "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1";

pub(crate) const REWRAP_KEY: &str = "UPDATE signing_keys SET private_key = $2 WHERE kid = $1";

/// A sealed value with what it belongs to (a key's kid, a client's id).
#[derive(sqlx::FromRow)]
pub(crate) struct SealedRow {
    pub(crate) id: String,
    pub(crate) sealed: String,
}

pub(crate) const LIST_SEALED_KEYS: &str = "SELECT kid AS id, private_key AS sealed FROM signing_keys ORDER BY kid";

pub(crate) const LIST_SEALED_CLIENT_SECRETS: &str =
    "SELECT client_id AS id, secret_enc AS sealed FROM clients WHERE secret_enc IS NOT NULL ORDER BY client_id";

pub(crate) const SET_CLIENT_SECRET_ENC: &str = "UPDATE clients SET secret_enc = $2 WHERE client_id = $1";

pub(crate) const GET_META: &str = "SELECT value FROM meta WHERE key = $1";

pub(crate) const PUT_META_IF_ABSENT: &str =
    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";

pub(crate) const SET_META: &str = "UPDATE meta SET value = $2 WHERE key = $1";

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    kid: String,
    alg: String,
    public_jwk: String,
    private_key: String,
    created_at: i64,
    activates_at: i64,
    retired_at: Option<i64>,
}

impl From<KeyRow> for KeyRecord {
    fn from(r: KeyRow) -> Self {
        KeyRecord {
            kid: r.kid,
            alg: r.alg,
            public_jwk: r.public_jwk,
            private_key: r.private_key,
            created_at: r.created_at,
            activates_at: r.activates_at,
            retired_at: r.retired_at,
        }
    }
}

macro_rules! impl_key_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::KeyStore for $ty {
            async fn list_keys(&self) -> $crate::StoreResult<Vec<$crate::KeyRecord>> {
                let rows: Vec<$crate::keys::KeyRow> =
                    sqlx::query_as($crate::keys::LIST_KEYS).fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn insert_initial_keys(&self, keys: &[$crate::KeyRecord]) -> $crate::StoreResult<Vec<String>> {
                let mut tx = self.begin().await?;
                Self::lock_keys(&mut tx).await?;
                let mut inserted = Vec::new();
                for k in keys {
                    let (n,): (i64,) =
                        sqlx::query_as($crate::keys::COUNT_KEYS_FOR_ALG).bind(&k.alg).fetch_one(&mut *tx).await?;
                    if n == 0 {
                        sqlx::query($crate::keys::INSERT_KEY)
                            .bind(&k.kid)
                            .bind(&k.alg)
                            .bind(&k.public_jwk)
                            .bind(&k.private_key)
                            .bind(k.created_at)
                            .bind(k.activates_at)
                            .bind(k.retired_at)
                            .execute(&mut *tx)
                            .await?;
                        inserted.push(k.kid.clone());
                    }
                }
                tx.commit().await?;
                Ok(inserted)
            }

            async fn rotate_keys(&self, new_keys: &[$crate::KeyRecord]) -> $crate::StoreResult<()> {
                let mut tx = self.begin().await?;
                Self::lock_keys(&mut tx).await?;
                for k in new_keys {
                    sqlx::query($crate::keys::RETIRE_KEYS).bind(&k.alg).bind(k.activates_at).execute(&mut *tx).await?;
                    sqlx::query($crate::keys::INSERT_KEY)
                        .bind(&k.kid)
                        .bind(&k.alg)
                        .bind(&k.public_jwk)
                        .bind(&k.private_key)
                        .bind(k.created_at)
                        .bind(k.activates_at)
                        .bind(k.retired_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn prune_keys(&self, retired_before: latchkey_core::UnixTime) -> $crate::StoreResult<u64> {
                let r = sqlx::query($crate::keys::PRUNE_KEYS)
                    .bind(retired_before)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected())
            }

            async fn rewrap_keys(&self, rewrapped: &[(String, String)], check: &str) -> $crate::StoreResult<()> {
                let mut tx = self.begin().await?;
                Self::lock_keys(&mut tx).await?;
                for (kid, private_key) in rewrapped {
                    sqlx::query($crate::keys::REWRAP_KEY).bind(kid).bind(private_key).execute(&mut *tx).await?;
                }
                sqlx::query($crate::keys::SET_META).bind("master_key_check").bind(check).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn reseal_all(
                &self,
                meta_keys: &[&str],
                reseal: $crate::Reseal<'_>,
            ) -> $crate::StoreResult<Result<$crate::SealedValues, String>> {
                let mut tx = self.begin().await?;
                Self::lock_keys(&mut tx).await?;
                Self::lock_sealed(&mut tx).await?;
                let keys: Vec<$crate::keys::SealedRow> =
                    sqlx::query_as($crate::keys::LIST_SEALED_KEYS).fetch_all(&mut *tx).await?;
                let keys: Vec<(String, String)> = keys.into_iter().map(|r| (r.id, r.sealed)).collect();
                let client_secrets: Vec<$crate::keys::SealedRow> =
                    sqlx::query_as($crate::keys::LIST_SEALED_CLIENT_SECRETS).fetch_all(&mut *tx).await?;
                let client_secrets: Vec<(String, String)> =
                    client_secrets.into_iter().map(|r| (r.id, r.sealed)).collect();
                let mut meta = Vec::new();
                for k in meta_keys {
                    let row: Option<(String,)> =
                        sqlx::query_as($crate::keys::GET_META).bind(*k).fetch_optional(&mut *tx).await?;
                    if let Some((v,)) = row {
                        meta.push(((*k).to_owned(), v));
                    }
                }
                let fresh = match reseal($crate::SealedValues { keys, client_secrets, meta }) {
                    Ok(v) => v,
                    Err(reason) => {
                        tx.rollback().await?;
                        return Ok(Err(reason));
                    }
                };
                for (kid, private_key) in &fresh.keys {
                    sqlx::query($crate::keys::REWRAP_KEY).bind(kid).bind(private_key).execute(&mut *tx).await?;
                }
                for (client_id, enc) in &fresh.client_secrets {
                    sqlx::query($crate::keys::SET_CLIENT_SECRET_ENC)
                        .bind(client_id)
                        .bind(enc)
                        .execute(&mut *tx)
                        .await?;
                }
                for (k, v) in &fresh.meta {
                    sqlx::query($crate::keys::SET_META).bind(k).bind(v).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(Ok(fresh))
            }

            async fn get_meta(&self, key: &str) -> $crate::StoreResult<Option<String>> {
                let row: Option<(String,)> =
                    sqlx::query_as($crate::keys::GET_META).bind(key).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.0))
            }

            async fn put_meta_if_absent(&self, key: &str, value: &str) -> $crate::StoreResult<String> {
                sqlx::query($crate::keys::PUT_META_IF_ABSENT)
                    .bind(key)
                    .bind(value)
                    .execute(&mut *self.write().await?)
                    .await?;
                let (v,): (String,) = sqlx::query_as($crate::keys::GET_META).bind(key).fetch_one(&self.pool).await?;
                Ok(v)
            }
        }
    };
}

pub(crate) use impl_key_store;
