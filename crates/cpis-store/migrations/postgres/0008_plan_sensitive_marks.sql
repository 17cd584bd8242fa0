-- The LA's sensitive mark is kept per plan row: a record is sensitive while any of its plans
-- is marked, an empty `sensitive` column keeps a plan's mark, and only an explicit `false` on
-- every plan row removes it. Existing marks carry over to every plan of a marked record.
ALTER TABLE plans ADD COLUMN sensitive boolean NOT NULL DEFAULT false;
UPDATE plans SET sensitive = true
WHERE record_id IN (SELECT id FROM records WHERE sensitive = true);
