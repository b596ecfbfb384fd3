-- Every decision on a pending authorization request is bound to who made it: the consent
-- answer records the user and session that gave it, and the request records (the hash of) the
-- browser-binding cookie of the browser that started it. Requests pending before this
-- migration match no browser and must be started again.
ALTER TABLE interactions ADD COLUMN browser_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE interactions ADD COLUMN consent_user_id TEXT;
ALTER TABLE interactions ADD COLUMN consent_sid TEXT;
