-- cpis schema, PostgreSQL backend, version 17: births and adoption (docs/WORKFLOW.md).
-- A number invalidated for adoption is a status of its own (no replacement is ever kept); a
-- newborn registration may name its mother; `birth_notices` remembers each birth and
-- birth-reminder notification sent, so a replayed feed or a second server never sends it twice.
ALTER TABLE demographics DROP CONSTRAINT demographics_status_check;
ALTER TABLE demographics ADD CONSTRAINT demographics_status_check
    CHECK (status IN ('active', 'superseded', 'inactive', 'invalidated-adoption'));
ALTER TABLE demographics ADD COLUMN mother_nhs_number text;
CREATE INDEX demographics_mother ON demographics (mother_nhs_number)
    WHERE mother_nhs_number IS NOT NULL;

-- kind 'birth': nhs_number is the baby's, on_date its date of birth;
-- kind 'birth-reminder': nhs_number is the mother's, on_date the plan's expected delivery date.
CREATE TABLE birth_notices (
    kind       text NOT NULL CHECK (kind IN ('birth', 'birth-reminder')),
    la_ods     text NOT NULL,
    nhs_number text NOT NULL,
    on_date    date NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (kind, la_ods, nhs_number, on_date)
);

-- The birth-reminder job reads open UCPPs by expected delivery date.
CREATE INDEX plans_ucpp_edd ON plans (expected_delivery_date) WHERE plan_type = 'UCPP';
