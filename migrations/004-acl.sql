-- Topic ACL rules (src/access/acl.ts): checked in `position` order, the first rule that matches decides; a publish
-- or subscribe no rule matches gets the hot setting aclDefault. Positions run 1, 2, 3 ... without gaps.
CREATE TABLE acl_rules (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,    -- never reused, so a deleted rule's id never names another
  position    INTEGER NOT NULL UNIQUE,              -- 1 = checked first
  username    TEXT,                                 -- NULL = any client (a name never matches an anonymous one)
  client_id   TEXT,                                 -- a glob (`*` any run, `?` one character); NULL = any
  anonymous   INTEGER NOT NULL DEFAULT 0 CHECK (anonymous IN (0, 1)), -- 1 = only clients without a username
  topic       TEXT    NOT NULL,                     -- an MQTT topic filter; `%u` = username, `%c` = client id
  action      TEXT    NOT NULL CHECK (action IN ('publish', 'subscribe', 'all')),
  permission  TEXT    NOT NULL CHECK (permission IN ('allow', 'deny')),
  comment     TEXT,
  created_at  TEXT    NOT NULL,                     -- ISO 8601, UTC
  updated_at  TEXT    NOT NULL                      -- ISO 8601, UTC
) STRICT;
