-- cpis schema, SQLite backend, version 4: each LA's notifications are numbered 1, 2, 3… on their
-- own, so an LA's cursor says nothing about other LAs' notifications.
ALTER TABLE notifications ADD COLUMN la_seq INTEGER;
UPDATE notifications SET la_seq = (
    SELECT count(*) FROM notifications n2 WHERE n2.la_ods = notifications.la_ods AND n2.seq <= notifications.seq
);
CREATE UNIQUE INDEX notifications_la_cursor ON notifications (la_ods, la_seq);
