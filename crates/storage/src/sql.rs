//! What every aggregate's SQL shares: JSON columns, unique-violation detection, and the gated
//! write connection. The SQL text, rows and store impls live with their aggregate (`clients`,
//! `users`, `directory`, `keys`, `audit`, `sessions`, `flows`, `grants`, `limits`,
//! `maintenance`, `oidc`, `health`; single use in `single_use`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{StoreError, StoreResult};

pub(crate) fn to_json<T: Serialize + ?Sized>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_json<T: DeserializeOwned>(column: &str, s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

/// Held while a sqlx write runs, so that it never overlaps a batch of the SQLite writer thread.
pub(crate) type Gate = tokio::sync::OwnedMutexGuard<()>;

/// A write connection or transaction, with the SQLite write gate held for as long as it lives
/// (see `fast`); it dereferences to the connection, so `&mut *w` is an executor.
pub(crate) struct Gated<T> {
    pub(crate) inner: T,
    pub(crate) _gate: Option<Gate>,
}

impl<T: std::ops::Deref> std::ops::Deref for Gated<T> {
    type Target = T::Target;
    fn deref(&self) -> &T::Target {
        &self.inner
    }
}

impl<T: std::ops::DerefMut> std::ops::DerefMut for Gated<T> {
    fn deref_mut(&mut self) -> &mut T::Target {
        &mut self.inner
    }
}

impl<DB: sqlx::Database> Gated<sqlx::Transaction<'static, DB>> {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}
