-- cpis schema, SQLite backend, version 17: births and adoption (docs/WORKFLOW.md).
-- A number invalidated for adoption is a status of its own (no replacement is ever kept); a
-- newborn registration may name its mother; `birth_notices` remembers each birth and
-- birth-reminder notification sent, so a replayed feed never sends it twice.
-- SQLite cannot alter a CHECK constraint, so the index table is rebuilt with the wider list.
CREATE TABLE demographics_new (
    nhs_number        TEXT PRIMARY KEY,
    status            TEXT NOT NULL CHECK (status IN ('active', 'superseded', 'inactive',
                          'invalidated-adoption')),
    superseded_by     TEXT,
    date_of_birth     TEXT NOT NULL,
    sensitive         INTEGER NOT NULL CHECK (sensitive IN (0, 1)),
    updated_at        TEXT NOT NULL,
    mother_nhs_number TEXT,
    CHECK ((status = 'superseded') = (superseded_by IS NOT NULL))
) WITHOUT ROWID;
INSERT INTO demographics_new (nhs_number, status, superseded_by, date_of_birth, sensitive,
                              updated_at)
    SELECT nhs_number, status, superseded_by, date_of_birth, sensitive, updated_at
    FROM demographics;
DROP TABLE demographics;
ALTER TABLE demographics_new RENAME TO demographics;
CREATE INDEX demographics_mother ON demographics (mother_nhs_number)
    WHERE mother_nhs_number IS NOT NULL;

-- kind 'birth': nhs_number is the baby's, on_date its date of birth;
-- kind 'birth-reminder': nhs_number is the mother's, on_date the plan's expected delivery date.
CREATE TABLE birth_notices (
    kind       TEXT NOT NULL CHECK (kind IN ('birth', 'birth-reminder')),
    la_ods     TEXT NOT NULL,
    nhs_number TEXT NOT NULL,
    on_date    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, la_ods, nhs_number, on_date)
) WITHOUT ROWID;

-- The birth-reminder job reads open UCPPs by expected delivery date.
CREATE INDEX plans_ucpp_edd ON plans (expected_delivery_date) WHERE plan_type = 'UCPP';
