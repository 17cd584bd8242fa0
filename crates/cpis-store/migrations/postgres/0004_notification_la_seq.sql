-- cpis schema, PostgreSQL backend, version 4: each LA's notifications are numbered 1, 2, 3… on
-- their own, so an LA's cursor says nothing about other LAs' notifications. Writers number them
-- while holding the notification advisory lock, so numbers are gap-free and commit-ordered.
ALTER TABLE notifications ADD COLUMN la_seq bigint;
UPDATE notifications SET la_seq = n.la_seq
FROM (SELECT seq, row_number() OVER (PARTITION BY la_ods ORDER BY seq) AS la_seq FROM notifications) n
WHERE n.seq = notifications.seq;
ALTER TABLE notifications ALTER COLUMN la_seq SET NOT NULL;
CREATE UNIQUE INDEX notifications_la_cursor ON notifications (la_ods, la_seq);
