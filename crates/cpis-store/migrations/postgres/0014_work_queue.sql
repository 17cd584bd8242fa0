-- cpis schema, PostgreSQL backend, version 14: the LA work queue (docs/WORKFLOW.md). An
-- acknowledgement records who (id and name), when, an outcome and a note; a notification can be
-- assigned to a team or worker; an overdue one is escalated once (escalated_at). The child's NHS
-- number, the setting that looked and the attendance pattern are copied out of the payload so
-- the inbox can filter and order on them.
ALTER TABLE notifications
    ADD COLUMN acknowledged_by_name text,
    ADD COLUMN ack_outcome text CHECK (ack_outcome IN ('known-no-action',
        'social-worker-informed', 'contacted-setting', 'referred-to-mash', 'other')),
    ADD COLUMN ack_note text,
    ADD COLUMN assigned_to text,
    ADD COLUMN assigned_user text,
    ADD COLUMN assigned_at timestamptz,
    ADD COLUMN escalated_at timestamptz,
    ADD COLUMN nhs_number text,
    ADD COLUMN setting_ods text,
    ADD COLUMN pattern text;
UPDATE notifications SET
    nhs_number = coalesce(payload::jsonb #>> '{child,nhs_number}', payload::jsonb ->> 'nhs_number'),
    setting_ods = payload::jsonb #>> '{access,organisation,ods_code}',
    pattern = payload::jsonb ->> 'pattern';
-- No index on (la_ods, nhs_number): a filter by child reads the LA's notifications through
-- notifications_la_cursor, and every notifying lookup would otherwise write one more index page
-- at a random place (issue #16, bytes written per lookup).
-- Notifications from before the work queue that are already a day old and unacknowledged are not
-- escalated retroactively: the first housekeeping run would otherwise send one escalation for every
-- old unacknowledged notification at once (a flood to webhook and MESH receivers). They are marked
-- as escalated at the upgrade; the inbox still shows them overdue (that is worked out from
-- created_at), and anything younger is escalated when its deadline passes.
UPDATE notifications SET escalated_at = now()
WHERE acknowledged_at IS NULL AND kind NOT IN ('upload-report', 'escalation')
  AND created_at < now() - interval '1 day';
CREATE INDEX notifications_unescalated ON notifications (created_at)
    WHERE acknowledged_at IS NULL AND escalated_at IS NULL;
