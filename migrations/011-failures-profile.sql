-- The timeout profile a failed connection ran under (before CONNECT: the one matched when it opened). NULL = the
-- global values, and every record from before this migration.
ALTER TABLE failures ADD COLUMN profile TEXT;
CREATE INDEX failures_profile ON failures (profile, id);
