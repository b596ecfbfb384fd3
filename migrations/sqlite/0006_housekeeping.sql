-- Housekeeping (issue 15): every batch the purge deletes is an index range scan. Keep in step
-- with ../postgres/0006_housekeeping.sql.

-- Initial access tokens by expiry (the other expiring tables have theirs since 0001/0002).
CREATE INDEX initial_access_tokens_expiry ON initial_access_tokens(expires_at);

-- Finished back-channel logouts (delivered, or given up: delivered_at = -1) by age; pending
-- ones are not in it, so the delivery poll's index stays as it is.
CREATE INDEX logout_outbox_finished ON logout_outbox(created_at) WHERE delivered_at IS NOT NULL;

-- (PostgreSQL also tunes autovacuum for the churning tables here; SQLite reuses freed pages.)
