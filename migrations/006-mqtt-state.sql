-- MQTT state that survives a restart (MQTT_STATE=sqlite, the default): retained messages and the sessions of
-- clients that asked for one to outlive their connection (or that have a Will). Written behind by src/state/.

-- The last retained message per topic.
CREATE TABLE mqtt_retained (
  topic TEXT PRIMARY KEY,
  payload BLOB NOT NULL,
  qos INTEGER NOT NULL,
  -- v5 properties forwarded to subscribers, as JSON (binary values as {"b64": ...}); NULL when none
  properties TEXT,
  -- epoch ms after which it is not delivered (v5 Message Expiry Interval); 0 = never
  expires_at INTEGER NOT NULL,
  stored_at INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per session kept: expiry (seconds, 4294967295 = never), when its connection ended (NULL: one held it
-- when last written, i.e. at a crash), its Will (JSON, payload in base64) and the QoS 2 packet ids it received
-- and has not yet seen released (JSON array).
CREATE TABLE mqtt_sessions (
  client_id TEXT PRIMARY KEY,
  expiry_sec INTEGER NOT NULL,
  disconnected_at INTEGER,
  will TEXT,
  qos2_received TEXT,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE mqtt_subscriptions (
  client_id TEXT NOT NULL,
  filter TEXT NOT NULL,
  qos INTEGER NOT NULL,
  no_local INTEGER NOT NULL,
  retain_as_published INTEGER NOT NULL,
  retain_handling INTEGER NOT NULL,
  -- v5 subscription identifiers, JSON array
  subscription_ids TEXT NOT NULL,
  PRIMARY KEY (client_id, filter)
) WITHOUT ROWID;

-- QoS 1/2 messages of a session: queued (packet_id NULL) or in flight (stage 'publish' or 'pubrel'), in seq order.
CREATE TABLE mqtt_session_messages (
  client_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  packet_id INTEGER,
  stage TEXT,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  subscription_ids TEXT NOT NULL,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL,
  properties TEXT,
  expires_at INTEGER NOT NULL,
  from_client TEXT,
  PRIMARY KEY (client_id, seq)
) WITHOUT ROWID;

-- alive_at: the last time the state was written (a crash happened after it); sessions held by a connection then
-- count their expiry, and their Will's delay, from it.
CREATE TABLE mqtt_state_meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
