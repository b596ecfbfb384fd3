-- OpenID profiles: registration metadata, pairwise subjects, logout, PAR. PostgreSQL.
-- Keep in step with ../sqlite/0002_openid_profiles.sql.

ALTER TABLE clients ADD COLUMN subject_type TEXT NOT NULL DEFAULT 'public';
ALTER TABLE clients ADD COLUMN sector_identifier_uri TEXT;
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN request_object_signing_alg TEXT;
ALTER TABLE clients ADD COLUMN request_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN registration_token_hash TEXT;
ALTER TABLE clients ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';

-- Initial access tokens for dynamic registration (RFC 7591 §3), by hash.
CREATE TABLE initial_access_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Which clients received tokens within a session: who to tell when it ends.
CREATE TABLE session_clients (
    sid       TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL,
    PRIMARY KEY (sid, client_id)
);

-- Back-Channel Logout deliveries waiting or retrying (a durable outbox).
CREATE TABLE logout_outbox (
    id              BIGSERIAL PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    uri             TEXT NOT NULL,
    logout_token    TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX logout_outbox_due ON logout_outbox(delivered_at, next_attempt_at);

-- Pushed authorization requests (RFC 9126), by the hash of their request_uri.
CREATE TABLE pushed_requests (
    uri_hash   TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    params     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX pushed_requests_expiry ON pushed_requests(expires_at);
