-- The LA's sensitive mark is kept per plan row: a record is sensitive while any of its plans
-- is marked, an empty `sensitive` column keeps a plan's mark, and only an explicit `false` on
-- every plan row removes it. Existing marks carry over to every plan of a marked record.
ALTER TABLE plans ADD COLUMN sensitive INTEGER NOT NULL DEFAULT 0 CHECK (sensitive IN (0, 1));
UPDATE plans SET sensitive = 1
WHERE record_id IN (SELECT id FROM records WHERE sensitive = 1);
