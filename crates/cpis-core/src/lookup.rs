//! Health lookups (SPEC rules 1–4): read a child's records, record the access, and write one
//! `access` notification per LA holding a visible plan — all in one transaction.
//!
//! A lookup reads what it needs first (its view: the child's records, their LAs, the recent
//! accesses and the attendance up to the newest of them), then goes to one writer thread that
//! commits lookups in groups: every lookup waiting when a transaction starts joins it, so one
//! durable commit (one fsync) serves many lookups. In the group each lookup reads only the
//! child's accesses after its view (its group's own, and any committed since) before writing, so
//! each access is in its history and attendance once. Where the view is read is the backend's
//! choice (`Store::views_on_readers`): on PostgreSQL a reader thread reads views on the pool
//! while the writer commits; on SQLite the writer reads them in the group's transaction, its
//! page cache being the only one a commit leaves warm. A caller's answer is sent
//! only after its group committed: nothing a clinician saw is unrecorded, and no notification is
//! lost.
//!
//! On SQLite a group is made durable in the store's lookup log (an append-only file beside the
//! database), never waiting for the one writer (an upload holds it for seconds), and a second
//! thread copies logged lookups in 20–400 ms apart (further apart the busier: [`copy_gap`]), many
//! to a transaction, then tells the notification bus (`cpis_store::sqlite::lookup_spool`).

mod payload;

use crate::bus::NotificationBus;
use cpis_auth::capability;
use cpis_domain::attendance::{self, Attendance, AttendancePattern, AttendanceThresholds};
use cpis_domain::lookup::{visible_records, VisibleRecord, HISTORY_LEN};
use cpis_domain::{
    access, Access, AccessKind, Accessor, AuditActor, AuditEntry, Clock, LocalAuthority,
    NewNotification, NhsNumber, NotificationKind, OdsCode, VisibilityPolicy,
};
use cpis_store::{LookupTx, LookupView, Store, StoreError};
use payload::AccessPayload;
pub(crate) use payload::{payload_time, ChildJson};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Lookups queued beyond this are refused (503) rather than piling up.
const QUEUE: usize = 8192;
/// Most lookups committed together.
const MAX_GROUP: usize = 512;
/// Threads reading lookups' views where the backend reads them on readers. One, on the
/// project's 2-core machine: a lone reader takes more lookups per snapshot, so PostgreSQL runs
/// fewer statements per lookup, and that was 3–10% more lookups per second at 8–64 connections
/// than two readers (BENCHMARKS.md, 2026-12-04); it still reads while the writer commits.
const READERS: usize = 1;
/// Most lookups whose views a reader reads together.
const READ_BATCH: usize = 64;
/// The log thread copies logged lookups in at most this often: a group logged on a quiet server
/// is copied in (and its notifications pushed) at once, and under load each copy takes every
/// lookup logged since the last, so the pages its rows are appended to are written once for all
/// of them (issue #16: where each group committed on its own wrote ~20 KB a lookup). It also looks
/// this often for lookups logged where it is not told (`cpis_store::sqlite::lookup_spool`).
const SPOOL_IDLE: Duration = Duration::from_millis(20);
/// The longest gap between copies, however busy the server ([`copy_gap`]): a notification waits
/// at most this long (and a copy's length) to reach the LA's stream and webhook under load (SPEC:
/// p99 ≤ 1 s). 400 ms rather than 200 wrote 6–7% less per lookup at 32 connections (3.7–3.8 KB
/// against 4.0), and lookups/s and p99 at 8 and 32 connections were within the noise.
const SPOOL_BUSY: Duration = Duration::from_millis(400);
/// Entries copied in per second (an access, an audit entry and a notification per LA: about three
/// a lookup) up to which copies are [`SPOOL_IDLE`] apart; the gap grows in proportion beyond.
const SPOOL_PACE_FROM: f64 = 2_000.0;
/// How long it waits after the store refused to copy them in.
const SPOOL_RETRY: Duration = Duration::from_secs(1);

/// One lookup as the caller asks for it. Who is looking and whether they may notify come from
/// their [`capability::Lookup`], never from the request.
#[derive(Debug, Clone)]
pub struct LookupRequest {
    nhs_number: NhsNumber,
    accessor: Accessor,
    requested_unscheduled: bool,
    may_notify: bool,
    trace_id: Option<String>,
    history: AccessHistory,
}

/// Whether a lookup's answer carries the child's access history (SPEC rule 4: the 25 most
/// recent unscheduled accesses). The web page shows it; the FHIR API's CareTeam search does not
/// (its history is the AuditEvent search), so its lookups read the child's accesses only to
/// count attendance, not 25 of them to throw away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessHistory {
    Shown,
    NotShown,
}

impl AccessHistory {
    /// How many accesses a lookup reads for its history.
    fn len(self) -> usize {
        match self {
            AccessHistory::Shown => HISTORY_LEN,
            AccessHistory::NotShown => 0,
        }
    }
}

impl LookupRequest {
    /// `requested_unscheduled`: the caller asked for a notifying lookup
    /// (`IsUnscheduledAccessEvent: true`).
    pub fn new(
        cap: &capability::Lookup,
        nhs_number: NhsNumber,
        requested_unscheduled: bool,
        trace_id: Option<String>,
    ) -> Self {
        LookupRequest {
            nhs_number,
            accessor: cap.accessor().clone(),
            requested_unscheduled,
            may_notify: cap.may_notify(),
            trace_id,
            history: AccessHistory::Shown,
        }
    }

    /// The answer without the access history (`LookupResult::history` empty).
    pub fn without_history(mut self) -> Self {
        self.history = AccessHistory::NotShown;
        self
    }
}

/// What a lookup found and did.
#[derive(Debug, Clone)]
pub struct LookupResult {
    pub records: Vec<VisibleRecord>,
    /// The most recent unscheduled accesses before this one, newest first (none when the
    /// request was [`LookupRequest::without_history`]).
    pub history: Vec<Access>,
    /// This lookup's own access.
    pub access: Access,
    /// The LAs notified by this lookup.
    pub notified: Vec<OdsCode>,
    /// The directory entries (contacts) of the LAs in `records`, read in the same transaction.
    pub local_authorities: Vec<LocalAuthority>,
    /// The child's unscheduled accesses in the last six months and 30 days, this one included
    /// when it is unscheduled (all zero when no plan is visible: nothing is read).
    pub attendance: Attendance,
    /// `Some` when the attendance meets the configured thresholds (only with a visible plan).
    pub pattern: Option<AttendancePattern>,
}

impl LookupResult {
    /// A sensitive child: the access history hides where the child was seen.
    pub fn sensitive(&self) -> bool {
        self.records.iter().any(|r| r.record.sensitive)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("lookups are temporarily unavailable")]
    Unavailable,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for LookupError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => LookupError::Unavailable,
            other => LookupError::Store(other),
        }
    }
}

type Reply = oneshot::Sender<Result<LookupResult, LookupError>>;

struct Job {
    request: LookupRequest,
    reply: Reply,
    /// Read by a reader thread, or `None` for the writer to read in the group.
    view: Option<LookupView>,
}

/// The lookup service. Cloning shares the one writer thread.
#[derive(Clone)]
pub struct LookupService {
    queue: SyncSender<Job>,
    bus: Arc<NotificationBus>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: VisibilityPolicy,
    /// The spool thread runs while any handle to the service is alive.
    _alive: Arc<()>,
}

/// What a lookup applies: which plans show, and when attendance is a pattern.
#[derive(Debug, Clone, Copy, Default)]
pub struct LookupSettings {
    pub visibility: VisibilityPolicy,
    pub attendance: AttendanceThresholds,
}

impl From<VisibilityPolicy> for LookupSettings {
    fn from(visibility: VisibilityPolicy) -> Self {
        LookupSettings {
            visibility,
            attendance: AttendanceThresholds::default(),
        }
    }
}

/// A pending answer: `.await` it, or `wait()` from blocking code.
pub struct PendingLookup(Result<oneshot::Receiver<Result<LookupResult, LookupError>>, LookupError>);

impl PendingLookup {
    pub fn wait(self) -> Result<LookupResult, LookupError> {
        self.0?
            .blocking_recv()
            .unwrap_or(Err(LookupError::Unavailable))
    }

    pub async fn answer(self) -> Result<LookupResult, LookupError> {
        self.0?.await.unwrap_or(Err(LookupError::Unavailable))
    }
}

impl LookupService {
    /// Starts the writer thread, with a notification bus of its own.
    /// Default attendance thresholds; [`LookupService::start_with_settings`] sets them.
    pub fn start(store: Arc<dyn Store>, clock: Arc<dyn Clock>, policy: VisibilityPolicy) -> Self {
        Self::start_with_bus(store, clock, policy, Arc::default())
    }

    /// Starts the writer thread; every committed group of lookups is published on `bus`.
    /// Default attendance thresholds.
    pub fn start_with_bus(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: VisibilityPolicy,
        bus: Arc<NotificationBus>,
    ) -> Self {
        Self::start_with_settings(store, clock, policy.into(), bus)
    }

    /// Starts the writer thread with these settings (visibility, attendance thresholds); every
    /// committed group of lookups is published on `bus`.
    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "cannot fail: spawn the lookup writer thread"
    )]
    pub fn start_with_settings(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: LookupSettings,
        bus: Arc<NotificationBus>,
    ) -> Self {
        let policy = settings.visibility;
        let (to_writer, jobs) = sync_channel::<Job>(QUEUE);
        let queue = if store.views_on_readers() {
            let (queue, to_read) = sync_channel::<Job>(QUEUE);
            let to_read = Arc::new(std::sync::Mutex::new(to_read));
            for n in 0..READERS {
                let (store, clock, to_read, to_writer) = (
                    store.clone(),
                    clock.clone(),
                    to_read.clone(),
                    to_writer.clone(),
                );
                std::thread::Builder::new()
                    .name(format!("cpis-lookup-read-{n}"))
                    .spawn(move || read_views(store.as_ref(), clock.as_ref(), &to_read, &to_writer))
                    .expect("spawn a lookup reader thread");
            }
            queue
        } else {
            to_writer
        };
        let (logged, wake) = sync_channel::<()>(1);
        let worker = Worker {
            store: store.clone(),
            clock: clock.clone(),
            policy,
            attendance: settings.attendance,
            bus: bus.clone(),
            logged,
        };
        std::thread::Builder::new()
            .name("cpis-lookups".into())
            .spawn(move || worker.run(jobs))
            .expect("spawn the lookup writer thread");
        let alive = Arc::new(());
        let (spool_store, spool_bus, spool_alive) =
            (store.clone(), bus.clone(), Arc::downgrade(&alive));
        std::thread::Builder::new()
            .name("cpis-lookup-spool".into())
            .spawn(move || drain_spool(spool_store.as_ref(), &spool_bus, &wake, &spool_alive))
            .expect("spawn the lookup spool thread");
        LookupService {
            queue,
            bus,
            store,
            clock,
            policy,
            _alive: alive,
        }
    }

    /// The bus this service publishes every committed group of lookups on (so consumers look
    /// for new notifications at once rather than at their next poll).
    pub fn commits(&self) -> Arc<NotificationBus> {
        self.bus.clone()
    }

    pub fn policy(&self) -> &VisibilityPolicy {
        &self.policy
    }

    /// Queues a lookup; the answer arrives once it is durably recorded.
    pub fn submit(&self, request: LookupRequest) -> PendingLookup {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Job {
            request,
            reply,
            view: None,
        }) {
            Ok(()) => PendingLookup(Ok(answer)),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                PendingLookup(Err(LookupError::Unavailable))
            }
        }
    }

    /// A blocking lookup (CLI, tests).
    pub fn lookup(&self, request: LookupRequest) -> Result<LookupResult, LookupError> {
        self.submit(request).wait()
    }

    /// The access history (newest first), only while the child has a visible plan: the history
    /// of a child with nothing to show is not disclosed. Read-only; records no access.
    pub fn history(
        &self,
        cap: &capability::Lookup,
        nhs: NhsNumber,
        trace_id: Option<String>,
    ) -> Result<(Vec<VisibleRecord>, Vec<Access>), LookupError> {
        self.store.append_audit(
            &AuditEntry::new(
                self.clock.now(),
                actor(cap.accessor()),
                "lookup.history",
                trace_id,
            )
            .about(nhs),
        )?;
        let records = visible_records(
            self.store.records_for(nhs)?,
            &self.policy,
            self.clock.today(),
        );
        if records.is_empty() {
            return Ok((records, Vec::new()));
        }
        let history = self.store.recent_accesses(nhs, HISTORY_LEN)?;
        Ok((records, history))
    }
}

struct Worker {
    bus: Arc<NotificationBus>,
    /// Tells the log thread a group was logged.
    logged: SyncSender<()>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: VisibilityPolicy,
    attendance: AttendanceThresholds,
}

/// A reader thread: takes the lookups waiting (up to [`READ_BATCH`]), reads their views in one
/// snapshot and passes them to the writer (an answer at once when the read fails). Ends when the
/// service and the writer are gone.
fn read_views(
    store: &dyn Store,
    clock: &dyn Clock,
    jobs: &std::sync::Mutex<Receiver<Job>>,
    to_writer: &SyncSender<Job>,
) {
    loop {
        let batch = {
            let jobs = jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Ok(first) = jobs.recv() else { return };
            let mut batch = vec![first];
            while batch.len() < READ_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let children: Vec<NhsNumber> = batch.iter().map(|j| j.request.nhs_number).collect();
        let history = (batch.iter().map(|j| j.request.history.len()))
            .max()
            .unwrap_or_default();
        match store.lookup_views(&children, history, clock.now()) {
            Ok(views) => {
                for (mut job, view) in batch.into_iter().zip(views) {
                    job.view = Some(view);
                    if let Err(refused) = to_writer.send(job) {
                        let _ = refused.0.reply.send(Err(LookupError::Unavailable));
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, lookups = batch.len(), "lookups' records could not be read");
                for job in batch {
                    let _ = job.reply.send(Err(LookupError::Unavailable));
                }
            }
        }
    }
}

impl Worker {
    fn run(self, jobs: Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            match self.commit_group(&mut group) {
                Ok((results, in_tables)) => {
                    // Logged lookups are published by the log thread once copied in: a consumer
                    // woken now would read nothing new, or copy the group in on its own.
                    if in_tables {
                        self.bus.publish();
                    } else {
                        // Full: the log thread has been told already.
                        let _ = self.logged.try_send(());
                    }
                    for (job, result) in group.into_iter().zip(results) {
                        let _ = job.reply.send(Ok(result));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, lookups = group.len(), "lookup group rolled back");
                    for job in group {
                        let _ = job.reply.send(Err(LookupError::Unavailable));
                    }
                }
            }
        }
    }

    /// The group's results, and whether its writes are in the tables (not in the lookup log).
    fn commit_group(&self, group: &mut [Job]) -> Result<(Vec<LookupResult>, bool), StoreError> {
        let mut tx = self.store.begin_lookups()?;
        let in_tables = tx.writes_tables();
        // The accesses committed since the views read ahead were read, for the whole group.
        let ahead: Vec<(NhsNumber, i64)> = (group.iter())
            .filter_map(|job| {
                let view = job.view.as_ref().filter(|v| !v.records.is_empty())?;
                Some((job.request.nhs_number, view.through))
            })
            .collect();
        tx.read_ahead(&ahead)?;
        let mut results = Vec::with_capacity(group.len());
        for job in group.iter_mut() {
            let view = match job.view.take() {
                Some(view) => view,
                None => tx.view(
                    job.request.nhs_number,
                    job.request.history.len(),
                    self.clock.now(),
                )?,
            };
            results.push(self.one(tx.as_mut(), &job.request, view)?);
        }
        tx.commit()?;
        Ok((results, in_tables))
    }

    fn one(
        &self,
        tx: &mut dyn LookupTx,
        req: &LookupRequest,
        mut view: LookupView,
    ) -> Result<LookupResult, StoreError> {
        let now = self.clock.now();
        let records = visible_records(
            std::mem::take(&mut view.records),
            &self.policy,
            now.date_naive(),
        );
        // The directory entries of the LAs whose plans show.
        let local_authorities = std::mem::take(&mut view.local_authorities)
            .into_iter()
            .filter(|la| records.iter().any(|r| r.record.la == la.ods_code))
            .collect();
        let notifying = access::is_notifying(
            req.requested_unscheduled,
            req.may_notify,
            req.accessor.setting_type,
        );
        let kind = match (records.is_empty(), notifying) {
            (true, _) => AccessKind::Miss,
            (false, true) => AccessKind::Unscheduled,
            (false, false) => AccessKind::Silent,
        };
        let access = Access {
            id: ordered_id(),
            time: now,
            nhs_number: req.nhs_number,
            accessor: req.accessor.clone(),
            kind,
            trace_id: req.trace_id.clone(),
        };
        tx.insert_access(&access)?;
        // Only for a child with a visible plan: the accesses since the view (this one included
        // when unscheduled, so it counts itself) complete its history and attendance.
        let (history, attendance, pattern) = if records.is_empty() {
            (Vec::new(), Attendance::default(), None)
        } else {
            let since = tx.unscheduled_after(req.nhs_number, view.through)?;
            let (history, attendance) = view.complete(since, &access.id, req.history.len(), now);
            let pattern = attendance::pattern(&attendance.counts, &self.attendance);
            (history, attendance, pattern)
        };
        tx.append_audit(
            &AuditEntry::new(
                now,
                actor(&req.accessor),
                format!("lookup.{}", kind.code()),
                req.trace_id.clone(),
            )
            .about(req.nhs_number),
        )?;
        let mut notified = Vec::new();
        if kind == AccessKind::Unscheduled {
            for visible in &records {
                let id = ordered_id();
                let payload = AccessPayload::new(&id, visible, &access, &attendance, pattern);
                tx.insert_notification(&NewNotification {
                    payload: serde_json::to_string(&payload)
                        .map_err(|e| StoreError::Backend(format!("notification payload: {e}")))?,
                    id,
                    la: visible.record.la.clone(),
                    kind: NotificationKind::Access,
                    created_at: now,
                })?;
                notified.push(visible.record.la.clone());
            }
        }
        Ok(LookupResult {
            records,
            history,
            access,
            notified,
            local_authorities,
            attendance,
            pattern,
        })
    }
}

/// Copies logged lookups into the store when the lookup writer says a group was logged (at most
/// once per [`copy_gap`]), or every [`SPOOL_IDLE`] (SQLite), and publishes each batch on the bus,
/// so LAs see those notifications moments after they were logged (or after an upload holding the
/// writer commits). Returns once the last handle to the lookup service is gone.
fn drain_spool(store: &dyn Store, bus: &NotificationBus, logged: &Receiver<()>, alive: &Weak<()>) {
    let mut last_copy: Option<Instant> = None;
    let mut gap = SPOOL_IDLE;
    while alive.strong_count() > 0 {
        let _ = logged.recv_timeout(SPOOL_IDLE);
        if let Some(wait) = last_copy.and_then(|at| gap.checked_sub(at.elapsed())) {
            std::thread::sleep(wait);
        }
        match store.drain_lookup_spool() {
            Ok(0) => {}
            Ok(copied) => {
                bus.publish();
                let now = Instant::now();
                gap = copy_gap(copied, last_copy.map(|at| now - at));
                last_copy = Some(now);
            }
            Err(e) => {
                tracing::warn!(error = %e, "spooled lookups could not be copied in yet; retrying");
                std::thread::sleep(SPOOL_RETRY);
            }
        }
    }
}

/// How long the log thread leaves between a copy of `copied` entries, made `since` after the one
/// before (`None`: the first), and the next. Each copy writes every B-tree page it changes (to the
/// WAL, and again at the next checkpoint), and under load most of those are leaves of the
/// access-history index, one per child looked up since the last copy: the more lookups a copy
/// takes, the more of them share a leaf. So the busier the server, the longer the gap:
/// [`SPOOL_IDLE`] up to [`SPOOL_PACE_FROM`] entries a second (a quiet server's notifications go
/// out at once: about 650 lookups a second), then in proportion to the rate, up to [`SPOOL_BUSY`]
/// (about 13,000 lookups a second). Issue #16, target 1: with 20 ms gaps whatever the load, bytes
/// written per lookup at 8, 32 and 64 connections were 4.2, 4.7–5.0 and 5.7–5.9 KB; paced,
/// 3.5–3.6, 3.7–3.8 and 4.2 (BENCHMARKS.md, 2026-12-04, seventh session).
fn copy_gap(copied: u64, since: Option<Duration>) -> Duration {
    let Some(since) = since else {
        return SPOOL_IDLE;
    };
    let rate = copied as f64 / since.max(SPOOL_IDLE).as_secs_f64();
    SPOOL_IDLE
        .mul_f64((rate / SPOOL_PACE_FROM).max(1.0))
        .min(SPOOL_BUSY)
}

/// A new access or notification id: a time-ordered UUID (version 7, increasing within the
/// process), so the unique index on a notification's id grows at its end like the sequence number
/// does instead of taking each new id on a random page (issue #16: a random index page per row
/// was a page written to the WAL per lookup). An access's id is not indexed at all (migration
/// 0021): nothing reads an access by it.
pub(crate) fn ordered_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn actor(a: &Accessor) -> AuditActor {
    AuditActor {
        id: a.user_id.clone(),
        name: a.user_name.clone(),
        organisation: Some(a.organisation.to_string()),
        role: a.role.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_quiet_server_copies_at_once_and_a_busy_one_waits_longer_up_to_a_bound() {
        // The first copy, and any at up to 2,000 entries a second, leave the shortest gap.
        assert_eq!(copy_gap(50_000, None), SPOOL_IDLE);
        assert_eq!(copy_gap(3, Some(10_000 * MS)), SPOOL_IDLE);
        assert_eq!(copy_gap(40, Some(20 * MS)), SPOOL_IDLE);
        // Beyond, in proportion to the rate: 18,000 entries a second (6,000 lookups) → 180 ms.
        assert_eq!(copy_gap(360, Some(20 * MS)), 180 * MS);
        assert_eq!(copy_gap(3_240, Some(180 * MS)), 180 * MS);
        // A copy made sooner than the shortest gap (a read copied in first) is not a higher rate.
        assert_eq!(copy_gap(40, Some(MS)), SPOOL_IDLE);
        // However busy: never longer than the bound.
        assert_eq!(copy_gap(1_000_000, Some(20 * MS)), SPOOL_BUSY);
        assert_eq!(copy_gap(u64::MAX, Some(Duration::ZERO)), SPOOL_BUSY);
    }

    #[test]
    fn at_a_steady_rate_the_gap_settles_where_it_started() {
        // The log thread copies what accumulated over the last gap: at a steady rate the next
        // gap is the same (no drift towards either bound).
        for lookups_per_second in [10.0, 1_000.0, 4_000.0, 8_000.0, 20_000.0] {
            let entries_per_second = 3.0 * lookups_per_second;
            let mut gap = SPOOL_IDLE;
            let mut gaps = Vec::new();
            for _ in 0..5 {
                let copied = (entries_per_second * gap.as_secs_f64()).round() as u64;
                gap = copy_gap(copied, Some(gap));
                gaps.push(gap);
            }
            let settled = gaps[1];
            assert!(
                gaps[1..].iter().all(|g| g.abs_diff(settled) <= MS),
                "{lookups_per_second}/s: {gaps:?}"
            );
            assert!(settled >= SPOOL_IDLE && settled <= SPOOL_BUSY);
        }
    }
}
