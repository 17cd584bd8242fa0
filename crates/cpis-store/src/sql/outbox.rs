//! Accesses and the notification outbox, with its two push sides: webhook deliveries and the
//! MESH outbox. Workers claim due rows `FOR UPDATE SKIP LOCKED` on PostgreSQL (several servers),
//! under the one writer on SQLite, and lease them until a time, so no row is sent twice at once.

use super::{big, from_row, Db, FromValue, Lock, Row, ToArg, Value};
use crate::{
    DeadDelivery, DueDelivery, MeshOutboxEntry, MeshOutgoing, NewMeshMessage, NotificationOrder,
    NotificationQuery, OutboxStats, StoreError, StoreResult, Webhook,
};
use chrono::{DateTime, SubsecRound, Utc};
use cpis_domain::attendance::{self, Attendance, OrganisationAttendance};
use cpis_domain::notification::{Ack, Acknowledgement, Assignment};
use cpis_domain::work_queue::{actionable_codes, AckDetails, AckOutcome, PayloadKeys};
use cpis_domain::{
    Access, Accessor, AuditEntry, NewNotification, NhsIdentity, NhsNumber, Notification, OdsCode,
};

pub fn insert_access(db: &mut dyn Db, a: &Access) -> StoreResult<()> {
    db.exec(
        "INSERT INTO accesses (id, time, nhs_number, kind, user_id, user_name, role, org_ods, org_name,
                               setting_type, trace_id, sds_user_id, role_profile_id, role_code)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &a.id,
            &a.time,
            &a.nhs_number.digits(),
            &a.kind.code(),
            &a.accessor.user_id,
            &a.accessor.user_name,
            &a.accessor.role,
            &a.accessor.organisation.as_str(),
            &a.accessor.organisation_name,
            &a.accessor.setting_type.map(|s| s.code()),
            &a.trace_id,
            &a.accessor.nhs.sds_user_id,
            &a.accessor.nhs.role_profile_id,
            &a.accessor.nhs.role_code,
        ],
    )?;
    Ok(())
}

/// The most recent unscheduled accesses to a child, newest first.
pub fn recent_accesses(db: &mut dyn Db, nhs: NhsNumber, limit: usize) -> StoreResult<Vec<Access>> {
    Ok(recent_accesses_with_seq(db, nhs, limit)?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

/// [`recent_accesses`], each with its `seq`. The limit is written into the statement, not
/// bound: SQLite's planner reads a bound LIMIT, which makes every new binding re-prepare the
/// statement (it showed as about 8% of a busy server's CPU). Callers use one limit (SPEC: the 25
/// most recent), so one cached statement.
pub(super) fn recent_accesses_with_seq(
    db: &mut dyn Db,
    nhs: NhsNumber,
    limit: usize,
) -> StoreResult<Vec<(i64, Access)>> {
    db.list(
        &format!(
            "SELECT seq, {ACCESS_COLUMNS} FROM accesses WHERE nhs_number = $1 AND kind = 'unscheduled'
             ORDER BY seq DESC LIMIT {}",
            big(limit as u64)
        ),
        &[&nhs.digits()],
        |r| Ok((r.get::<i64>(0)?, access(r, 1)?)),
    )
}

/// An access as [`access`] reads it from a row, from column `at` on.
pub(super) const ACCESS_COLUMNS: &str =
    "id, time, nhs_number, kind, trace_id, user_id, user_name, \
    role, org_ods, org_name, setting_type, sds_user_id, role_profile_id, role_code";

/// The access in [`ACCESS_COLUMNS`] from column `at` of the row. The setting's phone and the
/// clinician's contact are not kept with an access (they travel only in its notification).
pub(super) fn access(r: &Row, at: usize) -> StoreResult<Access> {
    let nhs = from_row!(r, at + 11 => NhsIdentity { sds_user_id, role_profile_id, role_code });
    let accessor = from_row!(r, at + 5 => Accessor {
        user_id, user_name, role, organisation, organisation_name, setting_type, nhs = nhs,
        organisation_phone = None, contact = Default::default()
    });
    Ok(from_row!(r, at => Access {
        id, time, nhs_number, kind, trace_id, accessor = accessor
    }))
}

/// An access as the access log gives it back: without the setting's phone and the clinician's
/// contact, its time to the microsecond (for accesses not yet written, read with written ones).
pub(crate) fn as_logged(a: &Access) -> Access {
    let mut a = a.clone();
    a.time = a.time.trunc_subsecs(6);
    a.accessor.organisation_phone = None;
    a.accessor.contact = Default::default();
    a
}

/// A child's attendance (`cpis_domain::attendance`): their unscheduled accesses in the last six
/// months and the last 30 days, per organisation, in one read of the `accesses_history` partial
/// index on the child WHERE kind = 'unscheduled' (the child's rows are found through the
/// index; time and organisation are read from those rows only). Inside a lookup's transaction it
/// sees that lookup's own access once inserted.
pub fn attendance(db: &mut dyn Db, nhs: NhsNumber, now: DateTime<Utc>) -> StoreResult<Attendance> {
    let orgs = attendance_by_organisation(db, nhs, now, i64::MAX)?;
    Ok(Attendance::from_organisations(
        orgs.into_iter().map(|(_, o)| o).collect(),
    ))
}

/// One organisation's attendance (read by [`attendance_columns`]) from accesses grouped by `org_ods`,
/// with the windows' start bound as `$2` (six months) and `$3` (30 days), and `now` as `$4`.
pub(super) const ATTENDANCE_COLUMNS: &str =
    "max(org_name), count(*), count(CASE WHEN time >= $3 THEN 1 END), org_ods";

/// [`ATTENDANCE_COLUMNS`] from column `at` of the row: the organisation's ODS code and counts.
pub(super) fn attendance_columns(
    r: &Row,
    at: usize,
) -> StoreResult<(String, OrganisationAttendance)> {
    Ok((
        r.get(at + 3)?,
        from_row!(r, at => OrganisationAttendance {
            organisation_name, seen_6_months, seen_30_days
        }),
    ))
}

/// The child's unscheduled accesses in the attendance windows ending `now`, up to the access
/// `through` (its `seq`), counted per organisation (its ODS code first).
pub(crate) fn attendance_by_organisation(
    db: &mut dyn Db,
    nhs: NhsNumber,
    now: DateTime<Utc>,
    through: i64,
) -> StoreResult<Vec<(String, OrganisationAttendance)>> {
    let (long, short) = attendance::windows(now);
    db.list(
        &format!(
            "SELECT {ATTENDANCE_COLUMNS} FROM accesses
             WHERE nhs_number = $1 AND kind = 'unscheduled' AND time >= $2 AND time <= $4
               AND seq <= $5
             GROUP BY org_ods"
        ),
        &[&nhs.digits(), &long, &short, &now, &through],
        |r| attendance_columns(r, 0),
    )
}

/// Appends to the LA's notification stream and queues its webhook deliveries, inside the
/// caller's transaction. Sequence numbers (the global `seq` and the LA's `la_seq` cursor) are
/// drawn only while holding the notification lock, released at commit: no notification becomes
/// visible after one with a higher number, and no two get the same. `locked` records that this
/// transaction holds it.
pub fn insert_notification(
    db: &mut dyn Db,
    locked: &mut bool,
    n: &NewNotification,
) -> StoreResult<()> {
    if !*locked {
        db.lock(Lock::Notify)?;
        *locked = true;
    }
    let keys = PayloadKeys::of(&n.payload);
    let payload = StoredPayload::at_rest(db, &n.payload)?;
    db.exec(
        "INSERT INTO notifications (id, la_ods, kind, created_at, payload, nhs_number, setting_ods,
                                   pattern, la_seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 (SELECT coalesce(max(la_seq), 0) + 1 FROM notifications WHERE la_ods = $2))",
        &[
            &n.id,
            &n.la.as_str(),
            &n.kind.code(),
            &n.created_at,
            payload.as_ref(),
            &keys.nhs_number,
            &keys.setting,
            &keys.pattern,
        ],
    )?;
    // Queued for every active webhook of the LA.
    db.exec(
        "INSERT INTO deliveries (notification_id, webhook_id, created_at, next_attempt_at)
         SELECT $1, id, $3, $3 FROM webhooks WHERE la_ods = $2 AND disabled_at IS NULL",
        &[&n.id, &n.la.as_str(), &n.created_at],
    )?;
    Ok(())
}

const NOTIFICATION_COLUMNS: &str =
    "n.id, n.la_seq, n.la_ods, n.kind, n.created_at, n.acknowledged_at, n.acknowledged_by,
     n.acknowledged_by_name, n.ack_outcome, n.ack_note, n.assigned_to, n.assigned_user,
     n.escalated_at, n.payload";
/// How many columns [`NOTIFICATION_COLUMNS`] names.
const NOTIFICATION_COLUMN_COUNT: usize = 14;

/// A notification from [`NOTIFICATION_COLUMNS`] starting at column `at`.
fn notification(r: &Row, at: usize) -> StoreResult<Notification> {
    Ok(from_row!(r, at => Notification {
        id, seq, la, kind, created_at, acknowledged_at, acknowledged_by,
        acknowledged_by_name, outcome, note, assigned_to, assigned_user, escalated_at,
        payload = r.get::<StoredPayload>(at + NOTIFICATION_COLUMN_COUNT - 1)?.0
    }))
}

/// A notification's payload as the database keeps it: JSON text on PostgreSQL; deflated JSON
/// (a BLOB) on SQLite, where the payload (about 860 bytes of JSON, repeating the access and the
/// LA's record of the child) was half of the bytes a lookup's rows take, and every byte of them is
/// written twice, to the WAL and at the checkpoint (issue #16); text written before reads as it
/// is.
struct StoredPayload(String);

impl StoredPayload {
    /// `payload` as this database keeps it.
    fn at_rest(db: &mut dyn Db, payload: &str) -> StoreResult<Box<dyn ToArg>> {
        if db.postgres().is_some() {
            return Ok(Box::new(payload.to_owned()));
        }
        crate::deflate::deflate_payload(payload.as_bytes())
            .map(|bytes| Box::new(bytes) as Box<dyn ToArg>)
            .map_err(|e| StoreError::Backend(format!("deflate a notification: {e}")))
    }
}

impl FromValue for StoredPayload {
    fn from_value(v: &Value) -> Option<StoreResult<Self>> {
        match v {
            Value::Text(s) => Some(Ok(StoredPayload(s.clone()))),
            Value::Blob(b) => Some(
                crate::deflate::inflate_payload(b)
                    .and_then(|bytes| String::from_utf8(bytes).map_err(std::io::Error::other))
                    .map(StoredPayload)
                    .map_err(|e| StoreError::corrupt(format!("notification payload: {e}"))),
            ),
            _ => None,
        }
    }
}

/// An LA's notifications after the cursor, oldest first.
pub fn notifications(
    db: &mut dyn Db,
    la: &OdsCode,
    after: u64,
    limit: u32,
) -> StoreResult<Vec<Notification>> {
    notification_page(db, la, "la_seq > $2 ORDER BY la_seq", big(after), limit)
}

/// An LA's notifications below a cursor (all when `None`), newest first (the web inbox).
pub fn notifications_newest(
    db: &mut dyn Db,
    la: &OdsCode,
    before: Option<u64>,
    limit: u32,
) -> StoreResult<Vec<Notification>> {
    let before = before.map_or(i64::MAX, big);
    notification_page(db, la, "la_seq < $2 ORDER BY la_seq DESC", before, limit)
}

/// A page of an LA's notifications: `page` compares `la_seq` with the cursor `$2` and orders.
fn notification_page(
    db: &mut dyn Db,
    la: &OdsCode,
    page: &str,
    cursor: i64,
    limit: u32,
) -> StoreResult<Vec<Notification>> {
    db.list(
        &format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications n WHERE la_ods = $1 AND {page} LIMIT $3"
        ),
        &[&la.as_str(), &cursor, &i64::from(limit)],
        |r| notification(r, 0),
    )
}

/// Inside the caller's transaction: acknowledges receipt only (no outcome), by a user whose
/// name is its id.
pub fn acknowledge(
    db: &mut dyn Db,
    la: &OdsCode,
    id: &str,
    by: &str,
    now: DateTime<Utc>,
) -> StoreResult<Ack> {
    let ack = Acknowledgement {
        by: by.to_owned(),
        by_name: by.to_owned(),
        at: now,
        details: AckDetails::receipt(),
    };
    acknowledge_with(db, la, id, &ack)
}

/// Inside the caller's transaction. The conditional update makes concurrent acknowledgements of
/// one notification agree: exactly one of them acknowledges, and its who, outcome and note stay.
pub fn acknowledge_with(
    db: &mut dyn Db,
    la: &OdsCode,
    id: &str,
    ack: &Acknowledgement,
) -> StoreResult<Ack> {
    let updated = db.exec(
        "UPDATE notifications SET acknowledged_at = $3, acknowledged_by = $4,
                acknowledged_by_name = $5, ack_outcome = $6, ack_note = $7
         WHERE id = $1 AND la_ods = $2 AND acknowledged_at IS NULL",
        &[
            &id,
            &la.as_str(),
            &ack.at,
            &ack.by,
            &ack.by_name,
            &ack.details.outcome.map(AckOutcome::code),
            &ack.details.note,
        ],
    )?;
    if updated > 0 {
        return Ok(Ack::Acknowledged(ack.at));
    }
    let current = db.row(
        "SELECT acknowledged_at FROM notifications WHERE id = $1 AND la_ods = $2",
        &[&id, &la.as_str()],
    )?;
    Ok(match current {
        None => Ack::NotFound,
        Some(r) => match r.get::<Option<DateTime<Utc>>>(0)? {
            Some(at) => Ack::AlreadyAcknowledged(at),
            // Unreachable (the update would have matched), but never claim an acknowledgement
            // that was not written.
            None => return Err(StoreError::Backend("acknowledgement not written".into())),
        },
    })
}

/// [`acknowledge_with`] and the audit entry that goes with its answer, in the caller's
/// transaction.
pub fn acknowledge_audited(
    db: &mut dyn Db,
    la: &OdsCode,
    id: &str,
    ack: &Acknowledgement,
    acked: &AuditEntry,
    refused: &AuditEntry,
) -> StoreResult<Ack> {
    let answer = acknowledge_with(db, la, id, ack)?;
    match answer {
        Ack::Acknowledged(_) => super::audit::append_alone(db, acked)?,
        Ack::NotFound => super::audit::append_alone(db, refused)?,
        Ack::AlreadyAcknowledged(_) => {}
    }
    Ok(answer)
}

/// Assigns one of the LA's notifications (reassigning replaces) and appends `audit`, in the
/// caller's transaction; `refused` and `false` when it is not the LA's.
pub fn assign_audited(
    db: &mut dyn Db,
    la: &OdsCode,
    id: &str,
    assignment: &Assignment,
    audit: &AuditEntry,
    refused: &AuditEntry,
) -> StoreResult<bool> {
    let updated = db.exec(
        "UPDATE notifications SET assigned_to = $3, assigned_user = $4, assigned_at = $5
         WHERE id = $1 AND la_ods = $2",
        &[
            &id,
            &la.as_str(),
            &assignment.to.as_str(),
            &assignment.user,
            &assignment.at,
        ],
    )? > 0;
    super::audit::append_alone(db, if updated { audit } else { refused })?;
    Ok(updated)
}

/// The actionable kinds as an SQL list of literals (fixed codes, never user input).
fn actionable_list() -> String {
    actionable_codes()
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A page of an LA's notifications: filtered, then ordered and paged as the query says.
pub fn notification_query(
    db: &mut dyn Db,
    la: &OdsCode,
    q: &NotificationQuery,
) -> StoreResult<Vec<Notification>> {
    let f = &q.filter;
    let la_text = la.as_str();
    let kind = f.kind.map(|k| k.code());
    let limit = i64::from(q.limit);
    let mut args: Vec<&dyn ToArg> = vec![&la_text];
    let mut conditions = vec!["n.la_ods = $1".to_owned()];
    if f.unacknowledged {
        conditions.push("n.acknowledged_at IS NULL".into());
    }
    let optional: [(Option<&dyn ToArg>, &str); 6] = [
        (
            f.assigned_user.as_ref().map(|v| v as &dyn ToArg),
            "n.assigned_user =",
        ),
        (
            f.nhs_number.as_ref().map(|v| v as &dyn ToArg),
            "n.nhs_number =",
        ),
        (
            f.setting.as_ref().map(|v| v as &dyn ToArg),
            "n.setting_ods =",
        ),
        (kind.as_ref().map(|v| v as &dyn ToArg), "n.kind ="),
        (f.from.as_ref().map(|v| v as &dyn ToArg), "n.created_at >="),
        (f.to.as_ref().map(|v| v as &dyn ToArg), "n.created_at <"),
    ];
    for (value, test) in optional {
        if let Some(v) = value {
            args.push(v);
            conditions.push(format!("{test} ${}", args.len()));
        }
    }
    let cursor;
    let offset;
    let page = match &q.order {
        NotificationOrder::After(after) => {
            cursor = big(*after);
            args.push(&cursor);
            conditions.push(format!("n.la_seq > ${}", args.len()));
            args.push(&limit);
            format!("ORDER BY n.la_seq LIMIT ${}", args.len())
        }
        NotificationOrder::Queue {
            overdue_before,
            offset: o,
        } => {
            offset = big(*o);
            args.push(overdue_before);
            let cutoff = args.len();
            args.push(&limit);
            args.push(&offset);
            format!(
                "ORDER BY CASE WHEN n.acknowledged_at IS NULL AND n.created_at < ${cutoff}
                                AND n.kind IN ({}) THEN 0 ELSE 1 END,
                          CASE WHEN n.acknowledged_at IS NULL AND n.pattern = 'frequent-attendance'
                               THEN 0 ELSE 1 END,
                          n.la_seq DESC
                 LIMIT ${} OFFSET ${}",
                actionable_list(),
                args.len() - 1,
                args.len()
            )
        }
    };
    let sql = format!(
        "SELECT {NOTIFICATION_COLUMNS} FROM notifications n WHERE {} {page}",
        conditions.join(" AND ")
    );
    db.list(&sql, &args, |r| notification(r, 0))
}

/// Actionable notifications of every LA created before `cutoff`, unacknowledged and not yet
/// escalated, oldest first.
pub fn overdue_unescalated(
    db: &mut dyn Db,
    cutoff: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<Notification>> {
    let kinds = actionable_list();
    db.list(
        &format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications n
             WHERE n.acknowledged_at IS NULL AND n.escalated_at IS NULL AND n.created_at < $1
               AND n.kind IN ({kinds})
             ORDER BY n.created_at, n.seq LIMIT $2"
        ),
        &[&cutoff, &i64::from(limit)],
        |r| notification(r, 0),
    )
}

/// Marks notification `id` escalated and writes its one escalation notification and audit
/// entry, in the caller's transaction, if it is still unacknowledged and not yet escalated
/// (another server may have done it meanwhile: then nothing is written and `false`).
pub fn escalate(
    db: &mut dyn Db,
    id: &str,
    repeats_until: DateTime<Utc>,
    escalation: &NewNotification,
    audit: &AuditEntry,
) -> StoreResult<bool> {
    let marked = db.exec(
        "UPDATE notifications SET escalated_at = $2
         WHERE id = $1 AND escalated_at IS NULL AND acknowledged_at IS NULL",
        &[&id, &escalation.created_at],
    )?;
    if marked == 0 {
        return Ok(false);
    }
    // The rest of its work item: repeat lookups of the same child at the same setting.
    db.exec(
        "UPDATE notifications SET escalated_at = $2
         WHERE escalated_at IS NULL AND acknowledged_at IS NULL AND kind = 'access'
           AND la_ods = (SELECT la_ods FROM notifications WHERE id = $1)
           AND nhs_number = (SELECT nhs_number FROM notifications WHERE id = $1 AND kind = 'access')
           AND setting_ods = (SELECT setting_ods FROM notifications WHERE id = $1)
           AND created_at > (SELECT created_at FROM notifications WHERE id = $1)
           AND created_at < $3",
        &[&id, &escalation.created_at, &repeats_until],
    )?;
    let mut locked = false;
    insert_notification(db, &mut locked, escalation)?;
    super::audit::append_alone(db, audit)?;
    Ok(true)
}

/// Notifications not yet acknowledged (outbox depth).
pub fn unacknowledged(db: &mut dyn Db) -> StoreResult<u64> {
    db.count(
        "SELECT count(*) FROM notifications WHERE acknowledged_at IS NULL",
        &[],
    )
}

/// Each push channel's outbox: pending, the oldest pending, dead letters. Pending rows are found
/// through the outboxes' partial "due" indexes; dead letters are few.
pub fn outbox_stats(db: &mut dyn Db) -> StoreResult<Vec<OutboxStats>> {
    let r = db.one(
        "SELECT
           (SELECT count(*) FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.delivered_at IS NULL AND d.dead_at IS NULL AND w.disabled_at IS NULL),
           (SELECT min(d.created_at) FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.delivered_at IS NULL AND d.dead_at IS NULL AND w.disabled_at IS NULL),
           (SELECT count(*) FROM deliveries WHERE dead_at IS NOT NULL),
           (SELECT count(*) FROM mesh_outbox WHERE sent_at IS NULL AND dead_at IS NULL),
           (SELECT min(created_at) FROM mesh_outbox WHERE sent_at IS NULL AND dead_at IS NULL),
           (SELECT count(*) FROM mesh_outbox WHERE dead_at IS NOT NULL)",
        &[],
    )?;
    let stats = |channel, at: usize| -> StoreResult<OutboxStats> {
        Ok(OutboxStats {
            channel,
            pending: r.get(at)?,
            oldest_pending: r.get(at + 1)?,
            dead: r.get(at + 2)?,
        })
    };
    Ok(vec![stats("webhook", 0)?, stats("mesh", 3)?])
}

/// Adds a webhook and appends its audit entry, inside the caller's transaction.
pub fn add_webhook(db: &mut dyn Db, w: &Webhook, audit: &AuditEntry) -> StoreResult<()> {
    db.exec(
        "INSERT INTO webhooks (id, la_ods, url, secret, created_at) VALUES ($1, $2, $3, $4, $5)",
        &[&w.id, &w.la.as_str(), &w.url, &w.secret, &w.created_at],
    )?;
    super::audit::append_alone(db, audit)
}

fn webhook(r: &Row, at: usize) -> StoreResult<Webhook> {
    Ok(from_row!(r, at => Webhook { id, la, url, secret, created_at }))
}

pub fn webhooks(db: &mut dyn Db, la: &OdsCode) -> StoreResult<Vec<Webhook>> {
    db.list(
        "SELECT id, la_ods, url, secret, created_at FROM webhooks
         WHERE la_ods = $1 AND disabled_at IS NULL ORDER BY created_at",
        &[&la.as_str()],
        |r| webhook(r, 0),
    )
}

/// Disables the LA's active webhook and appends the audit entry, inside the caller's
/// transaction; `false`, and no entry, when there is no such webhook.
pub fn remove_webhook(
    db: &mut dyn Db,
    la: &OdsCode,
    id: &str,
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> StoreResult<bool> {
    let removed = db.exec(
        "UPDATE webhooks SET disabled_at = $3 WHERE id = $1 AND la_ods = $2 AND disabled_at IS NULL",
        &[&id, &la.as_str(), &now],
    )? > 0;
    if removed {
        super::audit::append_alone(db, audit)?;
    }
    Ok(removed)
}

/// Inside the caller's transaction.
pub fn claim_deliveries(
    db: &mut dyn Db,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<DueDelivery>> {
    let claimed = db.list(
        &format!(
            "SELECT d.id, d.attempts, d.created_at, {NOTIFICATION_COLUMNS},
                    w.id, w.la_ods, w.url, w.secret, w.created_at
             FROM deliveries d
             JOIN notifications n ON n.id = d.notification_id
             JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.delivered_at IS NULL AND d.dead_at IS NULL AND d.next_attempt_at <= $1
               AND w.disabled_at IS NULL
             ORDER BY d.next_attempt_at, d.id LIMIT $2
             FOR UPDATE OF d SKIP LOCKED"
        ),
        &[&now, &i64::from(limit)],
        |r| {
            Ok(from_row!(r, 0 => DueDelivery {
                id, attempts, created_at, notification = notification(r, 3)?,
                webhook = webhook(r, 3 + NOTIFICATION_COLUMN_COUNT)?
            }))
        },
    )?;
    lease(db, "deliveries", &claimed, |d| d.id, lease_until)?;
    Ok(claimed)
}

/// Leases claimed rows of an outbox table until `until`: no worker claims them again meanwhile.
fn lease<T>(
    db: &mut dyn Db,
    table: &str,
    claimed: &[T],
    id: impl Fn(&T) -> i64,
    until: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = format!("UPDATE {table} SET next_attempt_at = $2 WHERE id = $1");
    for row in claimed {
        db.exec(&sql, &[&id(row), &until])?;
    }
    Ok(())
}

pub fn delivery_succeeded(
    db: &mut dyn Db,
    id: i64,
    status: u16,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    db.exec(
        "UPDATE deliveries SET delivered_at = $3, last_status = $2, attempts = attempts + 1, last_error = NULL
         WHERE id = $1",
        &[&id, &status, &now],
    )?;
    Ok(())
}

/// What a failed attempt stores of its error.
fn error_text(error: &str) -> String {
    error.chars().take(500).collect()
}

/// What a failed attempt sets: when to retry, or (no retry) when it was given up on.
fn failed_column(retry_at: Option<DateTime<Utc>>) -> &'static str {
    match retry_at {
        Some(_) => "next_attempt_at",
        None => "dead_at",
    }
}

pub fn delivery_failed(
    db: &mut dyn Db,
    id: i64,
    status: Option<u16>,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let column = failed_column(retry_at);
    db.exec(
        &format!(
            "UPDATE deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3, {column} = $4
             WHERE id = $1"
        ),
        &[&id, &status, &error_text(error), &retry_at.unwrap_or(now)],
    )?;
    Ok(())
}

pub fn dead_deliveries(db: &mut dyn Db, limit: u32) -> StoreResult<Vec<DeadDelivery>> {
    db.list(
        "SELECT d.id, d.notification_id, w.la_ods, w.url, d.attempts, d.last_status, d.last_error, d.created_at, d.dead_at
         FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.dead_at IS NOT NULL ORDER BY d.dead_at DESC LIMIT $1",
        &[&i64::from(limit)],
        |r| {
            Ok(from_row!(r, 0 => DeadDelivery {
                id, notification_id, la, url, attempts, last_status, last_error, created_at, dead_at
            }))
        },
    )
}

/// Notifications of LAs with a MESH mailbox after each LA's MESH cursor, with the mailbox.
pub fn mesh_pending_notifications(
    db: &mut dyn Db,
    limit: u32,
) -> StoreResult<Vec<(Notification, String)>> {
    db.list(
        &format!(
            "SELECT {NOTIFICATION_COLUMNS}, la.mesh_mailbox
             FROM local_authorities la
             JOIN notifications n ON n.la_ods = la.ods_code
             LEFT JOIN mesh_cursors c ON c.la_ods = la.ods_code
             WHERE la.mesh_mailbox IS NOT NULL AND n.la_seq > COALESCE(c.queued_seq, 0)
             ORDER BY n.la_ods, n.la_seq LIMIT $1"
        ),
        &[&i64::from(limit)],
        |r| Ok((notification(r, 0)?, r.get(NOTIFICATION_COLUMN_COUNT)?)),
    )
}

/// Inside the caller's transaction.
pub fn mesh_enqueue(
    db: &mut dyn Db,
    messages: &[NewMeshMessage],
    cursors: &[(OdsCode, u64)],
) -> StoreResult<usize> {
    let mut new = 0;
    for m in messages {
        new += db.exec(
            "INSERT INTO mesh_outbox (local_id, recipient, workflow_id, subject, filename,
                                      content_type, body, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (local_id) DO NOTHING",
            &[
                &m.local_id,
                &m.recipient,
                &m.workflow_id,
                &m.subject,
                &m.filename,
                &m.content_type,
                &m.body,
                &m.created_at,
            ],
        )? as usize;
    }
    for (la, seq) in cursors {
        db.exec(
            "INSERT INTO mesh_cursors (la_ods, queued_seq) VALUES ($1, $2)
             ON CONFLICT (la_ods) DO UPDATE
             SET queued_seq = GREATEST(mesh_cursors.queued_seq, excluded.queued_seq)",
            &[&la.as_str(), &big(*seq)],
        )?;
    }
    Ok(new)
}

/// Inside the caller's transaction.
pub fn mesh_claim(
    db: &mut dyn Db,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<MeshOutgoing>> {
    let claimed = db.list(
        "SELECT id, local_id, recipient, workflow_id, subject, filename, content_type, body,
                created_at, attempts, send_started_at
         FROM mesh_outbox
         WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1
         ORDER BY next_attempt_at, id LIMIT $2
         FOR UPDATE SKIP LOCKED",
        &[&now, &i64::from(limit)],
        |r| {
            Ok(MeshOutgoing {
                id: r.get(0)?,
                message: from_row!(r, 1 => NewMeshMessage {
                    local_id, recipient, workflow_id, subject, filename, content_type, body,
                    created_at
                }),
                attempts: r.get(9)?,
                send_started: r.get::<Option<DateTime<Utc>>>(10)?.is_some(),
            })
        },
    )?;
    lease(db, "mesh_outbox", &claimed, |m| m.id, lease_until)?;
    Ok(claimed)
}

pub fn mesh_send_started(db: &mut dyn Db, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
    db.exec(
        "UPDATE mesh_outbox SET send_started_at = COALESCE(send_started_at, $2) WHERE id = $1",
        &[&id, &now],
    )?;
    Ok(())
}

pub fn mesh_sent(
    db: &mut dyn Db,
    id: i64,
    message_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    db.exec(
        "UPDATE mesh_outbox SET message_id = $2, sent_at = $3, attempts = attempts + 1,
                last_error = NULL WHERE id = $1",
        &[&id, &message_id, &now],
    )?;
    Ok(())
}

pub fn mesh_send_failed(
    db: &mut dyn Db,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let column = failed_column(retry_at);
    db.exec(
        &format!(
            "UPDATE mesh_outbox SET attempts = attempts + 1, last_error = $2, {column} = $3
             WHERE id = $1"
        ),
        &[&id, &error_text(error), &retry_at.unwrap_or(now)],
    )?;
    Ok(())
}

pub fn mesh_outbox(db: &mut dyn Db, limit: u32) -> StoreResult<Vec<MeshOutboxEntry>> {
    db.list(
        "SELECT local_id, recipient, workflow_id, created_at, attempts, message_id, sent_at,
                last_error, dead_at
         FROM mesh_outbox ORDER BY id DESC LIMIT $1",
        &[&i64::from(limit)],
        |r| {
            Ok(from_row!(r, 0 => MeshOutboxEntry {
                local_id, recipient, workflow_id, created_at, attempts, message_id, sent_at,
                last_error, dead_at
            }))
        },
    )
}
