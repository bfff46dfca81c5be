-- Each tenant's erasure deadline in days (GDPR allows a month, CCPA 45 days), and the old
-- locations of a migration in its grace period that an erasure removed early, because they still
-- held the subjects' rows (JSON list of locations).
ALTER TABLE tenants ADD COLUMN erasure_deadline_days INTEGER NOT NULL DEFAULT 30;
ALTER TABLE erasures ADD COLUMN old_locations TEXT NOT NULL DEFAULT '[]';
