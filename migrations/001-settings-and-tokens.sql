-- Hot settings, one row per version: the newest row is what the broker runs on.
CREATE TABLE settings_versions (
  version     INTEGER PRIMARY KEY,                          -- 1, 2, 3 ... never reused
  values_json TEXT    NOT NULL CHECK (json_valid(values_json)), -- every setting, as a JSON object
  created_at  TEXT    NOT NULL,                             -- ISO 8601, UTC
  actor       TEXT    NOT NULL,                             -- the admin token's name, or 'system'
  comment     TEXT
) STRICT;

-- Admin API tokens, by name. Only a SHA-256 of each token is kept.
CREATE TABLE admin_tokens (
  name       TEXT PRIMARY KEY,
  sha256_hex TEXT NOT NULL CHECK (length(sha256_hex) = 64),
  created_at TEXT NOT NULL
) STRICT;
