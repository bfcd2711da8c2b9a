-- MQTT users (src/access/users.ts): the usernames and passwords clients present in CONNECT.
-- Only a salted scrypt record of each password is kept, never the password: 'scrypt$N$r$p$saltBase64$hashBase64'.
CREATE TABLE mqtt_users (
  username      TEXT    PRIMARY KEY CHECK (length(username) BETWEEN 1 AND 256), -- case-sensitive (BINARY)
  password_hash TEXT    NOT NULL CHECK (password_hash LIKE 'scrypt$%'),
  enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  note          TEXT    CHECK (note IS NULL OR length(note) <= 1000),
  created_at    TEXT    NOT NULL,                                          -- ISO 8601, UTC
  updated_at    TEXT    NOT NULL
) STRICT;
