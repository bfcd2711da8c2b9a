-- The node each failure happened on (cluster mode: NODE_ID; one node: hostname:port). NULL in records from before
-- this migration: the failure log fills in this node's id when it opens.
ALTER TABLE failures ADD COLUMN node TEXT;
-- Cluster mode: a record that happened on another node, by its id in PostgreSQL (pulled once: the index is unique).
ALTER TABLE failures ADD COLUMN pg_id INTEGER;
CREATE INDEX failures_node ON failures (node, id);
CREATE UNIQUE INDEX failures_pg_id ON failures (pg_id) WHERE pg_id IS NOT NULL;

-- Cluster mode: where this node's replication of the control plane stands (src/control/): the failure records
-- shipped to and pulled from PostgreSQL, and this database's own random id (so that records of two databases
-- under one NODE_ID never collide in PostgreSQL).
CREATE TABLE control_state (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
