-- Abuse limits (issue 7). SQLite. Keep in step with ../postgres/0004_abuse_limits.sql.
-- (0003 is reserved for roles and groups.)

-- Failed sign-ins per account and source address: a growing backoff, never a permanent lock.
CREATE TABLE login_throttle (
    account       TEXT NOT NULL,
    source        TEXT NOT NULL,
    failures      INTEGER NOT NULL,
    blocked_until INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (account, source)
);
CREATE INDEX login_throttle_updated ON login_throttle (updated_at);

-- Request counters in fixed windows, shared by every instance on one database.
CREATE TABLE rate_counters (
    key          TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_counters_window ON rate_counters (window_start);
