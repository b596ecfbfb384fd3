//! Groups, memberships and role grants. Here: the SQL text, the row types (read by column name),
//! and the store trait's implementation, expanded once per backend (the code is the same; only the
//! sqlx database type differs).

pub(crate) const INSERT_GROUP: &str = "INSERT INTO groups (id, name, created_at) VALUES ($1, $2, $3)";

pub(crate) const SELECT_GROUP_BY_NAME: &str = "SELECT id, name, created_at FROM groups WHERE name = $1";

pub(crate) const LIST_GROUPS: &str = "SELECT g.id, g.name, g.created_at, COUNT(ug.user_id) AS members FROM groups g LEFT JOIN user_groups ug ON ug.group_id = g.id GROUP BY g.id, g.name, g.created_at";

pub(crate) const DELETE_GROUP: &str = "DELETE FROM groups WHERE name = $1";

pub(crate) const GROUP_ID_BY_NAME: &str = "SELECT id FROM groups WHERE name = $1";

pub(crate) const CLEAR_USER_GROUPS: &str = "DELETE FROM user_groups WHERE user_id = $1";

pub(crate) const INSERT_USER_GROUP: &str =
    "INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2) ON CONFLICT (user_id, group_id) DO NOTHING";

pub(crate) const LIST_USER_GROUPS: &str =
    "SELECT g.name FROM user_groups ug JOIN groups g ON g.id = ug.group_id WHERE ug.user_id = $1";

/// A duplicate (same role, holder and client; see the unique index) is skipped, not an error.
pub(crate) const INSERT_ROLE_GRANT: &str = "INSERT INTO role_grants (role, user_id, group_id, client_id, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

/// Absent values are bound as '' (ids are never empty), matching the unique index.
pub(crate) const DELETE_ROLE_GRANT: &str = "DELETE FROM role_grants WHERE role = $1 AND COALESCE(user_id, '') = $2 AND COALESCE(group_id, '') = $3 AND COALESCE(client_id, '') = $4";

pub(crate) const LIST_ROLE_GRANTS: &str = "SELECT rg.role, u.username, g.name AS group_name, rg.client_id, rg.created_at FROM role_grants rg LEFT JOIN users u ON u.id = rg.user_id LEFT JOIN groups g ON g.id = rg.group_id";

pub(crate) const LIST_USER_ROLE_GRANTS: &str = "SELECT rg.role, u.username, g.name AS group_name, rg.client_id, rg.created_at FROM role_grants rg LEFT JOIN users u ON u.id = rg.user_id LEFT JOIN groups g ON g.id = rg.group_id WHERE rg.user_id = $1 OR rg.group_id IN (SELECT group_id FROM user_groups WHERE user_id = $1)";

pub(crate) const LIST_GROUP_ROLE_GRANTS: &str = "SELECT rg.role, u.username, g.name AS group_name, rg.client_id, rg.created_at FROM role_grants rg LEFT JOIN users u ON u.id = rg.user_id LEFT JOIN groups g ON g.id = rg.group_id WHERE rg.group_id = $1";

/// Everything the `groups` and `roles` claims need, in one statement: the user's group names
/// (when $3), and the roles granted to the user or any of their groups, globally or for client
/// $2 (when $4). UNION removes duplicates; the caller sorts (collations differ by backend).
pub(crate) const MEMBERSHIPS: &str = "SELECT 'group' AS kind, g.name AS name FROM user_groups ug JOIN groups g ON g.id = ug.group_id WHERE $3 AND ug.user_id = $1 UNION SELECT 'role' AS kind, rg.role AS name FROM role_grants rg WHERE $4 AND rg.user_id = $1 AND (rg.client_id IS NULL OR rg.client_id = $2) UNION SELECT 'role' AS kind, rg.role AS name FROM role_grants rg JOIN user_groups ug ON ug.group_id = rg.group_id WHERE $4 AND ug.user_id = $1 AND (rg.client_id IS NULL OR rg.client_id = $2)";

/// A role grant's binds: (user_id, group_id) with exactly one set.
pub(crate) fn holder_ids(h: &latchkey_core::model::RoleHolder) -> (Option<&str>, Option<&str>) {
    match h {
        latchkey_core::model::RoleHolder::User(u) => (Some(u.as_str()), None),
        latchkey_core::model::RoleHolder::Group(g) => (None, Some(g.as_str())),
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RoleGrantRow {
    role: String,
    username: Option<String>,
    group_name: Option<String>,
    client_id: Option<String>,
    created_at: i64,
}

/// Rows of the role-grant listings, sorted by role, then holder, then client.
pub(crate) fn role_grant_views(rows: Vec<RoleGrantRow>) -> Vec<crate::RoleGrantView> {
    let mut v: Vec<crate::RoleGrantView> = rows
        .into_iter()
        .map(|r| crate::RoleGrantView {
            role: r.role,
            username: r.username,
            group: r.group_name,
            client_id: r.client_id,
            created_at: r.created_at,
        })
        .collect();
    v.sort_by(|a, b| {
        (&a.role, &a.username, &a.group, &a.client_id).cmp(&(&b.role, &b.username, &b.group, &b.client_id))
    });
    v
}

#[derive(sqlx::FromRow)]
pub(crate) struct GroupRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) created_at: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct GroupSummaryRow {
    #[sqlx(flatten)]
    pub(crate) group: GroupRow,
    pub(crate) members: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct MembershipRow {
    pub(crate) kind: String,
    pub(crate) name: String,
}

/// (kind, name) rows of MEMBERSHIPS, split and sorted by bytes.
pub(crate) fn memberships_of(rows: Vec<MembershipRow>) -> latchkey_core::model::Memberships {
    let mut m = latchkey_core::model::Memberships::default();
    for r in rows {
        if r.kind == "group" {
            m.groups.push(r.name);
        } else {
            m.roles.push(r.name);
        }
    }
    m.groups.sort();
    m.groups.dedup();
    m.roles.sort();
    m.roles.dedup();
    m
}

macro_rules! impl_directory_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::DirectoryStore for $ty {
            async fn create_group(&self, g: &latchkey_core::model::Group) -> $crate::StoreResult<$crate::Created> {
                let r = sqlx::query($crate::directory::INSERT_GROUP)
                    .bind(&g.id)
                    .bind(&g.name)
                    .bind(g.created_at)
                    .execute(&mut *self.write().await?)
                    .await;
                match r {
                    Ok(_) => Ok($crate::Created::Created),
                    Err(e) if $crate::sql::is_unique_violation(&e) => Ok($crate::Created::AlreadyExists),
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_group_by_name(&self, name: &str) -> $crate::StoreResult<Option<latchkey_core::model::Group>> {
                let row: Option<$crate::directory::GroupRow> = sqlx::query_as($crate::directory::SELECT_GROUP_BY_NAME)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| latchkey_core::model::Group { id: r.id, name: r.name, created_at: r.created_at }))
            }

            async fn list_groups(&self) -> $crate::StoreResult<Vec<$crate::GroupSummary>> {
                let rows: Vec<$crate::directory::GroupSummaryRow> =
                    sqlx::query_as($crate::directory::LIST_GROUPS).fetch_all(&self.pool).await?;
                let mut v: Vec<$crate::GroupSummary> = rows
                    .into_iter()
                    .map(|r| $crate::GroupSummary {
                        group: latchkey_core::model::Group {
                            id: r.group.id,
                            name: r.group.name,
                            created_at: r.group.created_at,
                        },
                        members: r.members,
                    })
                    .collect();
                v.sort_by(|a, b| a.group.name.cmp(&b.group.name));
                Ok(v)
            }

            async fn delete_group(&self, name: &str) -> $crate::StoreResult<bool> {
                let r =
                    sqlx::query($crate::directory::DELETE_GROUP).bind(name).execute(&mut *self.write().await?).await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_user_groups(
                &self,
                user_id: &str,
                group_names: &[String],
            ) -> $crate::StoreResult<Result<(), String>> {
                let mut tx = self.begin().await?;
                let mut ids = Vec::with_capacity(group_names.len());
                for name in group_names {
                    let id: Option<(String,)> =
                        sqlx::query_as($crate::directory::GROUP_ID_BY_NAME).bind(name).fetch_optional(&mut *tx).await?;
                    match id {
                        Some((id,)) => ids.push(id),
                        None => {
                            tx.rollback().await?;
                            return Ok(Err(name.clone()));
                        }
                    }
                }
                sqlx::query($crate::directory::CLEAR_USER_GROUPS).bind(user_id).execute(&mut *tx).await?;
                for id in &ids {
                    sqlx::query($crate::directory::INSERT_USER_GROUP).bind(user_id).bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(Ok(()))
            }

            async fn list_user_groups(&self, user_id: &str) -> $crate::StoreResult<Vec<String>> {
                let rows: Vec<(String,)> =
                    sqlx::query_as($crate::directory::LIST_USER_GROUPS).bind(user_id).fetch_all(&self.pool).await?;
                let mut v: Vec<String> = rows.into_iter().map(|r| r.0).collect();
                v.sort();
                Ok(v)
            }

            async fn grant_role(
                &self,
                g: &latchkey_core::model::RoleGrant,
                now: latchkey_core::UnixTime,
            ) -> $crate::StoreResult<$crate::Created> {
                let (user_id, group_id) = $crate::directory::holder_ids(&g.holder);
                let r = sqlx::query($crate::directory::INSERT_ROLE_GRANT)
                    .bind(&g.role)
                    .bind(user_id)
                    .bind(group_id)
                    .bind(g.client_id.as_deref())
                    .bind(now)
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(if r.rows_affected() == 1 { $crate::Created::Created } else { $crate::Created::AlreadyExists })
            }

            async fn revoke_role(&self, g: &latchkey_core::model::RoleGrant) -> $crate::StoreResult<bool> {
                let (user_id, group_id) = $crate::directory::holder_ids(&g.holder);
                let r = sqlx::query($crate::directory::DELETE_ROLE_GRANT)
                    .bind(&g.role)
                    .bind(user_id.unwrap_or_default())
                    .bind(group_id.unwrap_or_default())
                    .bind(g.client_id.as_deref().unwrap_or_default())
                    .execute(&mut *self.write().await?)
                    .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn list_role_grants(
                &self,
                filter: $crate::RoleFilter<'_>,
            ) -> $crate::StoreResult<Vec<$crate::RoleGrantView>> {
                let rows: Vec<$crate::directory::RoleGrantRow> = match filter {
                    $crate::RoleFilter::All => {
                        sqlx::query_as($crate::directory::LIST_ROLE_GRANTS).fetch_all(&self.pool).await?
                    }
                    $crate::RoleFilter::User(id) => {
                        sqlx::query_as($crate::directory::LIST_USER_ROLE_GRANTS).bind(id).fetch_all(&self.pool).await?
                    }
                    $crate::RoleFilter::Group(id) => {
                        sqlx::query_as($crate::directory::LIST_GROUP_ROLE_GRANTS).bind(id).fetch_all(&self.pool).await?
                    }
                };
                Ok($crate::directory::role_grant_views(rows))
            }

            async fn memberships(
                &self,
                user_id: &str,
                client_id: &str,
                wanted: latchkey_core::claims::MembershipClaims,
            ) -> $crate::StoreResult<latchkey_core::model::Memberships> {
                if !wanted.any() {
                    return Ok(latchkey_core::model::Memberships::default());
                }
                let rows: Vec<$crate::directory::MembershipRow> = sqlx::query_as($crate::directory::MEMBERSHIPS)
                    .bind(user_id)
                    .bind(client_id)
                    .bind(wanted.groups)
                    .bind(wanted.roles)
                    .fetch_all(&self.pool)
                    .await?;
                Ok($crate::directory::memberships_of(rows))
            }
        }
    };
}

pub(crate) use impl_directory_store;
