-- The audit trail: one row per change made through the admin API (settings, MQTT users, ACL rules, retained
-- messages, sessions, admin tokens). Never a secret: no password, no token, no hash (src/audit/log.ts drops such keys).
CREATE TABLE audit_log (
  id             INTEGER PRIMARY KEY,
  at             INTEGER NOT NULL,            -- epoch ms
  actor          TEXT NOT NULL,               -- the admin token's name
  action         TEXT NOT NULL,               -- 'settings.update', 'mqtt-user.create', 'token.revoke', ...
  target         TEXT,                        -- a username, rule id, topic or prefix, client id, token name; NULL for the settings
  before_json    TEXT CHECK (before_json IS NULL OR json_valid(before_json)),
  after_json     TEXT CHECK (after_json IS NULL OR json_valid(after_json)),
  remote_address TEXT                         -- the request's address (request.ip)
) STRICT;

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_target ON audit_log (target, id);
