-- Abuse limits (issue 7). PostgreSQL. Keep in step with ../sqlite/0004_abuse_limits.sql.
-- (0003 is reserved for roles and groups.)

-- Failed sign-ins per account and source address: a growing backoff, never a permanent lock.
CREATE TABLE login_throttle (
    account       TEXT NOT NULL,
    source        TEXT NOT NULL,
    failures      BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (account, source)
);
CREATE INDEX login_throttle_updated ON login_throttle (updated_at);

-- Request counters in fixed windows, shared by every instance on one database.
CREATE TABLE rate_counters (
    key          TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_counters_window ON rate_counters (window_start);
