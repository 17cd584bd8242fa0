-- One notifying lookup, as cpis runs it on PostgreSQL (crates/cpis-store/src/postgres/lookups.rs,
-- records.rs, audit.rs, directory.rs), as a pgbench custom script: the ceiling the database sets
-- for cpis lookups on this machine. Statement for statement what one lookup does when it commits
-- alone (cpis commits a group of waiting lookups in one transaction instead):
--
--   read the child's records and plans; read the 25 most recent unscheduled accesses; insert the
--   access; lock the audit chain head and append the audit entry; take the notification advisory
--   lock and insert one notification numbered in its LA's sequence, and a delivery row for each
--   of the LA's webhooks (none in the demo data); read the LA's contacts; write the audit head
--   back; commit.
--
-- Needs a database loaded by `cpis demo load` plus the helper table
--   CREATE TABLE bench_children AS SELECT row_number() OVER (ORDER BY nhs_number) AS i, nhs_number, la_ods
--     FROM (SELECT nhs_number, min(la_ods) AS la_ods FROM records GROUP BY nhs_number) c;
-- and -D children=<rows in bench_children>. Run with -M prepared (cpis prepares every statement):
--   pgbench -n -M prepared -f scripts/pgbench-lookup.sql -D children=N -c 8 -j 2 -T 10 URL
-- scripts/bench-pg-ceiling.sh does all of it. The audit hashes here are not the real chain's.
\set i random(1, :children)
SELECT nhs_number AS nhs, la_ods AS la FROM bench_children WHERE i = :i \gset
BEGIN;
SELECT r.la_ods, r.local_id, r.given_name, r.family_name, r.date_of_birth, r.sensitive,
       r.updated_at, p.plan_type, p.start_date, p.end_date, p.expected_delivery_date
  FROM records r LEFT JOIN plans p ON p.record_id = r.id
 WHERE r.nhs_number = :nhs
 ORDER BY r.la_ods COLLATE "C", p.plan_type COLLATE "C";
SELECT id, time, nhs_number, kind, user_id, user_name, role, org_ods, org_name, setting_type, trace_id
  FROM accesses WHERE nhs_number = :nhs AND kind = 'unscheduled'
 ORDER BY seq DESC LIMIT 25;
INSERT INTO accesses (id, time, nhs_number, kind, user_id, user_name, role, org_ods, org_name,
                      setting_type, trace_id)
VALUES (gen_random_uuid()::text, now(), :nhs, 'unscheduled', 'pgbench-user', 'Pgbench Clinician',
        'Clinician', 'RDEMO01', 'Demo Emergency Department', 'emergency-department', NULL);
SELECT seq AS head_seq, hash AS head_hash FROM audit_head WHERE id = 1 FOR UPDATE \gset
INSERT INTO audit_log (seq, time, actor_id, actor_name, actor_org, actor_role, action, subject_nhs,
                       trace_id, outcome, detail, prev_hash, hash)
VALUES (:head_seq::bigint + 1, now(), 'pgbench-user', 'Pgbench Clinician', 'RDEMO01', 'Clinician',
        'lookup.unscheduled', :nhs, NULL, 'success', NULL, :head_hash,
        encode(sha256(convert_to(:head_hash::text || :nhs::text, 'UTF8')), 'hex'))
RETURNING seq AS new_seq, hash AS new_hash \gset
SELECT pg_advisory_xact_lock(1668311299::int4, 0);
INSERT INTO notifications (id, la_ods, kind, created_at, payload, la_seq)
VALUES (gen_random_uuid()::text, :la, 'access', now(),
        -- The payload cpis writes (about 600 bytes of JSON), built here because pgbench reads
        -- a colon in a literal as a variable.
        json_build_object(
          'kind', 'access', 'la', :la::text, 'created_at', now(), 'nhs_number', :nhs::text,
          'local_id', 'COV-000001', 'given_name', 'Given', 'family_name', 'Family',
          'date_of_birth', '2015-03-04', 'sensitive', false,
          'plans', json_build_array(json_build_object('plan_type', 'CPP', 'start_date', '2026-01-01',
            'end_date', NULL, 'expected_delivery_date', NULL, 'state', 'active')),
          'access', json_build_object('id', gen_random_uuid(), 'time', now(),
            'user_id', 'pgbench-user', 'user_name', 'Pgbench Clinician', 'role', 'Clinician',
            'organisation', 'RDEMO01', 'organisation_name', 'Demo Emergency Department',
            'setting_type', 'emergency-department', 'trace_id', NULL))::text,
        (SELECT coalesce(max(la_seq), 0) + 1 FROM notifications WHERE la_ods = :la::text))
RETURNING id AS note_id \gset
INSERT INTO deliveries (notification_id, webhook_id, created_at, next_attempt_at)
SELECT :note_id, id, now(), now() FROM webhooks WHERE la_ods = :la AND disabled_at IS NULL;
SELECT ods_code, name, office_hours_phone, edt_phone, secure_email, mesh_mailbox
  FROM local_authorities WHERE ods_code = :la;
UPDATE audit_head SET seq = :new_seq, hash = :new_hash WHERE id = 1;
COMMIT;
