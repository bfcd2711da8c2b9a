-- Alert rules (src/alerts/rules.ts) and what they did (src/alerts/history.ts). A rule counts the failures that match
-- it (a reason or any, a timeout profile or any, at least min_bytes_received bytes of a CONNECT) and fires on a
-- threshold (count failures within window_sec) or a spike (the window's rate over factor x the rate of the
-- baseline_sec before it, with at least `count` failures). The built-in rule `partial-connect-timeouts` is seeded
-- here: it can be edited or disabled, not deleted.
CREATE TABLE alert_rules (
  id                 INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
  name               TEXT    NOT NULL UNIQUE,            -- the metric label: mqtt_alert_firing{rule="<name>"}
  built_in           INTEGER NOT NULL DEFAULT 0 CHECK (built_in IN (0, 1)),
  enabled            INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  reason             TEXT,                               -- a failure reason; NULL = any
  profile            TEXT,                               -- a timeout profile name; NULL = any (a record without one counts as NULL)
  min_bytes_received INTEGER NOT NULL DEFAULT 0 CHECK (min_bytes_received >= 0), -- 1 = only clients that sent part of their CONNECT
  kind               TEXT    NOT NULL CHECK (kind IN ('threshold', 'spike')),
  count              INTEGER NOT NULL CHECK (count >= 1), -- threshold: failures in the window; spike: the least count that can be one
  window_sec         INTEGER NOT NULL CHECK (window_sec >= 1),
  factor             REAL    NOT NULL DEFAULT 3 CHECK (factor >= 1), -- spike only
  baseline_sec       INTEGER NOT NULL DEFAULT 3600 CHECK (baseline_sec >= 1), -- spike only
  notify_ui          INTEGER NOT NULL DEFAULT 1 CHECK (notify_ui IN (0, 1)),
  webhook_url        TEXT,                               -- http(s); NULL = no webhook
  webhook_secret     TEXT,                               -- HMAC-SHA256 key; write-only in the API, never logged or audited
  comment            TEXT,
  created_at         TEXT    NOT NULL,
  updated_at         TEXT    NOT NULL
) STRICT;

-- One row per firing and per resolved event; the failures behind it are the failure log's records of `reason`
-- between `since` and `until` (epoch ms), which the API and the UI link to.
CREATE TABLE alert_history (
  id             INTEGER PRIMARY KEY,
  rule_id        INTEGER NOT NULL,                       -- the rule may since be deleted: no foreign key
  rule_name      TEXT    NOT NULL,
  state          TEXT    NOT NULL CHECK (state IN ('firing', 'resolved')),
  at             INTEGER NOT NULL,                       -- epoch ms
  count          INTEGER NOT NULL,                       -- matching failures in the window at that moment (firing) or during the episode (resolved)
  baseline_count INTEGER,                                -- spike rules: failures in the baseline before the window
  window_sec     INTEGER NOT NULL,
  reason         TEXT,
  profile        TEXT,
  since          INTEGER NOT NULL,                       -- the failures behind it: from (epoch ms) ...
  until          INTEGER NOT NULL,                       -- ... to
  detail         TEXT    NOT NULL
) STRICT;

CREATE INDEX alert_history_rule ON alert_history (rule_id, id);

INSERT INTO alert_rules (name, built_in, enabled, reason, profile, min_bytes_received, kind, count, window_sec, factor,
  baseline_sec, notify_ui, webhook_url, webhook_secret, comment, created_at, updated_at)
VALUES ('partial-connect-timeouts', 1, 1, 'connect_timeout', NULL, 1, 'threshold', 20, 60, 3, 3600, 1, NULL, NULL,
  'Many clients timing out during CONNECT after sending part of it: the outage this broker was built for (a read timeout that drops clients mid-CONNECT). Silent sockets (0 bytes) do not count.',
  strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
