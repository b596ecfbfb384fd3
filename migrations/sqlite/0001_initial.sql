-- Latchkey schema, SQLite. Keep in step with ../postgres/0001_initial.sql (same version numbers,
-- same tables and columns; only the types differ). Timestamps are Unix seconds.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE clients (
    client_id                    TEXT PRIMARY KEY,
    name                         TEXT NOT NULL,
    secret_hash                  TEXT,
    redirect_uris                TEXT NOT NULL,
    post_logout_redirect_uris    TEXT NOT NULL,
    auth_method                  TEXT NOT NULL,
    grant_types                  TEXT NOT NULL,
    scopes                       TEXT NOT NULL,
    skip_consent                 BOOLEAN NOT NULL,
    require_pkce                 BOOLEAN NOT NULL,
    id_token_signed_response_alg TEXT,
    access_token_format          TEXT,
    refresh_without_offline_access BOOLEAN NOT NULL DEFAULT FALSE,
    resources                    TEXT NOT NULL DEFAULT '[]',
    jwks                         TEXT,
    jwks_uri                     TEXT,
    secret_enc                   TEXT,
    introspection                BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                   INTEGER NOT NULL,
    updated_at                   INTEGER NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    email          TEXT,
    email_verified BOOLEAN NOT NULL,
    name           TEXT,
    claims         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    sid        TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    auth_time  INTEGER NOT NULL,
    acr        TEXT,
    amr        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);

CREATE TABLE interactions (
    id_hash    TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    request    TEXT NOT NULL,
    login_sid  TEXT,
    consent    TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX interactions_expiry ON interactions(expires_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- A grant is one authorization: every code, refresh and access token descends from one.
-- Revoking the grant revokes the family.
CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    claims     TEXT,
    auth_time  INTEGER,
    acr        TEXT,
    amr        TEXT,
    sid        TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX grants_user ON grants(user_id);
CREATE INDEX grants_client ON grants(client_id);
CREATE INDEX grants_expiry ON grants(expires_at);

CREATE TABLE authorization_codes (
    code_hash      TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    redirect_uri   TEXT,
    code_challenge TEXT,
    nonce          TEXT,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);
CREATE INDEX codes_grant ON authorization_codes(grant_id);
CREATE INDEX codes_expiry ON authorization_codes(expires_at);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_grant ON refresh_tokens(grant_id);
CREATE INDEX refresh_expiry ON refresh_tokens(expires_at);

-- Opaque access tokens by hash. JWT access tokens are not stored; revoking one records its jti.
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT REFERENCES grants(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    audience   TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX access_grant ON access_tokens(grant_id);
CREATE INDEX access_expiry ON access_tokens(expires_at);

-- Revoked JWT access tokens, kept until they would have expired anyway.
CREATE TABLE revoked_jtis (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX revoked_jtis_expiry ON revoked_jtis(expires_at);

-- Client assertion jti values seen (RFC 7523 §3 replay protection), until the assertion expires.
CREATE TABLE assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_jtis_expiry ON assertion_jtis(expires_at);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    public_jwk   TEXT NOT NULL,
    private_key  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    activates_at INTEGER NOT NULL,
    retired_at   INTEGER
);
CREATE INDEX signing_keys_alg ON signing_keys(alg);

CREATE TABLE audit_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT,
    client_id TEXT,
    ip        TEXT,
    detail    TEXT NOT NULL
);
CREATE INDEX audit_at ON audit_events(at);
