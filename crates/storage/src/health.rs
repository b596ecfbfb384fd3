//! Health: ping, close, pool statistics. Here: the SQL text, the row types (read by column name),
//! and the store trait's implementation, expanded once per backend (the code is the same; only the
//! sqlx database type differs).

macro_rules! impl_health_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::HealthStore for $ty {
            async fn ping(&self) -> $crate::StoreResult<()> {
                let _: (i32,) = sqlx::query_as("SELECT 1").fetch_one(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                if let Some(f) = self.fast() {
                    f.close().await;
                }
                self.pool.close().await;
                self.writer.close().await;
            }

            fn backend(&self) -> latchkey_core::settings::Backend {
                Self::BACKEND
            }

            fn pool_stats(&self) -> (u32, usize) {
                (self.pool.size(), self.pool.num_idle())
            }
        }
    };
}

pub(crate) use impl_health_store;
