-- The broker's own event-loop lag when a connection failed (ms; 0 = it kept up), so that a timeout caused by a
-- stalled broker is told apart from a slow client. NULL in records from before this migration.
ALTER TABLE failures ADD COLUMN broker_lag_ms INTEGER;
