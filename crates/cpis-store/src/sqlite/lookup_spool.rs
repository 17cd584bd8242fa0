//! The lookup log: every lookup on SQLite is made durable in an append-only file and copied into
//! the database in batches (issue #16, targets 1 and 3).
//!
//! A lookup must be durable before it is answered (its access, audit entry and notifications).
//! Committed to the database group by group, each small commit wrote every page it changed to the
//! WAL and again at the next checkpoint: about 20 KB per lookup at 8 connections, where the rows
//! are under 2 KB. And SQLite has one writer, which an upload holds for the length of its
//! transaction (seconds for a large full file, so that the file applies all or nothing): no
//! clinician may wait that long. So a lookup group reads its lookups' views (records, history,
//! attendance) and the accesses after them from a snapshot (WAL readers never wait for the
//! writer) and makes its writes durable by appending them to a file beside the database
//! (`<database>-lookup-log`, made of zeros ahead of the frames: see [`PREALLOCATE`]): one frame
//! per group, written after the last and `fdatasync`ed before the group is answered.
//! A frame is its length, a CRC-32 of its body, and the body: the group's entries as JSON (the
//! first entry's number and the rest numbered on), deflated (a group's entries repeat the same
//! keys, clinician and setting: about a fifth of the bytes). A frame cut short by a crash, or
//! whose CRC does not match, was never acknowledged: it is not read, and the next frame is written
//! over it.
//!
//! [`LookupSpool::drain`] copies the entries into the database in order, through the same writes
//! a lookup makes (so the audit chain and notification numbering are the database's), and
//! records in the same transaction the last entry copied (`lookup_spool_drained`): a crash at any
//! point neither loses an entry nor copies one twice. When no entry waits, the frames are zeroed
//! and the log starts again at the file's start (a frame after the new ones, left from before,
//! is never read: reading stops at the first frame whose number does not follow); one that has
//! grown past [`REWRITE_AT`] with entries still waiting is rewritten with only those. The lookup
//! service's log thread calls it 20–400 ms apart, further apart the busier the server
//! (`cpis_core::lookup`), so each transaction copies many lookups: a page the rows are appended
//! to, or a leaf of the access-history index several children share, is written once for all of
//! them (about 3.5 KB per lookup in all at 8 connections, its share of the frame included).
//!
//! One process at a time owns the log (an advisory lock on the file): it writes frames, keeps
//! the waiting entries in memory, zeroes or rewrites the file, and copies in what waits when its
//! store is dropped. Another process opening the same database (a command beside a running
//! server) copies in what it can read of the log without changing the file, and writes its own
//! lookups to the database; the copied-through mark keeps every entry copied once, whoever
//! copies it.
//!
//! While entries wait, a logged lookup sees them: the accesses since its view are the
//! database's plus the log's. The store's reads of what lookups write (the LA's inbox, the
//! clinician's history page, the audit log, lookup views) copy waiting entries in first when the
//! writer is free within [`READ_WAIT`] ([`LookupSpool::copy_in_if_free`]; a read does not wait
//! for an upload), and its writes to them (an LA acknowledging a notification) wait for the copy:
//! what a clinician was answered is what everyone reads (once an upload holding the writer has
//! committed). The webhook worker and SSE streams are woken when the log thread has copied a
//! batch in.
//!
//! A log left by an earlier version (`<database>-lookups`, a SQLite file) is copied in and
//! removed when the database is opened.

use super::{connect, fresh, SqliteStore};
use crate::sql::{history, outbox, Db, SqlTx};
use crate::{LookupTx, LookupView, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use cpis_domain::{Access, AccessKind, AuditEntry, NewNotification, NhsNumber};
use rusqlite::Connection;
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a read of what lookups write waits for the writer to copy logged lookups in first.
const READ_WAIT: Duration = Duration::from_millis(50);
/// Logged entries copied in per transaction.
const DRAIN_CHUNK: usize = 20_000;
/// Once the log's frames take this much, a drain that leaves entries waiting rewrites the file
/// with only those (when none wait, the log starts again from the file's start at once).
const REWRITE_AT: u64 = 64 << 20;
/// Bytes of zeros the log file is made of before frames are written over them, so that writing
/// a frame changes no file size (a size change makes `fdatasync` wait for the file system's
/// journal, which during an upload waits for the upload's own writes).
const PREALLOCATE: u64 = 8 << 20;
/// The page size the log is written in ([`write_pages`]).
const PAGE: u64 = 4096;
/// Frame header: body length and CRC-32, little-endian.
const HEADER: usize = 8;
/// A body longer than this is not a frame (a torn or foreign file).
const MAX_BODY: u32 = 256 << 20;

/// Entries written to a lookup log and copied in from one, since the process started.
static WRITTEN: AtomicU64 = AtomicU64::new(0);
static COPIED: AtomicU64 = AtomicU64::new(0);

/// Entries (an access, an audit entry, a notification each) this process has written to a lookup
/// log and copied in from one since it started: the difference is what waits (metrics).
pub fn lookup_spool_entries() -> (u64, u64) {
    (
        WRITTEN.load(Ordering::Relaxed),
        COPIED.load(Ordering::Relaxed),
    )
}

/// Entries the lookup log beside the SQLite database at `db` holds that the database has not
/// copied in (crash tests, operators): read without changing either file.
pub fn lookup_log_waiting(db: &Path) -> StoreResult<u64> {
    let through = drained_through(&mut connect(db)?)?;
    let (entries, _) = read_log(&log_path(db))?;
    Ok(entries.iter().filter(|(id, _)| *id > through).count() as u64)
}

/// One write of a logged lookup.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "write", rename_all = "kebab-case")]
enum Entry {
    Access(Access),
    Notification(NewNotification),
    Audit(AuditEntry),
}

/// A frame's body: a group's entries, numbered from `first`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Frame {
    first: i64,
    entries: Vec<Entry>,
}

/// The log as the owning process keeps it.
struct Owned {
    file: File,
    /// Where frames are written when the file system takes direct writes ([`Direct`]).
    direct: Option<Direct>,
    /// The bytes of the direct-write block `len` falls in, before `len` (what a frame written
    /// there must send again with it).
    tail: Vec<u8>,
    /// Bytes of whole frames at the file's start: where the next frame is written.
    len: u64,
    /// Entries not yet known to be copied in, oldest first (numbers consecutive). Shared with
    /// a drain's batch, so that taking one under the lock copies no entry.
    waiting: VecDeque<(i64, Arc<Entry>)>,
    /// The unscheduled accesses among them, by child.
    by_child: HashMap<NhsNumber, Vec<(i64, Access)>>,
    /// The number the next entry takes.
    next: i64,
}

enum State {
    /// Not opened yet (or given up after a failed write).
    Closed,
    /// Another process owns the log: this one writes lookups to the database.
    Elsewhere,
    Open(Owned),
}

pub(super) struct LookupSpool {
    path: PathBuf,
    /// The log's state. A logged group holds it from its start to its commit; a drain holds it
    /// while it takes entries and while it clears copied ones.
    state: Mutex<State>,
    /// Whether entries may be waiting (set when a group is logged, and at open when the file
    /// exists; cleared by a drain that found none).
    pending: AtomicBool,
}

/// The log file of the database at `db`.
fn log_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-lookup-log");
    PathBuf::from(name)
}

/// The SQLite spool file an earlier version kept beside the database at `db`.
fn legacy_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-lookups");
    PathBuf::from(name)
}

/// How far the database has copied the log (`lookup_spool_drained`).
fn drained_through(db: &mut dyn Db) -> StoreResult<i64> {
    db.row("SELECT through FROM lookup_spool_drained WHERE id = 1", &[])?
        .ok_or_else(|| StoreError::corrupt("lookup_spool_drained has no row"))?
        .get(0)
}

/// One entry written into the database, as the lookup that logged it would have.
fn copy_one(tx: &mut SqlTx<'_>, entry: &Entry) -> StoreResult<()> {
    match entry {
        Entry::Access(a) => tx.insert_access(a),
        Entry::Notification(n) => tx.insert_notification(n),
        Entry::Audit(e) => tx.append_audit(e),
    }
}

/// Records, in the copying transaction, the last entry it copied.
fn mark_copied(tx: &mut SqlTx<'_>, last: i64) -> StoreResult<()> {
    tx.db_mut()
        .exec(
            "UPDATE lookup_spool_drained SET through = $1 WHERE id = 1",
            &[&last],
        )
        .map(drop)
}

fn io(what: &str, e: std::io::Error) -> StoreError {
    StoreError::unavailable(format!("lookup log: {what}: {e}"))
}

/// One frame, header and body.
fn encode(first: i64, entries: &[Entry]) -> StoreResult<Vec<u8>> {
    #[derive(serde::Serialize)]
    struct FrameRef<'a> {
        first: i64,
        entries: &'a [Entry],
    }
    let json = serde_json::to_vec(&FrameRef { first, entries })
        .map_err(|e| StoreError::Backend(format!("lookup log entry: {e}")))?;
    let body = crate::deflate::deflate(&json).map_err(|e| io("deflate", e))?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|n| *n <= MAX_BODY)
        .ok_or_else(|| StoreError::Backend("lookup log frame too large".into()))?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The whole frames at the start of `log`, numbered, and how many bytes they take: reading
/// stops at the first frame cut short or whose CRC or numbering is wrong (so the zeros after the
/// last frame are not read).
fn decode_frames(mut log: impl Read) -> (Vec<(i64, Entry)>, u64) {
    let mut out: Vec<(i64, Entry)> = Vec::new();
    let mut at = 0u64;
    let mut header = [0u8; HEADER];
    while log.read_exact(&mut header).is_ok() {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_BODY {
            break;
        }
        let mut body = vec![0u8; len as usize];
        if log.read_exact(&mut body).is_err() || crc32fast::hash(&body) != crc {
            break;
        }
        let Ok(json) = crate::deflate::inflate(&body) else {
            break;
        };
        let Ok(frame) = serde_json::from_slice::<Frame>(&json) else {
            break;
        };
        if out.last().is_some_and(|(last, _)| frame.first <= *last) {
            break;
        }
        out.extend((frame.first..).zip(frame.entries));
        at += (HEADER + body.len()) as u64;
    }
    (out, at)
}

/// The log at `path` (nothing when there is no file).
fn read_log(path: &Path) -> StoreResult<(Vec<(i64, Entry)>, u64)> {
    match File::open(path) {
        Ok(f) => {
            let read = decode_frames(std::io::BufReader::new(&f));
            drop_cache(&f);
            Ok(read)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), 0)),
        Err(e) => Err(io("open", e)),
    }
}

/// Writes `bytes` at `at` in `file`, one page at most per write (not synced).
///
/// The kernel keeps a file's cached pages in folios whose size follows the writes and reads that
/// brought them in (up to megabytes on Linux 6.x ext4), and a write into a folio dirties all of
/// it: a 1 MiB write of zeros made each later frame written over it count (`write_bytes`) as
/// 1–2 MiB written, about 270 KB per lookup, although the disk was sent one page per frame.
/// Written a page at a time, and its cache dropped after every read of the whole log
/// ([`drop_cache`]), the log stays in page-sized folios: a frame costs the pages it touches.
fn write_pages(file: &File, bytes: &[u8], at: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        let pos = at + done as u64;
        let room = PAGE - (pos % PAGE);
        let n = (bytes.len() - done).min(room as usize);
        file.write_all_at(&bytes[done..done + n], pos)?;
        done += n;
    }
    Ok(())
}

/// Writes zeros over `from..to` of `file` (not synced), a page at a time ([`write_pages`]).
fn zero(file: &File, from: u64, to: u64) -> StoreResult<()> {
    let zeros = [0u8; PAGE as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(PAGE - (at % PAGE)) as usize;
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| io("zero", e))?;
        at += n as u64;
    }
    Ok(())
}

/// Drops the log's clean pages from the kernel's cache after the whole file was read (a read
/// ahead brings it in in large folios, which a frame written later would dirty whole: see
/// [`write_pages`]). Only advice: a failure changes no byte of the log.
fn drop_cache(file: &File) {
    if let Err(e) = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed) {
        tracing::debug!(error = %e, "lookup log: cache not dropped");
    }
}

/// The log opened for direct writes (`O_DIRECT`), where its file system takes them: a frame goes
/// to the disk as the few blocks it ends in (512 bytes each on most disks) instead of through the
/// page cache, which sends the whole 4 KiB page (or two) each frame touches at its `fdatasync`.
/// At 8 connections a group is about 4 lookups and its frame about 1.6 KB: about 2 KB sent per
/// frame instead of about 5 KB (BENCHMARKS.md, 2026-12-04 fifth session).
struct Direct {
    file: File,
    /// The offsets and lengths a direct write must be a multiple of.
    block: usize,
    /// The alignment of the memory a direct write is sent from.
    memory: usize,
}

impl Direct {
    /// `None` where the file system does not say it takes direct writes (`statx` DIOALIGN,
    /// Linux 6.1 and later), or only in blocks of a page or more (no gain).
    fn open(path: &Path, file: &File) -> Option<Direct> {
        use rustix::fs::{AtFlags, StatxFlags};
        let st = rustix::fs::statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN).ok()?;
        if st.stx_mask & StatxFlags::DIOALIGN.bits() == 0 {
            return None;
        }
        let block = usize::try_from(st.stx_dio_offset_align).ok()?;
        let memory = usize::try_from(st.stx_dio_mem_align).ok()?;
        if !block.is_power_of_two() || !memory.is_power_of_two() || block as u64 >= PAGE {
            return None;
        }
        let flags = i32::try_from(rustix::fs::OFlags::DIRECT.bits()).ok()?;
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(flags)
            .open(path)
            .ok()?;
        Some(Direct {
            file,
            block,
            memory,
        })
    }

    /// A zeroed buffer of `len` bytes (a multiple of the block) at the alignment direct writes
    /// need: the buffer and where the aligned bytes start in it.
    fn buffer(&self, len: usize) -> (Vec<u8>, usize) {
        let buf = vec![0u8; len + self.memory];
        let skip = buf.as_ptr().align_offset(self.memory);
        (buf, skip)
    }

    /// Writes `frame` at `at`, after `tail` (the bytes from the block `at` falls in up to `at`),
    /// padded with zeros to the block; the new tail in `tail` afterwards.
    fn append(&self, tail: &mut Vec<u8>, frame: &[u8], at: u64) -> std::io::Result<()> {
        let start = at - tail.len() as u64;
        let used = tail.len() + frame.len();
        let len = used.div_ceil(self.block) * self.block;
        let (mut buf, skip) = self.buffer(len);
        let blocks = &mut buf[skip..skip + len];
        blocks[..tail.len()].copy_from_slice(tail);
        blocks[tail.len()..used].copy_from_slice(frame);
        self.file.write_all_at(blocks, start)?;
        let whole = used - used % self.block;
        *tail = blocks[whole..used].to_vec();
        Ok(())
    }

    /// Writes zeros over the blocks of `0..to`.
    fn zero(&self, to: u64) -> std::io::Result<()> {
        let chunk = 64 << 10;
        let (buf, skip) = self.buffer(chunk);
        let zeros = &buf[skip..skip + chunk];
        let to = to.div_ceil(self.block as u64) * self.block as u64;
        let mut at = 0;
        while at < to {
            let n = (to - at).min(chunk as u64) as usize;
            self.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    /// The log at `path` (open as `file`, whose frames take `len` bytes) for direct writes where
    /// its file system takes them, with the tail a frame written at `len` sends again.
    fn for_log(path: &Path, file: &File, len: u64) -> StoreResult<(Option<Direct>, Vec<u8>)> {
        let Some(direct) = Direct::open(path, file) else {
            return Ok((None, Vec::new()));
        };
        let n = len % direct.block as u64;
        let mut tail = vec![0u8; n as usize];
        file.read_exact_at(&mut tail, len - n)
            .map_err(|e| io("read", e))?;
        Ok((Some(direct), tail))
    }
}

/// Makes a rename or a new file in the log's directory durable.
fn sync_dir(path: &Path) -> StoreResult<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync directory", e))
}

impl Owned {
    /// Writes `frame` at `len` (not synced): directly where the file system takes it, through
    /// the page cache otherwise, or when a direct write is refused as unaligned (`EINVAL`, before
    /// anything is written), from then on.
    fn append(&mut self, frame: &[u8]) -> std::io::Result<()> {
        if let Some(direct) = &self.direct {
            match direct.append(&mut self.tail, frame, self.len) {
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                    tracing::warn!(error = %e, "lookup log: direct writes refused; writing through the page cache");
                    self.direct = None;
                    self.tail.clear();
                }
                done => return done,
            }
        }
        write_pages(&self.file, frame, self.len)
    }

    fn push(&mut self, id: i64, entry: Entry) {
        if let Entry::Access(a) = &entry {
            if a.kind == AccessKind::Unscheduled {
                let logged = outbox::as_logged(a);
                self.by_child
                    .entry(a.nhs_number)
                    .or_default()
                    .push((id, logged));
            }
        }
        self.waiting.push_back((id, Arc::new(entry)));
        self.next = id + 1;
    }

    /// Forgets the entries the database holds (`through` and before).
    fn forget_through(&mut self, through: i64) {
        while self.waiting.front().is_some_and(|(id, _)| *id <= through) {
            let Some((id, entry)) = self.waiting.pop_front() else {
                break;
            };
            if let Entry::Access(a) = &*entry {
                if let Some(list) = self.by_child.get_mut(&a.nhs_number) {
                    list.retain(|(n, _)| *n > id);
                    if list.is_empty() {
                        self.by_child.remove(&a.nhs_number);
                    }
                }
            }
        }
    }

    /// Starts the log again from the file's start when no entry waits (zeroing what the frames
    /// held: the database has them, and no child's details are left in the log), or rewrites it
    /// with only the waiting entries once it is long.
    fn compact(&mut self, path: &Path, rewrite_at: u64) -> StoreResult<()> {
        if self.waiting.is_empty() {
            if self.len > 0 {
                // Not synced: should the zeros be lost in a crash, the frames come back holding
                // only entries the database has (skipped by number).
                match &self.direct {
                    Some(direct) => direct.zero(self.len).map_err(|e| io("zero", e))?,
                    None => zero(&self.file, 0, self.len)?,
                }
                self.len = 0;
                self.tail.clear();
            }
            return Ok(());
        }
        if self.len < rewrite_at {
            return Ok(());
        }
        let first = self.waiting.front().map_or(self.next, |(id, _)| *id);
        let entries: Vec<Entry> = self.waiting.iter().map(|(_, e)| Entry::clone(e)).collect();
        let frame = encode(first, &entries)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        // A rewrite a crash interrupted left its file: it was never the log.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", e)),
        }
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&tmp)
            .map_err(|e| io("create", e))?;
        write_pages(&file, &frame, 0).map_err(|e| io("write", e))?;
        zero(&file, frame.len() as u64, PREALLOCATE)?;
        file.sync_all().map_err(|e| io("sync", e))?;
        file.try_lock().map_err(|e| io("lock", e.into()))?;
        std::fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
        sync_dir(path)?;
        drop_cache(&file);
        self.len = frame.len() as u64;
        (self.direct, self.tail) = Direct::for_log(path, &file, self.len)?;
        self.file = file;
        Ok(())
    }
}

impl From<std::fs::TryLockError> for StoreError {
    fn from(e: std::fs::TryLockError) -> Self {
        StoreError::unavailable(format!("lookup log: lock: {e}"))
    }
}

impl LookupSpool {
    pub(super) fn new(db: &Path) -> Self {
        let path = log_path(db);
        let pending = AtomicBool::new(path.exists() || legacy_path(db).exists());
        LookupSpool {
            path,
            state: Mutex::new(State::Closed),
            pending,
        }
    }

    /// Gives up owning the log (after the copy-in at open: a command that opened the database
    /// must not keep a server started beside it from logging). The next use opens it again.
    pub(super) fn release(&self) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = State::Closed;
    }

    /// Opens the log, if this process may own it and has not yet.
    pub(super) fn prepare(&self, store: &SqliteStore) -> StoreResult<()> {
        self.lock(store).map(drop)
    }

    pub(super) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// The log's state, opening it at first use: this process owns the log when it can lock the
    /// file; it then reads the entries the database has not copied in (up to a torn last frame,
    /// which the next frame is written over). Entry numbers never go back below what the
    /// database has copied.
    fn lock(&self, store: &SqliteStore) -> StoreResult<MutexGuard<'_, State>> {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(*guard, State::Open(_)) {
            *guard = self.open(store)?;
        }
        Ok(guard)
    }

    fn open(&self, store: &SqliteStore) -> StoreResult<State> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| io("open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(State::Elsewhere),
            Err(e) => return Err(e.into()),
        }
        // What follows the whole frames (zeros, a frame never acknowledged because the process
        // died writing it, frames of an earlier pass already copied in) is written over.
        let (entries, len) = decode_frames(std::io::BufReader::new(&file));
        let size = file.metadata().map_err(|e| io("stat", e))?.len();
        if size < PREALLOCATE {
            zero(&file, size, PREALLOCATE)?;
            file.sync_all().map_err(|e| io("sync", e))?;
        }
        drop_cache(&file);
        let through = store.read_now(drained_through)?;
        let (direct, tail) = Direct::for_log(&self.path, &file, len)?;
        let mut owned = Owned {
            file,
            direct,
            tail,
            len,
            waiting: VecDeque::new(),
            by_child: HashMap::new(),
            next: through + 1,
        };
        for (id, entry) in entries {
            if id > through {
                owned.push(id, entry);
            }
        }
        owned.next = owned.next.max(through + 1);
        Ok(State::Open(owned))
    }

    /// No entry waits: lookups may use the database again. Called under the log's lock, which a
    /// logging group holds until it has set `pending` again, so no entry is left unseen.
    fn found_empty(&self) {
        self.pending.store(false, Ordering::Release);
    }

    /// A lookup group written to the log, reading the database in a snapshot; `None` when
    /// another process owns the log.
    pub(super) fn begin<'a>(&'a self, store: &'a SqliteStore) -> StoreResult<Option<SpoolTx<'a>>> {
        // The log first, then the snapshot: a drain forgets copied entries only under the log's
        // lock, so every entry this snapshot has not copied is still in the log.
        let state = self.lock(store)?;
        if !matches!(*state, State::Open(_)) {
            return Ok(None);
        }
        // Dropped on an error below, it gives the reader back.
        let mut tx = SpoolTx {
            owner: self,
            store,
            state,
            reader: Some(store.checkout_reader()?),
            through: 0,
            written: Vec::new(),
        };
        tx.reader().batch("BEGIN")?;
        tx.through = drained_through(tx.reader())?;
        Ok(Some(tx))
    }

    /// Copies in all that waits when this process owns the log (its store is being dropped: a
    /// server stopped cleanly leaves nothing waiting). A command beside a server leaves the
    /// server's entries to it; a failure leaves them to the next open.
    pub(super) fn flush_owned(&self, store: &SqliteStore) {
        let owned = matches!(
            *self.state.lock().unwrap_or_else(PoisonError::into_inner),
            State::Open(_)
        );
        if !owned {
            return;
        }
        loop {
            match self.drain(store) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "logged lookups not copied in at close; the next start will");
                    break;
                }
            }
        }
    }

    /// Copies in what waits if the writer is free within [`READ_WAIT`] (the log thread's copies
    /// take milliseconds; an upload holds the writer for seconds, and a read does not wait for
    /// that: it reads what the database has). A failure is left to the log thread, which
    /// retries.
    pub(super) fn copy_in_if_free(&self, store: &SqliteStore) {
        if !self.is_pending() {
            return;
        }
        let Some(writer) = store.writer_within(READ_WAIT) else {
            return;
        };
        if let Err(e) = self.copy_in(store, writer) {
            tracing::debug!(error = %e, "logged lookups not copied in before a read");
        }
    }

    /// Copies up to [`DRAIN_CHUNK`] waiting entries into the database in one transaction: how
    /// many (0 when none waited). Waits for the writer.
    pub(super) fn drain(&self, store: &SqliteStore) -> StoreResult<u64> {
        if !self.is_pending() {
            return Ok(0);
        }
        if self.drain_legacy(store)? > 0 {
            return Ok(1);
        }
        // A first look without the writer (a command opening the database beside a server that
        // is uploading must not wait for it when nothing is logged). The snapshot's mark is at
        // most behind the writer's, so "nothing after it" is the writer's answer too.
        {
            let through = store.read_now(drained_through)?;
            let mut state = self.lock(store)?;
            if self.take(&mut state, through, 1)?.is_empty() {
                if let State::Open(owned) = &mut *state {
                    owned.compact(&self.path, REWRITE_AT)?;
                }
                self.found_empty();
                return Ok(0);
            }
        }
        self.copy_in(
            store,
            fresh(store.writer.lock().unwrap_or_else(PoisonError::into_inner)),
        )
    }

    /// [`Self::drain`]'s copy, on the writer.
    fn copy_in(
        &self,
        store: &SqliteStore,
        mut writer: MutexGuard<'_, Connection>,
    ) -> StoreResult<u64> {
        writer.begin()?;
        let mut tx = SqlTx::new(Box::new(writer));
        let through = drained_through(tx.db_mut())?;
        let batch = {
            let mut state = self.lock(store)?;
            self.take(&mut state, through, DRAIN_CHUNK)?
        };
        let Some(last) = batch.last().map(|(id, _)| *id) else {
            return Ok(0);
        };
        for (_, entry) in &batch {
            copy_one(&mut tx, entry)?;
        }
        mark_copied(&mut tx, last)?;
        Box::new(tx).commit()?;
        {
            let mut state = self.lock(store)?;
            if let State::Open(owned) = &mut *state {
                owned.forget_through(last);
                owned.compact(&self.path, REWRITE_AT)?;
            }
        }
        let copied = batch.len() as u64;
        COPIED.fetch_add(copied, Ordering::Relaxed);
        Ok(copied)
    }

    /// Up to `limit` entries after `through` (the database's mark), in order: the owner's from
    /// memory (forgetting those the database holds), another process's read from the file.
    fn take(
        &self,
        state: &mut State,
        through: i64,
        limit: usize,
    ) -> StoreResult<Vec<(i64, Arc<Entry>)>> {
        Ok(match state {
            State::Open(owned) => {
                owned.forget_through(through);
                owned.waiting.iter().take(limit).cloned().collect()
            }
            State::Elsewhere | State::Closed => read_log(&self.path)?
                .0
                .into_iter()
                .filter(|(id, _)| *id > through)
                .take(limit)
                .map(|(id, e)| (id, Arc::new(e)))
                .collect(),
        })
    }

    /// Copies in and removes a SQLite spool an earlier version left (entries after the
    /// database's mark): 1 when there was one.
    fn drain_legacy(&self, store: &SqliteStore) -> StoreResult<u64> {
        let legacy = legacy_path(&store.path);
        if !legacy.exists() {
            return Ok(0);
        }
        let spool = connect(&legacy)?;
        let has_table: i64 = spool.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'spooled'",
            [],
            |r| r.get(0),
        )?;
        let mut writer = fresh(store.writer.lock().unwrap_or_else(PoisonError::into_inner));
        writer.begin()?;
        let mut tx = SqlTx::new(Box::new(writer));
        let through = drained_through(tx.db_mut())?;
        let mut last = through;
        if has_table > 0 {
            let mut st =
                spool.prepare("SELECT id, entry FROM spooled WHERE id > ?1 ORDER BY id")?;
            let rows = st
                .query_map([through], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            for (id, text) in rows {
                let entry: Entry = serde_json::from_str(&text)
                    .map_err(|e| StoreError::corrupt(format!("lookup spool entry: {e}")))?;
                copy_one(&mut tx, &entry)?;
                last = id;
            }
        }
        mark_copied(&mut tx, last)?;
        Box::new(tx).commit()?;
        drop(spool);
        for suffix in ["", "-wal", "-shm"] {
            let mut name = legacy.as_os_str().to_owned();
            name.push(suffix);
            match std::fs::remove_file(PathBuf::from(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove the earlier spool", e)),
            }
        }
        tracing::info!("the lookup spool of an earlier version was copied in and removed");
        Ok(1)
    }
}

/// A lookup group whose writes go to the log (see the module's text).
pub(super) struct SpoolTx<'a> {
    owner: &'a LookupSpool,
    store: &'a SqliteStore,
    state: MutexGuard<'a, State>,
    /// A reader inside a read transaction: the database as of the group's start.
    reader: Option<Connection>,
    /// The last log entry the snapshot holds.
    through: i64,
    written: Vec<Entry>,
}

impl SpoolTx<'_> {
    fn reader(&mut self) -> &mut Connection {
        #[allow(clippy::expect_used, reason = "the reader is only taken back on drop")]
        self.reader.as_mut().expect("a logged group's reader")
    }

    /// The child's unscheduled accesses logged and not yet copied in, this group's own
    /// included, oldest first.
    fn logged_accesses(&self, nhs: NhsNumber) -> Vec<Access> {
        let mut out = Vec::new();
        if let State::Open(owned) = &*self.state {
            if let Some(list) = owned.by_child.get(&nhs) {
                out.extend(
                    list.iter()
                        .filter(|(id, _)| *id > self.through)
                        .map(|(_, a)| a.clone()),
                );
            }
        }
        out.extend(self.written.iter().filter_map(|e| match e {
            Entry::Access(a) if a.nhs_number == nhs && a.kind == AccessKind::Unscheduled => {
                Some(outbox::as_logged(a))
            }
            _ => None,
        }));
        out
    }
}

impl Drop for SpoolTx<'_> {
    fn drop(&mut self) {
        if let Some(mut reader) = self.reader.take() {
            reader.rollback();
            self.store.checkin_reader(reader);
        }
    }
}

impl LookupTx for SpoolTx<'_> {
    /// From the group's snapshot (the log's accesses come after it).
    fn view(
        &mut self,
        nhs: NhsNumber,
        limit: usize,
        now: DateTime<Utc>,
    ) -> StoreResult<LookupView> {
        let store = self.store;
        history::lookup_view_counted(self.reader(), nhs, limit, |db, through| {
            store.attendance.tally(db, nhs, through, now)
        })
    }

    /// The database's (as of the group's snapshot), then the log's.
    fn unscheduled_after(&mut self, nhs: NhsNumber, through: i64) -> StoreResult<Vec<Access>> {
        let mut out = history::unscheduled_after(self.reader(), nhs, through)?;
        out.extend(self.logged_accesses(nhs));
        Ok(out)
    }

    fn insert_access(&mut self, access: &Access) -> StoreResult<()> {
        self.written.push(Entry::Access(access.clone()));
        Ok(())
    }

    fn insert_notification(&mut self, n: &NewNotification) -> StoreResult<()> {
        self.written.push(Entry::Notification(n.clone()));
        Ok(())
    }

    fn append_audit(&mut self, entry: &AuditEntry) -> StoreResult<()> {
        self.written.push(Entry::Audit(entry.clone()));
        Ok(())
    }

    fn writes_tables(&self) -> bool {
        false
    }

    /// Durable in the log (one frame, `fdatasync`) before it returns. A failed write is cut off
    /// the file again; if even that fails, this process stops logging lookups.
    fn commit(mut self: Box<Self>) -> StoreResult<()> {
        let written = std::mem::take(&mut self.written);
        let State::Open(owned) = &mut *self.state else {
            return Err(StoreError::Backend("the lookup log is not open".into()));
        };
        if written.is_empty() {
            return Ok(());
        }
        let first = owned.next;
        let frame = encode(first, &written)?;
        let appended = owned.append(&frame).and_then(|()| owned.file.sync_data());
        if let Err(e) = appended {
            // What reached the file is unknown: the log is read again at its next use.
            *self.state = State::Closed;
            return Err(io("append", e));
        }
        owned.len += frame.len() as u64;
        let n = written.len() as u64;
        for (id, entry) in (first..).zip(written) {
            owned.push(id, entry);
        }
        WRITTEN.fetch_add(n, Ordering::Relaxed);
        self.owner.pending.store(true, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// A server killed while creating the log file, or before writing a whole frame, left
    /// nothing acknowledged: the next store opens, finds nothing waiting, and lookups use the
    /// database again.
    #[test]
    fn a_log_cut_short_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cpis.db");
        drop(SqliteStore::open(&db).unwrap());
        std::fs::write(log_path(&db), [7, 0, 0]).unwrap();
        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(Store::drain_lookup_spool(&store).unwrap(), 0);
        assert!(!store.spool.is_pending());
        let tx = Store::begin_lookups(&store).unwrap();
        tx.commit().unwrap();
    }

    fn audit(action: &str) -> AuditEntry {
        AuditEntry::new(
            DateTime::<Utc>::UNIX_EPOCH,
            cpis_domain::AuditActor::anonymous(),
            action.to_owned(),
            None,
        )
    }

    /// Groups of audit entries (their actions) logged while the writer is held, as behind an
    /// upload: one frame a group.
    fn log_while_busy(store: &SqliteStore, groups: &[&[&str]]) {
        let _upload = store.writer.lock().unwrap();
        for group in groups {
            let mut tx = Store::begin_lookups(store).unwrap();
            for action in *group {
                tx.append_audit(&audit(action)).unwrap();
            }
            tx.commit().unwrap();
        }
    }

    /// The store as a killed process leaves it: what its log holds stays there (dropping a
    /// store copies it in).
    fn kill(store: SqliteStore) {
        store.spool.release();
        drop(store);
    }

    /// Lookups go to the log even with the writer free, and a store dropped (a server
    /// stopped) copies in what waits and zeroes the frames: nothing waits, and no child's
    /// details are left in the file.
    #[test]
    fn a_dropped_store_copies_in_what_its_log_holds() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cpis.db");
        let store = SqliteStore::open(&db).unwrap();
        let mut tx = Store::begin_lookups(&store).unwrap();
        tx.append_audit(&audit("lookup.at-rest")).unwrap();
        tx.commit().unwrap();
        assert_eq!(lookup_log_waiting(&db).unwrap(), 1);
        let (_, end) = read_log(&log_path(&db)).unwrap();
        assert!(end > 0);
        drop(store);
        assert_eq!(lookup_log_waiting(&db).unwrap(), 0);
        let bytes = std::fs::read(log_path(&db)).unwrap();
        assert!(bytes[..end as usize].iter().all(|b| *b == 0));
        assert_eq!(
            audited(&SqliteStore::open(&db).unwrap(), "lookup.at-rest"),
            1
        );
    }

    /// The audit entries with actions starting `prefix`.
    fn audited(store: &SqliteStore, prefix: &str) -> usize {
        Store::audit_search(
            store,
            &crate::AuditQuery {
                action_prefix: Some(prefix.to_owned()),
                limit: 1_000,
                ..Default::default()
            },
        )
        .unwrap()
        .len()
    }

    /// Bytes this thread has caused to be written (`/proc/thread-self/io`); `None` where the
    /// kernel does not say.
    fn thread_write_bytes() -> Option<u64> {
        let io = std::fs::read_to_string("/proc/thread-self/io").ok()?;
        io.lines()
            .find_map(|l| l.strip_prefix("write_bytes: "))?
            .trim()
            .parse()
            .ok()
    }

    /// A logged group dirties the pages its frame touches, not the large folio the kernel would
    /// keep a megabyte of preallocated zeros in (each small frame counted as 1–2 MiB written).
    #[test]
    fn a_logged_frame_dirties_only_the_pages_it_touches() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cpis.db");
        let store = SqliteStore::open(&db).unwrap();
        // The first group opens (and preallocates) the log.
        log_while_busy(&store, &[&["lookup.first"]]);
        let Some(before) = thread_write_bytes() else {
            eprintln!("no /proc/thread-self/io: not measured");
            return;
        };
        let groups: Vec<&[&str]> = vec![&["lookup.small"]; 50];
        log_while_busy(&store, &groups);
        let per_frame = (thread_write_bytes().unwrap() - before) / 50;
        assert!(
            per_frame <= 2 * PAGE,
            "{per_frame} bytes written per frame of one audit entry"
        );
        // Written directly where the file system takes it: the blocks a frame ends in, not the
        // page.
        if matches!(&*store.spool.lock(&store).unwrap(), State::Open(o) if o.direct.is_some()) {
            assert!(
                per_frame < PAGE,
                "{per_frame} bytes per frame written directly"
            );
        }
    }

    /// Frames of many sizes, written one after another into shared blocks (direct writes send
    /// the block a frame starts in again, with the bytes before it), read back whole and in order
    /// by the next process, and copied in once.
    #[test]
    fn frames_sharing_blocks_are_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cpis.db");
        let store = SqliteStore::open(&db).unwrap();
        let actions: Vec<String> = (0..300)
            .map(|i| format!("lookup.frame-{i}-{}", "x".repeat(i * 7 % 900)))
            .collect();
        let groups: Vec<Vec<&str>> = actions.iter().map(|a| vec![a.as_str()]).collect();
        let groups: Vec<&[&str]> = groups.iter().map(Vec::as_slice).collect();
        log_while_busy(&store, &groups);
        kill(store);
        let (logged, _) = read_log(&log_path(&db)).unwrap();
        let read: Vec<String> = logged
            .iter()
            .map(|(_, e)| match e {
                Entry::Audit(a) => a.action.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(read, actions);
        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(audited(&store, "lookup.frame-"), 300);
        assert_eq!(lookup_log_waiting(&db).unwrap(), 0);
    }

    /// Lookups logged while the writer was busy survive the process that logged them (killed
    /// before copying them in, in the middle of writing a further frame): the next store copies
    /// them in when it opens, once, and cuts the log back to nothing.
    #[test]
    fn logged_lookups_survive_the_process_and_are_copied_in_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cpis.db");
        let store = SqliteStore::open(&db).unwrap();
        log_while_busy(&store, &[&["lookup.logged-1", "lookup.logged-2"]]);
        assert!(store.spool.is_pending());
        // Killed: nothing copied in, and half a frame written after the acknowledged one.
        kill(store);
        let (logged, end) = read_log(&log_path(&db)).unwrap();
        assert_eq!(logged.len(), 2);
        let log = OpenOptions::new().write(true).open(log_path(&db)).unwrap();
        log.write_all_at(
            &encode(99, &[Entry::Audit(audit("lookup.torn"))]).unwrap()[..20],
            end,
        )
        .unwrap();
        drop(log);
        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(audited(&store, "lookup.logged-"), 2);
        assert_eq!(audited(&store, "lookup.torn"), 0);
        // Nothing of the copied entries is left in the log: its frames were zeroed.
        let bytes = std::fs::read(log_path(&db)).unwrap();
        assert!(bytes.len() as u64 >= PREALLOCATE);
        assert!(bytes[..end as usize].iter().all(|b| *b == 0));
        drop(store);
        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(audited(&store, "lookup.logged-"), 2);
        assert_eq!(lookup_log_waiting(&db).unwrap(), 0);
    }

    /// A long log whose first frames are copied in is rewritten with only the entries still
    /// waiting, under the same numbers; a store opening it copies those in, once.
    #[test]
    fn a_long_log_is_rewritten_with_only_what_waits() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cpis.db");
        let store = SqliteStore::open(&db).unwrap();
        log_while_busy(
            &store,
            &[
                &["lookup.frame-0"],
                &["lookup.frame-1"],
                &["lookup.frame-2"],
            ],
        );
        let (_, before) = read_log(&log_path(&db)).unwrap();
        // The first frame copied in (as a drain racing the next group would leave it), then the
        // log cut back as if it were long.
        let mut state = store.spool.lock(&store).unwrap();
        let State::Open(owned) = &mut *state else {
            panic!("this store owns the log")
        };
        let first = owned.waiting.front().unwrap().0;
        owned.forget_through(first);
        owned.compact(&store.spool.path, 0).unwrap();
        assert_eq!(owned.waiting.len(), 2);
        drop(state);
        let (entries, len) = read_log(&log_path(&db)).unwrap();
        assert_eq!(
            entries.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [first + 1, first + 2]
        );
        assert!(len < before, "{len} < {before}");
        // The database never had the first: a crash now loses it (it was copied in, in the test's
        // fiction); the other two are copied in by the next store, once.
        kill(store);
        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(audited(&store, "lookup.frame-"), 2);
        drop(store);
        assert_eq!(
            audited(&SqliteStore::open(&db).unwrap(), "lookup.frame-"),
            2
        );
    }

    /// The SQLite spool an earlier version left beside the database is copied in (entries after
    /// the database's mark) and removed when the database opens.
    #[test]
    fn an_earlier_versions_spool_is_copied_in_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cpis.db");
        drop(SqliteStore::open(&db).unwrap());
        let legacy = connect(&legacy_path(&db)).unwrap();
        legacy
            .execute_batch(
                "CREATE TABLE spooled (id INTEGER PRIMARY KEY AUTOINCREMENT, nhs_number TEXT,
                                       entry TEXT NOT NULL);",
            )
            .unwrap();
        let text = serde_json::to_string(&Entry::Audit(audit("lookup.from-spool"))).unwrap();
        legacy
            .execute(
                "INSERT INTO spooled (nhs_number, entry) VALUES (NULL, ?1)",
                [text],
            )
            .unwrap();
        drop(legacy);
        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(audited(&store, "lookup.from-spool"), 1);
        assert!(!legacy_path(&db).exists());
        drop(store);
        assert_eq!(
            audited(&SqliteStore::open(&db).unwrap(), "lookup.from-spool"),
            1
        );
    }

    /// Frames read back as written; reading stops at a frame whose CRC does not match, and at
    /// one cut short.
    #[test]
    fn frames_round_trip_and_a_damaged_one_ends_the_log() {
        let audit = |action: &str| Entry::Audit(audit(action));
        let one = encode(5, &[audit("a"), audit("b")]).unwrap();
        let two = encode(7, &[audit("c")]).unwrap();
        let both = [one.clone(), two.clone()].concat();
        let (entries, len) = decode_frames(&both[..]);
        assert_eq!(
            entries.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [5, 6, 7]
        );
        assert_eq!(len, both.len() as u64);
        let mut damaged = both.clone();
        let last = damaged.len() - 2;
        damaged[last] ^= 1;
        assert_eq!(decode_frames(&damaged[..]).1, one.len() as u64);
        assert_eq!(decode_frames(&both[..both.len() - 1]).1, one.len() as u64);
        // Numbers that go back are not this log's.
        let again = [one.clone(), encode(6, &[audit("d")]).unwrap()].concat();
        assert_eq!(decode_frames(&again[..]).1, one.len() as u64);
    }
}
