-- A held full upload that a later applied upload of the same LA made stale can never be
-- confirmed: it stops counting for idempotency (so the LA can send the same list again) and its
-- held file, which holds personal data, is deleted. cpis now does this when the later upload
-- commits; this migration does it for uploads that went stale before.
DELETE FROM held_files WHERE upload_seq IN (
    SELECT u.seq FROM uploads u
    WHERE u.status = 'held-for-confirmation' AND EXISTS (
        SELECT 1 FROM uploads l
        WHERE l.la_ods = u.la_ods AND l.status = 'completed' AND l.effective AND l.seq > u.seq));
UPDATE uploads SET effective = false
WHERE status = 'held-for-confirmation' AND EXISTS (
    SELECT 1 FROM uploads l
    WHERE l.la_ods = uploads.la_ods AND l.status = 'completed' AND l.effective AND l.seq > uploads.seq);
