-- Admin tokens get an id, a role (viewer | operator | admin), when each was last used (written behind, at most once
-- a minute) and when it was revoked. A revoked token keeps its row: names are never reused, so the name the audit
-- trail records as the actor always means one token. Every token from before this migration (the boot token 'admin'
-- and rows added by SQL) had full rights: each stays admin, as does a row inserted later without a role.
CREATE TABLE admin_tokens_v2 (
  id           INTEGER PRIMARY KEY,
  name         TEXT NOT NULL UNIQUE,
  role         TEXT NOT NULL DEFAULT 'admin' CHECK (role IN ('viewer', 'operator', 'admin')),
  sha256_hex   TEXT NOT NULL CHECK (length(sha256_hex) = 64),
  created_at   TEXT NOT NULL,                 -- ISO 8601, UTC
  last_used_at TEXT,                          -- ISO 8601, UTC; NULL = never used
  revoked_at   TEXT                           -- ISO 8601, UTC; NULL = in force
) STRICT;

INSERT INTO admin_tokens_v2 (name, role, sha256_hex, created_at)
  SELECT name, 'admin', sha256_hex, created_at FROM admin_tokens ORDER BY name <> 'admin', created_at, name;

DROP TABLE admin_tokens;
ALTER TABLE admin_tokens_v2 RENAME TO admin_tokens;
