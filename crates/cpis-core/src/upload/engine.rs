//! The two-pass, single-transaction upload engine.

use super::csv_reader::{FileError, ReadRow, UploadReader};
use super::read_ahead::ReadAhead;
use super::spool::SpooledFile;
use chrono::{DateTime, Utc};
use cpis_auth::capability::LaUpload;
use cpis_domain::outcome::{DetailCode, FileOutcome, RecordOutcome};
use cpis_domain::report::{
    RowResult, UploadCounts, UploadId, UploadMeta, UploadStatus, UploadSummary,
};
use cpis_domain::upload::{UploadMode, UploadRow, FORMAT_V1};
use cpis_domain::{AuditActor, AuditEntry, AuditOutcome};
use cpis_domain::{Clock, DemographicStatus, Demographics, NhsNumber, PlanType};
use cpis_store::{HeldClaim, NewUpload, Store, StoreError, UploadTx};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Engine configuration.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UploadSettings {
    /// A full upload that would end more than this share of the LA's open plans is held for
    /// confirmation (default 0.5).
    pub mass_end_threshold: f64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            mass_end_threshold: 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressPhase {
    Verifying,
    Applying,
}

/// How far an upload has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: ProgressPhase,
    pub rows: u64,
    pub bytes: u64,
    pub total_bytes: u64,
}

/// What a submission produced.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// A new upload, processed now (applied, refused, or held).
    New(UploadSummary),
    /// The same file id or content was already processed for this LA: nothing changed. This is
    /// the duplicate's own summary (status `duplicate`, `duplicate_of` the earlier upload, a
    /// message naming it), never something that reads like a load.
    Replay(UploadSummary),
}

impl Submitted {
    pub fn summary(&self) -> &UploadSummary {
        match self {
            Submitted::New(s) | Submitted::Replay(s) => s,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no such upload")]
    NotFound,
    #[error("upload is not held for confirmation")]
    NotHeld,
    #[error("a later upload has been applied since this one was held; send a fresh full file")]
    Stale,
    #[error("the local authority is not in the directory")]
    UnknownLocalAuthority,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not read the spooled upload: {0}")]
    Io(#[from] std::io::Error),
}

const PROGRESS_EVERY: u64 = 4096;
/// Rows verified per demographics look-up batch.
const VERIFY_CHUNK: usize = 2000;

pub struct UploadEngine {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: UploadSettings,
    /// Told after every upload that ran (its commit may have created notifications).
    bus: Arc<crate::bus::NotificationBus>,
}

/// Per-row facts pass 1 hands to pass 2, one bit per row.
#[derive(Default)]
struct RowBits(Vec<u64>);

impl RowBits {
    fn set(&mut self, row: u64) {
        let (i, b) = ((row / 64) as usize, row % 64);
        if self.0.len() <= i {
            self.0.resize(i + 1, 0);
        }
        self.0[i] |= 1 << b;
    }
    fn get(&self, row: u64) -> bool {
        let (i, b) = ((row / 64) as usize, row % 64);
        self.0.get(i).is_some_and(|w| w & (1 << b) != 0)
    }
}

/// What the verification pass learnt.
struct Verified {
    counts: UploadCounts,
    accepted: RowBits,
    /// (NHS number, plan) the file mentions, valid or not: in full mode these are never ended.
    keep: HashSet<(NhsNumber, PlanType)>,
}

enum Pass1 {
    Done(Verified),
    Refused(FileError),
}

impl UploadEngine {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: UploadSettings) -> Self {
        UploadEngine {
            store,
            clock,
            settings,
            bus: Arc::default(),
        }
    }

    /// Publishes on `bus` after every upload that ran, so the outbox's consumers look at once.
    pub fn with_bus(mut self, bus: Arc<crate::bus::NotificationBus>) -> Self {
        self.bus = bus;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A fresh, unguessable upload id.
    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "cannot fail: a UUID is a valid upload id"
    )]
    pub fn new_upload_id() -> UploadId {
        UploadId::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid upload id")
    }

    /// Processes one upload under a new id (see [`UploadEngine::submit_as`]).
    pub fn submit(
        &self,
        cap: &LaUpload,
        meta: UploadMeta,
        file: &SpooledFile,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Submitted, EngineError> {
        self.submit_as(cap, Self::new_upload_id(), meta, file, progress)
    }

    /// Processes one upload under the given fresh id, so a caller can report progress under it
    /// while it runs. `meta.la` must come from the caller's verified identity.
    pub fn submit_as(
        &self,
        cap: &LaUpload,
        id: UploadId,
        mut meta: UploadMeta,
        file: &SpooledFile,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Submitted, EngineError> {
        // The LA is the capability's, whatever the metadata said.
        meta.la = cap.la().clone();
        let new = NewUpload {
            id: id.clone(),
            meta,
            content_sha256: file.sha256().to_owned(),
            received_at: self.clock.now(),
        };
        if self.store.local_authority(&new.meta.la)?.is_none() {
            return Err(EngineError::UnknownLocalAuthority);
        }
        if new.meta.format != FORMAT_V1 {
            let msg = format!(
                "format '{}' is not supported; this service reads {FORMAT_V1}",
                new.meta.format
            );
            return self.refuse(cap.actor(), &new, FileOutcome::UnsupportedVersion, msg);
        }
        let ran = self.process(cap.actor(), &new, file, false, progress);
        self.bus.publish();
        match ran {
            Err(EngineError::Store(StoreError::Unavailable(e))) => {
                tracing::warn!(upload = %id, error = %e, "upload could not be applied: store unavailable");
                Ok(Submitted::New(self.unavailable(&new)))
            }
            other => other,
        }
    }

    /// Applies an upload that was held by the mass-ending guard, exactly as it was sent.
    pub fn confirm(
        &self,
        cap: &LaUpload,
        id: &UploadId,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<UploadSummary, EngineError> {
        let la = cap.la();
        let Some(held) = self.store.upload(la, id)? else {
            // Answered like a missing upload; a probe across LAs still leaves a trace.
            self.store.append_audit(
                &AuditEntry::new(
                    self.clock.now(),
                    cap.actor().clone(),
                    "upload.confirm",
                    None,
                )
                .denied()
                .detail(format!(
                    "upload {id}: not one of {la}'s uploads (another LA's, or none)"
                )),
            )?;
            return Err(EngineError::NotFound);
        };
        if held.status != UploadStatus::HeldForConfirmation {
            return Err(EngineError::NotHeld);
        }
        if self.store.applied_uploads_since(la, id)? > 0 {
            return Err(EngineError::Stale);
        }
        let content = self.store.held_file(la, id)?.ok_or(EngineError::NotHeld)?;
        let file = SpooledFile::from_bytes(&content).map_err(|e| match e {
            super::SpoolError::Io(io) => EngineError::Io(io),
            super::SpoolError::NoSpace(io) => StoreError::Unavailable(io.to_string()).into(),
            super::SpoolError::TooLarge { .. } | super::SpoolError::BadGzip(_) => {
                EngineError::NotHeld
            }
        })?;
        let again = NewUpload {
            id: held.id.clone(),
            meta: held.meta.clone(),
            content_sha256: held.content_sha256.clone(),
            received_at: held.received_at,
        };
        let ran = self.process(cap.actor(), &again, &file, true, progress);
        self.bus.publish();
        match ran? {
            Submitted::New(s) | Submitted::Replay(s) => Ok(s),
        }
    }

    fn base_summary(&self, new: &NewUpload) -> UploadSummary {
        UploadSummary {
            id: new.id.clone(),
            meta: new.meta.clone(),
            content_sha256: new.content_sha256.clone(),
            status: UploadStatus::Completed,
            file_outcome: None,
            message: None,
            counts: UploadCounts::default(),
            received_at: new.received_at,
            completed_at: Some(self.clock.now()),
            duplicate_of: None,
        }
    }

    fn refuse(
        &self,
        actor: &AuditActor,
        new: &NewUpload,
        outcome: FileOutcome,
        message: String,
    ) -> Result<Submitted, EngineError> {
        let mut s = self.base_summary(new);
        s.file_outcome = Some(outcome);
        s.message = Some(message);
        let stored = self.store.record_refused_upload(&s).and_then(|()| {
            self.store
                .append_audit(&upload_audit(actor, &s, "upload.refused", self.clock.now()))
        });
        match stored {
            Ok(()) => Ok(Submitted::New(s)),
            Err(StoreError::Unavailable(_)) => Ok(Submitted::New(self.unavailable(new))),
            Err(e) => Err(e.into()),
        }
    }

    /// CPF05: nothing applied, nothing stored (the store could not be written); resubmit.
    fn unavailable(&self, new: &NewUpload) -> UploadSummary {
        let mut s = self.base_summary(new);
        s.file_outcome = Some(FileOutcome::TemporarilyUnavailable);
        s.message = Some("The service could not store this upload just now; nothing was applied. Resubmit the same file.".into());
        s
    }

    fn process(
        &self,
        actor: &AuditActor,
        new: &NewUpload,
        file: &SpooledFile,
        confirming: bool,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Submitted, EngineError> {
        let la = &new.meta.la;
        let mut tx = self.store.begin_upload()?;
        if confirming {
            // Checked again under the LA's lock, in the transaction that applies it: a confirm
            // that waited behind another confirm or a later upload must not apply the old list.
            match tx.claim_held(la, &new.id)? {
                HeldClaim::Claimed => {}
                HeldClaim::NotHeld => return Err(EngineError::NotHeld),
                HeldClaim::Stale => return Err(EngineError::Stale),
            }
        } else {
            tx.insert_upload(new)?;
            if let Some(original) =
                tx.find_effective_duplicate(la, &new.meta.file_id, &new.content_sha256, &new.id)?
            {
                // Only for the message's wording (a lagging read replica may not have it yet).
                let earlier = self.store.upload(la, &original).ok().flatten();
                let mut s = self.base_summary(new);
                s.status = UploadStatus::Duplicate;
                s.message = Some(duplicate_message(new, &original, earlier.as_ref()));
                s.duplicate_of = Some(original);
                tx.append_audit(&upload_audit(
                    actor,
                    &s,
                    "upload.duplicate",
                    self.clock.now(),
                ))?;
                tx.finish(&s, None)?;
                return Ok(Submitted::Replay(s));
            }
        }

        let verified = match self.verify(tx.as_mut(), new, file, progress)? {
            Pass1::Done(v) => v,
            Pass1::Refused(err) => {
                drop(tx);
                return self.refuse(actor, new, FileOutcome::Malformed, err.to_string());
            }
        };
        let mut summary = self.base_summary(new);
        summary.counts = verified.counts;

        // The mass-ending guard, decided before anything is written.
        let mut to_end = Vec::new();
        // A full file none of whose rows could be read as intended says nothing reliable about
        // which children are absent: it loads nothing and ends nothing.
        let nothing_loaded = summary.counts.accepted == 0 && summary.counts.rejected > 0;
        if new.meta.mode == UploadMode::Full && !nothing_loaded {
            let open = tx.open_plans(la, new.meta.file_date)?;
            let open_count = open.len();
            to_end = open
                .into_iter()
                .filter(|key| !verified.keep.contains(key))
                .collect::<Vec<_>>();
            let share = if open_count == 0 {
                0.0
            } else {
                to_end.len() as f64 / open_count as f64
            };
            if !confirming && share > self.settings.mass_end_threshold {
                summary.status = UploadStatus::HeldForConfirmation;
                summary.message = Some(format!(
                    "Held for confirmation: this full upload would end {} of your {} open plans, more than {:.0}%. Nothing was applied. Confirm the upload to apply it.",
                    to_end.len(),
                    open_count,
                    self.settings.mass_end_threshold * 100.0
                ));
                summary.counts.plans_ended = to_end.len() as u64;
                tx.append_audit(&upload_audit(
                    actor,
                    &summary,
                    "upload.held",
                    self.clock.now(),
                ))?;
                tx.finish(&summary, Some(&file.read_all()?))?;
                return Ok(Submitted::New(summary));
            }
        }

        let deleted = self.apply(tx.as_mut(), new, file, &verified.accepted, progress)?;
        summary.counts.deleted = deleted;
        let now = self.clock.now();
        for (nhs, plan) in &to_end {
            tx.end_plan(la, *nhs, *plan, new.meta.file_date, now)?;
        }
        summary.counts.plans_ended = to_end.len() as u64;
        // Removing a sensitive mark shows other clinicians where the child was seen again: it
        // is audited, child by child, in the transaction that removes it.
        for nhs in tx.sensitive_marks_removed()? {
            tx.append_audit(&AuditEntry::new(now, actor.clone(), "record.sensitive_removed", None).about(nhs).detail(format!(
                    "{la} removed its sensitive mark (sensitive=false on every plan row) in upload {}",
                    new.id
                )))?;
        }
        let outcome = FileOutcome::from_counts(summary.counts.accepted, summary.counts.rejected);
        summary.file_outcome = Some(outcome);
        summary.message = Some(outcome.description().to_owned());
        summary.completed_at = Some(self.clock.now());
        let action = if confirming {
            "upload.confirm"
        } else {
            "upload.apply"
        };
        tx.append_audit(&upload_audit(actor, &summary, action, self.clock.now()))?;
        tx.finish(&summary, None)?;
        Ok(Submitted::New(summary))
    }

    /// Pass 1: every row gets its outcome; nothing but row results is written.
    fn verify(
        &self,
        tx: &mut dyn UploadTx,
        new: &NewUpload,
        file: &SpooledFile,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Pass1, EngineError> {
        let la = &new.meta.la;
        let mut reader = match UploadReader::new(file.open()?) {
            Ok(r) => ReadAhead::spawn(r)?,
            Err(e) => return Ok(Pass1::Refused(e)),
        };
        let mut v = Verified {
            counts: UploadCounts::default(),
            accepted: RowBits::default(),
            keep: HashSet::new(),
        };
        let mut seen: HashSet<(NhsNumber, Option<PlanType>)> = HashSet::new();
        // Plans this file itself creates, so a later delete row in it finds them.
        let mut upserted: HashSet<(NhsNumber, PlanType)> = HashSet::new();
        // Rows are read a chunk at a time so the demographics index is asked once per chunk.
        let mut buffered: VecDeque<ReadRow> = VecDeque::with_capacity(VERIFY_CHUNK);
        let mut index: HashMap<NhsNumber, Demographics> = HashMap::new();
        let mut eof = false;
        loop {
            if buffered.is_empty() {
                while !eof && buffered.len() < VERIFY_CHUNK {
                    match reader.next_row() {
                        Ok(Some(r)) => buffered.push_back(r),
                        Ok(None) => eof = true,
                        Err(e) => return Ok(Pass1::Refused(e)),
                    }
                }
                let wanted: Vec<NhsNumber> = buffered
                    .iter()
                    .filter_map(|r| match &r.parsed {
                        Ok(UploadRow::Upsert(rec)) => Some(rec.nhs_number),
                        _ => None,
                    })
                    .collect();
                index = tx.demographics_many(&wanted)?;
            }
            let Some(row) = buffered.pop_front() else {
                break;
            };
            let mut result = RowResult {
                row: row.row,
                nhs_number: row.raw_nhs.clone(),
                outcome: RecordOutcome::Accepted,
                detail: None,
                message: None,
                new_nhs_number: None,
                local_id: row.raw_local_id.clone(),
            };
            match row.parsed {
                Err(rej) => {
                    if let Some(nhs) = rej.nhs_number {
                        result.nhs_number = nhs.digits();
                        // A listed child whose row has an error is not "absent": keep its plans.
                        match row.raw_plan_type.parse::<PlanType>() {
                            Ok(p) => {
                                v.keep.insert((nhs, p));
                            }
                            Err(_) => v.keep.extend(PlanType::ALL.map(|p| (nhs, p))),
                        }
                    }
                    result.outcome = rej.outcome;
                    result.detail = rej.detail;
                    result.message = Some(rej.message);
                }
                Ok(parsed) => {
                    let nhs = parsed.nhs_number();
                    result.nhs_number = nhs.digits();
                    // Listed children are not "absent"; explicitly deleted ones are removed, not ended.
                    match &parsed {
                        UploadRow::Upsert(rec) => {
                            v.keep.insert((nhs, rec.plan.plan_type()));
                        }
                        UploadRow::Delete {
                            plan_type: Some(p), ..
                        } => {
                            v.keep.insert((nhs, *p));
                        }
                        UploadRow::Delete {
                            plan_type: None, ..
                        } => {
                            v.keep.extend(PlanType::ALL.map(|p| (nhs, p)));
                        }
                    }
                    if !seen.insert(parsed.key()) {
                        reject(
                            &mut result,
                            RecordOutcome::Invalid,
                            Some(DetailCode::DuplicateRow),
                            "the same NHS number and plan type appear earlier in this file".into(),
                        );
                    } else {
                        match &parsed {
                            UploadRow::Delete { plan_type, .. } => {
                                let in_file = match plan_type {
                                    Some(p) => upserted.contains(&(nhs, *p)),
                                    None => {
                                        PlanType::ALL.iter().any(|p| upserted.contains(&(nhs, *p)))
                                    }
                                };
                                let known = in_file || tx.has_record(la, nhs, *plan_type)?;
                                if !known {
                                    reject(
                                        &mut result,
                                        RecordOutcome::Invalid,
                                        Some(DetailCode::RecordNotFound),
                                        "your local authority holds no such record to delete"
                                            .into(),
                                    );
                                }
                            }
                            UploadRow::Upsert(rec) => match index.get(&nhs).cloned() {
                                None => reject(
                                    &mut result,
                                    RecordOutcome::NotFound,
                                    None,
                                    RecordOutcome::NotFound.description().into(),
                                ),
                                Some(d) => match d.status {
                                    DemographicStatus::Superseded(replacement) => {
                                        v.keep.insert((replacement, rec.plan.plan_type()));
                                        result.new_nhs_number = Some(replacement);
                                        reject(
                                            &mut result,
                                            RecordOutcome::Superseded,
                                            None,
                                            RecordOutcome::Superseded.description().into(),
                                        );
                                    }
                                    DemographicStatus::Inactive => reject(
                                        &mut result,
                                        RecordOutcome::Invalid,
                                        Some(DetailCode::NhsNumberInactive),
                                        "NHS number is no longer in use (inactive)".into(),
                                    ),
                                    DemographicStatus::InvalidatedAdoption => reject(
                                        &mut result,
                                        RecordOutcome::Invalid,
                                        Some(DetailCode::NhsNumberInactive),
                                        "NHS number is no longer in use (invalidated)".into(),
                                    ),
                                    DemographicStatus::Active
                                        if d.sensitive && !rec.sensitive.is_marked() =>
                                    {
                                        reject(
                                            &mut result,
                                            RecordOutcome::Sensitive,
                                            None,
                                            RecordOutcome::Sensitive.description().into(),
                                        )
                                    }
                                    DemographicStatus::Active
                                        if d.date_of_birth != rec.date_of_birth =>
                                    {
                                        reject(
                                            &mut result,
                                            RecordOutcome::DobMismatch,
                                            None,
                                            RecordOutcome::DobMismatch.description().into(),
                                        )
                                    }
                                    // Accepted: an S-flagged child's row is marked (CPR02 above).
                                    DemographicStatus::Active => {}
                                },
                            },
                        }
                    }
                    if result.outcome.is_accepted() {
                        v.accepted.set(row.row);
                        if let UploadRow::Upsert(rec) = &parsed {
                            upserted.insert((nhs, rec.plan.plan_type()));
                        }
                    }
                }
            }
            v.counts.add(result.outcome);
            tx.add_row_result(&new.id, &result)?;
            if row.row % PROGRESS_EVERY == 0 {
                progress(Progress {
                    phase: ProgressPhase::Verifying,
                    rows: row.row,
                    bytes: reader.bytes_read(),
                    total_bytes: file.len(),
                });
            }
        }
        progress(Progress {
            phase: ProgressPhase::Verifying,
            rows: v.counts.rows,
            bytes: file.len(),
            total_bytes: file.len(),
        });
        Ok(Pass1::Done(v))
    }

    /// Pass 2: writes the rows pass 1 accepted, in file order. Returns how many deletes removed
    /// something.
    fn apply(
        &self,
        tx: &mut dyn UploadTx,
        new: &NewUpload,
        file: &SpooledFile,
        accepted: &RowBits,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<u64, EngineError> {
        let la = &new.meta.la;
        let now = self.clock.now();
        let mut reader = ReadAhead::spawn(UploadReader::new(file.open()?).map_err(file_changed)?)?;
        let mut deleted = 0;
        while let Some(row) = reader.next_row().map_err(file_changed)? {
            if row.row % PROGRESS_EVERY == 0 {
                progress(Progress {
                    phase: ProgressPhase::Applying,
                    rows: row.row,
                    bytes: reader.bytes_read(),
                    total_bytes: file.len(),
                });
            }
            if !accepted.get(row.row) {
                continue;
            }
            match row.parsed.map_err(|_| file_changed(FileError::Empty))? {
                UploadRow::Upsert(rec) => tx.upsert(la, &rec, &new.id, now)?,
                UploadRow::Delete {
                    nhs_number,
                    plan_type,
                } => {
                    if tx.delete(la, nhs_number, plan_type)? {
                        deleted += 1;
                    }
                }
            }
        }
        Ok(deleted)
    }
}

/// The audit entry of an upload's end: who, which LA's file, what came of it (no personal data).
/// Says in words that nothing was applied and which earlier upload this file repeats.
fn duplicate_message(
    new: &NewUpload,
    original: &UploadId,
    earlier: Option<&UploadSummary>,
) -> String {
    let Some(earlier) = earlier else {
        return format!(
            "Duplicate: nothing was applied. Upload {original} already used this file id or the same content."
        );
    };
    let same = if earlier.meta.file_id == new.meta.file_id {
        format!("the file id '{}'", new.meta.file_id)
    } else {
        "the same content".to_owned()
    };
    let state = match (earlier.status, earlier.file_outcome) {
        (UploadStatus::HeldForConfirmation, _) => {
            "it is held for confirmation: confirm that upload, or send a corrected file under a new file id".to_owned()
        }
        (_, Some(o)) => format!("its outcome was {} {}", o.code(), o.description()),
        (status, None) => format!("its status is {}", status.code()),
    };
    format!(
        "Duplicate: nothing was applied. Upload {original} (file id '{}', received {}) already used {same}; {state}.",
        earlier.meta.file_id,
        earlier.received_at.format("%Y-%m-%d %H:%M UTC"),
    )
}

fn upload_audit(
    actor: &AuditActor,
    s: &UploadSummary,
    action: &str,
    now: DateTime<Utc>,
) -> AuditEntry {
    let outcome = match s.file_outcome {
        Some(
            FileOutcome::Malformed
            | FileOutcome::UnsupportedVersion
            | FileOutcome::TemporarilyUnavailable,
        ) => AuditOutcome::Failure,
        _ => AuditOutcome::Success,
    };
    AuditEntry::new(now, actor.clone(), action, None)
        .outcome(outcome)
        .detail(format!(
            "upload {} for {} file '{}' ({} mode): status {}, outcome {}, {} rows, {} accepted, {} plans ended, {} deleted",
            s.id,
            s.meta.la,
            s.meta.file_id,
            s.meta.mode,
            s.status.code(),
            s.file_outcome.map_or("none", |o| o.code()),
            s.counts.rows,
            s.counts.accepted,
            s.counts.plans_ended,
            s.counts.deleted
        ))
}

fn reject(
    result: &mut RowResult,
    outcome: RecordOutcome,
    detail: Option<DetailCode>,
    message: String,
) {
    result.outcome = outcome;
    result.detail = detail;
    result.message = Some(message);
}

/// The spooled file is private to this process and read-only, so the second pass sees what the
/// first did; anything else is an I/O fault and the transaction is abandoned.
fn file_changed(e: FileError) -> EngineError {
    EngineError::Io(std::io::Error::other(format!(
        "spooled upload changed between passes: {e}"
    )))
}
