//! Births to mothers on an unborn child protection plan: the babies registered to a mother, the
//! UCPPs due a birth reminder, and the notices that make each birth and reminder notification
//! go out once (docs/WORKFLOW.md, "Births and adoption").

use super::demographics::demographics_row;
use super::{Db, Row};
use crate::{DueBirthReminder, StoreError, StoreResult};
use chrono::{DateTime, NaiveDate, Utc};
use cpis_domain::{Demographics, NhsNumber, NotificationKind, OdsCode, Plan};

/// Remembers that a `birth` (baby, date of birth) or `birth-reminder` (mother, expected delivery
/// date) notification goes to `la`. `false` when it was already sent: the caller then sends
/// nothing. On PostgreSQL a second server inserting the same notice waits for the first's
/// transaction and then finds it.
pub fn mark_notice(
    db: &mut dyn Db,
    kind: NotificationKind,
    la: &OdsCode,
    nhs: NhsNumber,
    on_date: NaiveDate,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let n = db.exec(
        "INSERT INTO birth_notices (kind, la_ods, nhs_number, on_date, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        &[&kind.code(), &la.as_str(), &nhs.digits(), &on_date, &now],
    )?;
    Ok(n == 1)
}

/// The babies registered to this mother, oldest first.
pub fn babies_of(db: &mut dyn Db, mother: NhsNumber) -> StoreResult<Vec<Demographics>> {
    db.list(
        "SELECT status, superseded_by, date_of_birth, sensitive, mother_nhs_number, nhs_number
         FROM demographics
         WHERE mother_nhs_number = $1 ORDER BY date_of_birth, nhs_number COLLATE \"C\"",
        &[&mother.digits()],
        |r: &Row| demographics_row(r.get(5)?, r),
    )
}

/// Open UCPPs (no end date, or ending after `today`) whose expected delivery date is on or
/// before `edd_on_or_before`, not yet reminded for that date, of a mother whose number is not
/// invalidated for adoption, where the LA holds no plan for a baby registered to the mother and
/// born on or after the plan's start. By LA, then mother.
pub fn due_reminders(
    db: &mut dyn Db,
    edd_on_or_before: NaiveDate,
    today: NaiveDate,
) -> StoreResult<Vec<DueBirthReminder>> {
    db.list(
        "SELECT r.la_ods, r.nhs_number, r.local_id, p.plan_type, p.start_date, p.end_date,
                p.expected_delivery_date
         FROM plans p JOIN records r ON r.id = p.record_id
         WHERE p.plan_type = 'UCPP' AND p.expected_delivery_date <= $1
           AND (p.end_date IS NULL OR p.end_date > $2)
           AND NOT EXISTS (SELECT 1 FROM demographics m
                           WHERE m.nhs_number = r.nhs_number AND m.status = 'invalidated-adoption')
           AND NOT EXISTS (SELECT 1 FROM birth_notices b
                           WHERE b.kind = 'birth-reminder' AND b.la_ods = r.la_ods
                             AND b.nhs_number = r.nhs_number AND b.on_date = p.expected_delivery_date)
           AND NOT EXISTS (SELECT 1 FROM demographics c
                           JOIN records rc ON rc.nhs_number = c.nhs_number AND rc.la_ods = r.la_ods
                           JOIN plans pc ON pc.record_id = rc.id
                           WHERE c.mother_nhs_number = r.nhs_number
                             AND c.date_of_birth >= p.start_date)
         ORDER BY r.la_ods COLLATE \"C\", r.nhs_number COLLATE \"C\"",
        &[&edd_on_or_before, &today],
        |r| {
            Ok(DueBirthReminder {
                la: r.get(0)?,
                mother: r.get(1)?,
                local_id: r.get(2)?,
                plan: Plan::new(r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)
                    .map_err(StoreError::corrupt)?,
            })
        },
    )
}
