-- The connection-failure log (src/failures/store.ts) and the connect-latency histogram of successful clients.

-- One row per failure, or per flood summary (folded_count = how many similar failures it stands for).
-- AUTOINCREMENT: ids are never reused after pruning, so cursors (`before`) and SSE `Last-Event-ID` stay valid.
CREATE TABLE failures (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  occurred_at      INTEGER NOT NULL,            -- epoch ms
  reason           TEXT    NOT NULL,
  phase            TEXT    NOT NULL,
  client_id        TEXT,
  username         TEXT,
  protocol_version INTEGER,
  keepalive_sec    INTEGER,
  remote_address   TEXT,
  remote_port      INTEGER,
  user_agent       TEXT,
  origin           TEXT,
  subprotocol      TEXT,
  duration_ms      REAL    NOT NULL,
  bytes_received   INTEGER NOT NULL,
  packets_received INTEGER NOT NULL,
  first_bytes_hex  TEXT    NOT NULL,
  detail           TEXT    NOT NULL,
  hint             TEXT    NOT NULL,
  settings_version INTEGER NOT NULL,
  folded_count     INTEGER NOT NULL DEFAULT 0,
  last_folded_at   INTEGER                      -- epoch ms of the last failure folded into this row
);
CREATE INDEX failures_occurred_at ON failures (occurred_at);
CREATE INDEX failures_reason ON failures (reason, id);
CREATE INDEX failures_remote_address ON failures (remote_address, id);
CREATE INDEX failures_client_id ON failures (client_id);

-- Successful connections' time from socket open to complete CONNECT: counters per minute and latency bucket
-- (bucket = index into LATENCY_BUCKETS_MS in src/failures/store.ts; changing that list needs a migration).
CREATE TABLE connect_latency (
  minute  INTEGER NOT NULL,                     -- epoch ms of the minute's start
  bucket  INTEGER NOT NULL,
  count   INTEGER NOT NULL,
  sum_ms  REAL    NOT NULL,
  max_ms  REAL    NOT NULL,
  PRIMARY KEY (minute, bucket)
) WITHOUT ROWID;

-- Failures per minute and reason, counted as they are recorded (folded and dropped ones too), so that stats over
-- any window read at most one row per minute and reason instead of scanning the failure rows.
CREATE TABLE failure_counts (
  minute   INTEGER NOT NULL,                    -- epoch ms of the minute's start
  reason   TEXT    NOT NULL,
  failures INTEGER NOT NULL,                    -- failures that happened
  records  INTEGER NOT NULL,                    -- rows written for them
  PRIMARY KEY (minute, reason)
) WITHOUT ROWID;
