-- cpis schema, PostgreSQL backend, version 13: the safeguarding workflow's notification kinds
-- (escalation, was-not-brought, birth, birth-reminder, adoption-invalidation; docs/WORKFLOW.md).
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('access', 'inactive-nhs-number', 'upload-report', 'escalation',
                    'was-not-brought', 'birth', 'birth-reminder', 'adoption-invalidation'));
