-- Requests no one answers for (no valid token, no route, over a rate limit) are rolled up:
-- one row per source network, action and window, counting the requests it stands for.
ALTER TABLE audit_events ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1;
