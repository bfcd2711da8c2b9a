-- Which transport each failed connection came over: ws, wss, tcp or tls. Records from before this migration all
-- came over WebSocket (the only transport then).
ALTER TABLE failures ADD COLUMN transport TEXT NOT NULL DEFAULT 'ws';
CREATE INDEX failures_transport ON failures (transport, id);
