-- Which token acted, and who issued it: a subject name alone is chosen by whoever minted the
-- token, so two tokens can share it. Rows written before this migration have neither.
ALTER TABLE audit_events ADD COLUMN token_id TEXT;
ALTER TABLE audit_events ADD COLUMN issuer TEXT;
