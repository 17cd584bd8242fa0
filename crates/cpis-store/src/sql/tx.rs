//! The write transactions the engine holds open: a batch of lookups, a demographics change file,
//! an upload. One type serves all three on both backends; it commits in `commit`/`finish` and
//! rolls back when dropped.
//!
//! An upload buffers its upserts and row results and writes them before anything that reads or
//! removes records (`has_record`, `open_plans`, `delete`, `end_plan`) and at `finish`, so the
//! outcome is the same as writing every row in file order. On PostgreSQL large batches go
//! through COPY (`postgres/bulk.rs`); SQLite, in-process, writes each row at once.

use super::uploads::{self, PendingUpsert};
use super::{audit, births, demographics, history, outbox, records, Db, DbHandle, Lock};
use crate::postgres::bulk;
use crate::postgres::lookup_writes::{self, LookupWrites};
use crate::{
    ChangesTx, DueBirthReminder, HeldClaim, LookupTx, LookupView, NewUpload, StoreError,
    StoreResult, StoredRecord, UploadTx,
};
use chrono::{DateTime, NaiveDate, Utc};
use cpis_domain::report::{RowResult, UploadId, UploadStatus, UploadSummary};
use cpis_domain::upload::RecordRow;
use cpis_domain::{
    Access, AccessKind, AuditEntry, Demographics, NewNotification, NhsNumber, OdsCode, PlanType,
};
use std::collections::HashMap;

/// Buffered rows are written once this many are waiting (PostgreSQL).
const FLUSH_AT: usize = 10_000;
/// Smaller batches are written row by row (cheaper than staging a COPY).
const COPY_FROM: usize = 64;

pub struct SqlTx<'a> {
    conn: Box<dyn DbHandle + 'a>,
    done: bool,
    /// Whether this transaction holds the notification lock.
    notify_locked: bool,
    audit_head: audit::Head,
    /// LAs whose upload lock this transaction holds.
    locked: Vec<String>,
    /// The upload's row key, looked up once rather than per result row.
    seq: Option<(UploadId, i64)>,
    upserts: Vec<PendingUpsert>,
    /// Row results waiting, all of the upload with this seq.
    results: Vec<RowResult>,
    results_seq: i64,
    /// Whether the COPY staging table exists in this transaction.
    staged: bool,
    /// Records that lost their sensitive mark in this transaction.
    unmarked: Vec<NhsNumber>,
    /// Whether a lookup group's writes wait for the commit (PostgreSQL: one statement per table
    /// then, `postgres/lookup_writes.rs`) rather than go at once (SQLite, in-process).
    defer_lookup_writes: bool,
    lookup_writes: LookupWrites,
    /// Committed accesses after (child, through), read ahead for the group (PostgreSQL).
    read_ahead: HashMap<(NhsNumber, i64), Vec<Access>>,
}

impl<'a> SqlTx<'a> {
    /// Wraps a connection already inside `BEGIN`.
    pub fn new(mut conn: Box<dyn DbHandle + 'a>) -> Self {
        let defer_lookup_writes = conn.db().postgres().is_some();
        SqlTx {
            conn,
            done: false,
            notify_locked: false,
            audit_head: Default::default(),
            locked: Vec::new(),
            seq: None,
            upserts: Vec::new(),
            results: Vec::new(),
            results_seq: 0,
            staged: false,
            unmarked: Vec::new(),
            defer_lookup_writes,
            lookup_writes: LookupWrites::default(),
            read_ahead: HashMap::new(),
        }
    }

    /// With the audit head already read and locked in this transaction (its first append then
    /// costs no round trip).
    pub fn with_audit_head(mut self, head: audit::Head) -> Self {
        self.audit_head = head;
        self
    }

    fn db(&mut self) -> &mut dyn Db {
        self.conn.db()
    }

    /// The connection, for a statement of the backend's own inside this transaction.
    pub(crate) fn db_mut(&mut self) -> &mut dyn Db {
        self.conn.db()
    }

    /// How many upserts and row results wait before they are written: on PostgreSQL, a `COPY`'s
    /// worth; on SQLite, a batch whose held records are read in one statement.
    fn buffer_limit(&mut self) -> usize {
        self.db()
            .postgres()
            .map_or(uploads::SQLITE_BATCH, |_| FLUSH_AT)
    }

    fn commit_now(&mut self) -> StoreResult<()> {
        let head = std::mem::take(&mut self.audit_head);
        // The head goes with the group's writes when there are any (one round trip fewer).
        if !self.write_lookups(&head)? {
            head.store(self.db())?;
        }
        self.db().commit()?;
        self.done = true;
        Ok(())
    }

    /// Takes the LA's upload lock (held until commit or rollback): one upload per LA at a time
    /// across every server sharing the database.
    fn lock_la(&mut self, la: &OdsCode) -> StoreResult<()> {
        if self.locked.iter().any(|l| l == la.as_str()) {
            return Ok(());
        }
        self.db().lock(Lock::UploadLa(la.as_str()))?;
        self.locked.push(la.as_str().to_owned());
        Ok(())
    }

    fn seq(&mut self, id: &UploadId) -> StoreResult<i64> {
        match &self.seq {
            Some((cached, seq)) if cached == id => Ok(*seq),
            _ => {
                let seq = uploads::upload_seq(self.db(), id)?;
                self.seq = Some((id.clone(), seq));
                Ok(seq)
            }
        }
    }

    fn flush_upserts(&mut self) -> StoreResult<()> {
        let pending = &self.upserts;
        match self.conn.db().postgres() {
            Some(pg) if pending.len() >= COPY_FROM => {
                let unmarked = bulk::upsert_many(pg, pending, &mut self.staged)?;
                self.unmarked.extend(unmarked);
            }
            None => {
                let unmarked = uploads::upsert_batch(self.conn.db(), pending)?;
                self.unmarked.extend(unmarked);
            }
            Some(_) => {
                for u in pending {
                    if uploads::upsert_one(self.conn.db(), u)? {
                        self.unmarked.push(u.row.nhs_number);
                    }
                }
            }
        }
        self.upserts.clear();
        Ok(())
    }

    fn flush_results(&mut self) -> StoreResult<()> {
        let (seq, pending) = (self.results_seq, &self.results);
        match self.conn.db().postgres() {
            Some(pg) if pending.len() >= COPY_FROM => bulk::row_results(pg, seq, pending)?,
            _ => uploads::row_results(self.conn.db(), seq, pending)?,
        }
        self.results.clear();
        Ok(())
    }

    /// Writes the deferred lookup writes (PostgreSQL) with the audit head the transaction ends
    /// at, taking the notification lock first when there are notifications: whether it wrote
    /// the head.
    fn write_lookups(&mut self, head: &audit::Head) -> StoreResult<bool> {
        if self.lookup_writes.is_empty() {
            return Ok(false);
        }
        let writes = std::mem::take(&mut self.lookup_writes);
        let lock_notify = !self.notify_locked;
        self.notify_locked |= !writes.notifications.is_empty();
        let after = head
            .after()
            .map(|(seq, hash)| lookup_writes::HeadAfter { seq, hash });
        match self.conn.db().postgres() {
            Some(pg) => {
                lookup_writes::write(pg, &writes, after, lock_notify)?;
                Ok(true)
            }
            None => Err(StoreError::Backend(
                "lookup writes were deferred on a backend that writes them at once".into(),
            )),
        }
    }

    /// Locks the LA and writes pending upserts: what a read or removal of its records needs.
    fn settle(&mut self, la: &OdsCode) -> StoreResult<()> {
        self.lock_la(la)?;
        self.flush_upserts()
    }
}

impl Drop for SqlTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.db().rollback();
        }
    }
}

impl LookupTx for SqlTx<'_> {
    fn view(
        &mut self,
        nhs: NhsNumber,
        limit: usize,
        now: DateTime<Utc>,
    ) -> StoreResult<LookupView> {
        history::lookup_view(self.db(), nhs, limit, now)
    }

    /// The database's, then the group's own accesses not yet written (deferred: PostgreSQL).
    fn unscheduled_after(&mut self, nhs: NhsNumber, through: i64) -> StoreResult<Vec<Access>> {
        let mut out = match self.read_ahead.get(&(nhs, through)) {
            Some(read) => read.clone(),
            None => history::unscheduled_after(self.db(), nhs, through)?,
        };
        out.extend(
            (self.lookup_writes.accesses.iter())
                .filter(|a| a.nhs_number == nhs && a.kind == AccessKind::Unscheduled)
                .map(outbox::as_logged),
        );
        Ok(out)
    }

    /// PostgreSQL only (where the writes wait for the commit too, so what is read ahead stays
    /// the committed part); SQLite reads each child's as its lookup comes.
    fn read_ahead(&mut self, children: &[(NhsNumber, i64)]) -> StoreResult<()> {
        if self.defer_lookup_writes && !children.is_empty() {
            let read = history::unscheduled_after_many(self.db(), children)?;
            self.read_ahead.extend(read);
        }
        Ok(())
    }

    fn insert_access(&mut self, access: &Access) -> StoreResult<()> {
        if self.defer_lookup_writes {
            self.lookup_writes.accesses.push(access.clone());
            return Ok(());
        }
        outbox::insert_access(self.db(), access)
    }

    fn insert_notification(&mut self, n: &NewNotification) -> StoreResult<()> {
        if self.defer_lookup_writes {
            self.lookup_writes.notifications.push(n.clone());
            return Ok(());
        }
        outbox::insert_notification(self.conn.db(), &mut self.notify_locked, n)
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> StoreResult<()> {
        if self.defer_lookup_writes {
            let link = audit::link(self.conn.db(), &mut self.audit_head, entry)?;
            self.lookup_writes.audit.push((link, entry.clone()));
            return Ok(());
        }
        audit::append(self.conn.db(), &mut self.audit_head, entry)
    }

    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        self.commit_now()
    }
}

impl ChangesTx for SqlTx<'_> {
    fn demographics(&mut self, nhs: NhsNumber) -> StoreResult<Option<Demographics>> {
        demographics::demographics(self.db(), nhs)
    }

    fn upsert_demographics(&mut self, entry: &Demographics, now: DateTime<Utc>) -> StoreResult<()> {
        demographics::upsert_demographics(self.db(), std::slice::from_ref(entry), now)?;
        Ok(())
    }

    fn records_for(&mut self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
        records::records_for(self.db(), nhs)
    }

    fn records_held(&mut self, nhs: NhsNumber) -> StoreResult<Vec<StoredRecord>> {
        records::records_held(self.db(), nhs)
    }

    fn mark_birth_notice(
        &mut self,
        kind: cpis_domain::NotificationKind,
        la: &OdsCode,
        nhs: NhsNumber,
        on_date: NaiveDate,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        births::mark_notice(self.db(), kind, la, nhs, on_date, now)
    }

    fn babies_of(&mut self, mother: NhsNumber) -> StoreResult<Vec<Demographics>> {
        births::babies_of(self.db(), mother)
    }

    fn due_birth_reminders(
        &mut self,
        edd_on_or_before: NaiveDate,
        today: NaiveDate,
    ) -> StoreResult<Vec<DueBirthReminder>> {
        births::due_reminders(self.db(), edd_on_or_before, today)
    }

    fn move_records(
        &mut self,
        from: NhsNumber,
        to: NhsNumber,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<OdsCode>> {
        records::move_records(self.db(), from, to, now)
    }

    fn insert_notification(&mut self, n: &NewNotification) -> StoreResult<()> {
        LookupTx::insert_notification(self, n)
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> StoreResult<()> {
        LookupTx::append_audit(self, entry)
    }

    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        self.commit_now()
    }
}

impl UploadTx for SqlTx<'_> {
    fn insert_upload(&mut self, upload: &NewUpload) -> StoreResult<()> {
        self.lock_la(&upload.meta.la)?;
        let u = upload;
        uploads::insert_upload(self.db(), &u.id, &u.meta, &u.content_sha256, u.received_at)
    }

    fn find_effective_duplicate(
        &mut self,
        la: &OdsCode,
        file_id: &str,
        content_sha256: &str,
        except: &UploadId,
    ) -> StoreResult<Option<UploadId>> {
        self.lock_la(la)?;
        self.db().find(
            "SELECT id FROM uploads
             WHERE effective AND la_ods = $1 AND (file_id = $2 OR content_sha256 = $3) AND id <> $4
             ORDER BY seq LIMIT 1",
            &[&la.as_str(), &file_id, &content_sha256, &except.as_str()],
            |r| r.get(0),
        )
    }

    fn demographics(&mut self, nhs: NhsNumber) -> StoreResult<Option<Demographics>> {
        demographics::demographics(self.db(), nhs)
    }

    fn demographics_many(
        &mut self,
        nhs: &[NhsNumber],
    ) -> StoreResult<HashMap<NhsNumber, Demographics>> {
        demographics::demographics_many(self.db(), nhs)
    }

    fn has_record(
        &mut self,
        la: &OdsCode,
        nhs: NhsNumber,
        plan: Option<PlanType>,
    ) -> StoreResult<bool> {
        self.settle(la)?;
        let row = match plan {
            None => self.db().row(
                "SELECT 1 FROM records WHERE nhs_number = $1 AND la_ods = $2",
                &[&nhs.digits(), &la.as_str()],
            )?,
            Some(p) => self.db().row(
                "SELECT 1 FROM records r JOIN plans p ON p.record_id = r.id
                 WHERE r.nhs_number = $1 AND r.la_ods = $2 AND p.plan_type = $3",
                &[&nhs.digits(), &la.as_str(), &p.code()],
            )?,
        };
        Ok(row.is_some())
    }

    fn add_row_result(&mut self, upload: &UploadId, result: &RowResult) -> StoreResult<()> {
        let seq = self.seq(upload)?;
        if seq != self.results_seq {
            self.flush_results()?;
            self.results_seq = seq;
        }
        self.results.push(result.clone());
        // Nothing reads row results inside the transaction before a flush (`claim_held` and
        // `finish` flush first), so SQLite keeps a group for one multi-row insert.
        let limit = self.buffer_limit().max(uploads::RESULTS_PER_INSERT);
        if self.results.len() >= limit {
            self.flush_results()?;
        }
        Ok(())
    }

    fn claim_held(&mut self, la: &OdsCode, upload: &UploadId) -> StoreResult<HeldClaim> {
        // The LA's lock first (SQLite's BEGIN IMMEDIATE holds the write lock already): a
        // concurrent confirm or upload of this LA waits, and what is read after it includes
        // everything such a transaction committed.
        self.lock_la(la)?;
        let status = self.db().row(
            "SELECT status FROM uploads WHERE id = $1 AND la_ods = $2",
            &[&upload.as_str(), &la.as_str()],
        )?;
        let held = match status {
            Some(r) => r.str(0)? == UploadStatus::HeldForConfirmation.code(),
            None => false,
        };
        if !held {
            return Ok(HeldClaim::NotHeld);
        }
        if uploads::applied_since(self.db(), la, upload)? > 0 {
            return Ok(HeldClaim::Stale);
        }
        self.flush_results()?;
        let seq = self.seq(upload)?;
        self.db()
            .exec("DELETE FROM upload_rows WHERE upload_seq = $1", &[&seq])?;
        Ok(HeldClaim::Claimed)
    }

    fn upsert(
        &mut self,
        la: &OdsCode,
        row: &RecordRow,
        upload: &UploadId,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.lock_la(la)?;
        self.upserts.push(PendingUpsert {
            la: la.clone(),
            row: row.clone(),
            upload: upload.clone(),
            now,
        });
        if self.upserts.len() >= self.buffer_limit() {
            self.flush_upserts()?;
        }
        Ok(())
    }

    fn sensitive_marks_removed(&mut self) -> StoreResult<Vec<NhsNumber>> {
        self.flush_upserts()?;
        Ok(std::mem::take(&mut self.unmarked))
    }

    fn delete(
        &mut self,
        la: &OdsCode,
        nhs: NhsNumber,
        plan: Option<PlanType>,
    ) -> StoreResult<bool> {
        self.settle(la)?;
        let digits = nhs.digits();
        let db = self.conn.db();
        let n = match plan {
            None => db.exec(
                "DELETE FROM records WHERE nhs_number = $1 AND la_ods = $2",
                &[&digits, &la.as_str()],
            )?,
            Some(p) => {
                let n = db.exec(
                    "DELETE FROM plans WHERE plan_type = $3 AND record_id =
                         (SELECT id FROM records WHERE nhs_number = $1 AND la_ods = $2)",
                    &[&digits, &la.as_str(), &p.code()],
                )?;
                // The deleted plan may have been the record's last marked one.
                let unmarked = db.exec(
                    "UPDATE records SET sensitive = false
                     WHERE nhs_number = $1 AND la_ods = $2 AND sensitive
                       AND EXISTS (SELECT 1 FROM plans WHERE record_id = records.id)
                       AND NOT EXISTS (SELECT 1 FROM plans WHERE record_id = records.id AND sensitive)",
                    &[&digits, &la.as_str()],
                )?;
                db.exec(
                    "DELETE FROM records WHERE nhs_number = $1 AND la_ods = $2
                     AND NOT EXISTS (SELECT 1 FROM plans WHERE record_id = records.id)",
                    &[&digits, &la.as_str()],
                )?;
                if unmarked == 1 {
                    self.unmarked.push(nhs);
                }
                n
            }
        };
        Ok(n > 0)
    }

    fn open_plans(
        &mut self,
        la: &OdsCode,
        as_of: NaiveDate,
    ) -> StoreResult<Vec<(NhsNumber, PlanType)>> {
        self.settle(la)?;
        self.db().list(
            "SELECT r.nhs_number, p.plan_type FROM plans p JOIN records r ON r.id = p.record_id
                 WHERE r.la_ods = $1 AND (p.end_date IS NULL OR p.end_date > $2)",
            &[&la.as_str(), &as_of],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    fn end_plan(
        &mut self,
        la: &OdsCode,
        nhs: NhsNumber,
        plan: PlanType,
        end: NaiveDate,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.settle(la)?;
        // A plan that starts after the file date ends on its start date: never before it.
        self.db().exec(
            "UPDATE plans SET end_date = greatest($4::date, start_date), updated_at = $5
             WHERE plan_type = $3 AND record_id =
                 (SELECT id FROM records WHERE nhs_number = $1 AND la_ods = $2)",
            &[&nhs.digits(), &la.as_str(), &plan.code(), &end, &now],
        )?;
        Ok(())
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> StoreResult<()> {
        LookupTx::append_audit(self, entry)
    }

    fn finish(
        mut self: Box<Self>,
        summary: &UploadSummary,
        held_file: Option<&[u8]>,
    ) -> StoreResult<()> {
        self.flush_upserts()?;
        self.flush_results()?;
        let db = self.conn.db();
        uploads::update_summary(db, summary)?;
        if summary.status == UploadStatus::Completed && summary.is_effective() {
            // Applied: every earlier held upload of the LA is now stale for good.
            const STALE_HELD: &str = "SELECT seq FROM uploads
                 WHERE la_ods = $1 AND status = 'held-for-confirmation' AND effective
                   AND seq < (SELECT seq FROM uploads WHERE id = $2)";
            let args: [&dyn super::ToArg; 2] = [&summary.meta.la.as_str(), &summary.id.as_str()];
            db.exec(
                &format!("DELETE FROM held_files WHERE upload_seq IN ({STALE_HELD})"),
                &args,
            )?;
            db.exec(
                &format!("UPDATE uploads SET effective = false WHERE seq IN ({STALE_HELD})"),
                &args,
            )?;
        }
        if let Some(content) = held_file {
            let seq = uploads::upload_seq(db, &summary.id)?;
            db.exec(
                "INSERT INTO held_files (upload_seq, content) VALUES ($1, $2)
                 ON CONFLICT (upload_seq) DO UPDATE SET content = excluded.content",
                &[&seq, &content],
            )?;
        } else {
            db.exec(
                "DELETE FROM held_files WHERE upload_seq = (SELECT seq FROM uploads WHERE id = $1)",
                &[&summary.id.as_str()],
            )?;
        }
        self.commit_now()
    }
}
