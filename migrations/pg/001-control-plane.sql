-- The control plane of cluster mode (src/control/): PostgreSQL is the source of truth of the settings versions, the
-- MQTT users, the ACL rules and the failure log of every node; each node keeps its SQLite tables as a replica.
-- Columns as in the SQLite migrations (migrations/*.sql), so rows travel as they are.

-- Hot settings, one row per version (migrations/001). A new version is newest + 1: the primary key decides a race.
CREATE TABLE settings_versions (
  version     integer PRIMARY KEY CHECK (version >= 1),
  values_json text    NOT NULL,
  created_at  text    NOT NULL,
  actor       text    NOT NULL,
  comment     text
);

-- MQTT users (migrations/003): only the salted scrypt record of each password, as stored.
CREATE TABLE mqtt_users (
  username      text     PRIMARY KEY CHECK (char_length(username) BETWEEN 1 AND 256),
  password_hash text     NOT NULL CHECK (password_hash LIKE 'scrypt$%'),
  enabled       smallint NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  note          text     CHECK (note IS NULL OR char_length(note) <= 1000),
  created_at    text     NOT NULL,
  updated_at    text     NOT NULL
);

-- ACL rules (migrations/004). Positions shift inside one transaction, so their uniqueness is checked at commit.
CREATE TABLE acl_rules (
  id          bigserial PRIMARY KEY,
  position    integer   NOT NULL,
  username    text,
  client_id   text,
  anonymous   smallint  NOT NULL DEFAULT 0 CHECK (anonymous IN (0, 1)),
  topic       text      NOT NULL,
  action      text      NOT NULL CHECK (action IN ('publish', 'subscribe', 'all')),
  permission  text      NOT NULL CHECK (permission IN ('allow', 'deny')),
  comment     text,
  created_at  text      NOT NULL,
  updated_at  text      NOT NULL,
  CONSTRAINT acl_rules_position_unique UNIQUE (position) DEFERRABLE INITIALLY DEFERRED
);

-- One counter per replicated table of few rows (mqtt_users, acl_rules): every write bumps it in its transaction
-- (which also makes writers of one table wait for each other), and a node whose replica is at another revision
-- copies the table again.
CREATE TABLE control_revisions (
  name     text   PRIMARY KEY,
  revision bigint NOT NULL
);
INSERT INTO control_revisions (name, revision) VALUES ('mqtt_users', 0), ('acl_rules', 0);

-- Facts about the cluster itself: `seeded_by` = the node whose local settings, users and ACL rules started it.
CREATE TABLE cluster_meta (
  key   text PRIMARY KEY,
  value text NOT NULL
);

-- The failure log of every node (migrations/002, 005, 009, 011, 012). Each node ships its own records here and
-- pulls the others' by id; inserts are serialised (an advisory lock), so ids commit in order and a reader that has
-- seen id N never later finds a smaller one. (node, source, source_id) = where it was first written: shipping again
-- after a crash inserts nothing twice.
CREATE TABLE failures (
  id               bigserial PRIMARY KEY,
  node             text             NOT NULL,
  source           text             NOT NULL,   -- the random id of the SQLite database it was written in
  source_id        bigint           NOT NULL,   -- its id there
  occurred_at      bigint           NOT NULL,   -- epoch ms
  transport        text             NOT NULL,
  reason           text             NOT NULL,
  phase            text             NOT NULL,
  client_id        text,
  username         text,
  protocol_version integer,
  keepalive_sec    integer,
  remote_address   text,
  remote_port      integer,
  user_agent       text,
  origin           text,
  subprotocol      text,
  duration_ms      double precision NOT NULL,
  bytes_received   bigint           NOT NULL,
  packets_received bigint           NOT NULL,
  first_bytes_hex  text             NOT NULL,
  detail           text             NOT NULL,
  hint             text             NOT NULL,
  settings_version integer          NOT NULL,
  folded_count     integer          NOT NULL DEFAULT 0,
  last_folded_at   bigint,
  broker_lag_ms    integer,
  profile          text,
  UNIQUE (node, source, source_id)
);
CREATE INDEX failures_occurred_at ON failures (occurred_at);
