-- Roles and groups. PostgreSQL. Keep in step with ../sqlite/0003_roles_groups.sql.
-- Users belong to groups; roles are granted to a user or to a group, for every client
-- (client_id NULL) or for one client. Tokens carry them as the `groups` and `roles` claims.

CREATE TABLE groups (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    created_at BIGINT NOT NULL
);

CREATE TABLE user_groups (
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups(group_id);

-- Exactly one holder: a user or a group.
CREATE TABLE role_grants (
    id         BIGSERIAL PRIMARY KEY,
    role       TEXT NOT NULL CHECK (length(role) BETWEEN 1 AND 128),
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    group_id   TEXT REFERENCES groups(id) ON DELETE CASCADE,
    client_id  TEXT REFERENCES clients(client_id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    CHECK ((user_id IS NULL) <> (group_id IS NULL))
);
-- One grant per (role, holder, client); NULLs compare equal here.
CREATE UNIQUE INDEX role_grants_unique
    ON role_grants(role, COALESCE(user_id, ''), COALESCE(group_id, ''), COALESCE(client_id, ''));
CREATE INDEX role_grants_user ON role_grants(user_id);
CREATE INDEX role_grants_group ON role_grants(group_id);
CREATE INDEX role_grants_client ON role_grants(client_id);
