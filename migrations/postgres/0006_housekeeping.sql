-- Housekeeping (issue 15): every batch the purge deletes is an index range scan. Keep in step
-- with ../sqlite/0006_housekeeping.sql.

-- Initial access tokens by expiry (the other expiring tables have theirs since 0001/0002).
CREATE INDEX initial_access_tokens_expiry ON initial_access_tokens(expires_at);

-- Finished back-channel logouts (delivered, or given up: delivered_at = -1) by age; pending
-- ones are not in it, so the delivery poll's index stays as it is.
CREATE INDEX logout_outbox_finished ON logout_outbox(created_at) WHERE delivered_at IS NOT NULL;

-- The churning tables are deleted from all day: vacuum them after a few percent of dead rows
-- (the default waits for 20 %), without the cost-based pauses, so the space housekeeping frees
-- is reused before the tables grow. SQLite reuses freed pages itself.
ALTER TABLE access_tokens SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE refresh_tokens SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE authorization_codes SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE grants SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE sessions SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE interactions SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE assertion_jtis SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE revoked_jtis SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE rate_counters SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
