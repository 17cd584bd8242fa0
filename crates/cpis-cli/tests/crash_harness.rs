//! Crash harness: the real `cpis serve` is killed with SIGKILL at random points while notifying
//! lookups, an upload and webhook deliveries are in flight, restarted, and the database is checked
//! after every kill:
//!
//! * no acknowledged write is lost: every lookup answered 200 has its access, its audit entry and
//!   one notification per LA it showed; every upload answered 201/200 is applied whole;
//! * no upload is half-applied: for every file either its report and all its records exist, or
//!   none of them; no upload is left `processing`; an unacknowledged upload sent again is answered
//!   200 (already applied) or 201 (applied now) accordingly;
//! * the database passes `PRAGMA integrity_check` and the audit chain verifies (`cpis audit
//!   verify`, which opens the store and so copies in what the killed server had spooled);
//! * at the end, after one clean restart, the test's webhook receiver (which checks every
//!   signature and de-duplicates on `CPIS-Notification-Id`) has accepted every Coventry
//!   notification exactly once, and nothing else; duplicates on the wire are counted, not accepted.
//!
//! Unacknowledged uploads are sent again in later cycles (and once more in the clean run), as an
//! LA would: the answer must be 200 (already applied: the first report) or 201 (applied now),
//! matching what the database showed.
//!
//! `CPIS_CRASH_CYCLES` (default 200) sets the number of kill cycles, `CPIS_CRASH_SEED` the seed.
//! Each cycle takes ~0.2 s; the clean run then takes about a minute, because deliveries a killed
//! server had claimed stay leased to it for 60 s (`cpis_core::delivery`) before they are retried.

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const COVENTRY: &str = "E08000026";
/// An emergency-department clinician (cpis:view-notify): every lookup that finds a child notifies.
const ED_TOKEN: &str = "demo-RDEMO01";
/// The child both Coventry and Westminster hold.
const SHARED_CHILD: &str = "9990597634";
const HEADER: &str = "action,nhs_number,local_id,given_name,family_name,date_of_birth,plan_type,start_date,end_date,expected_delivery_date,sensitive";
/// Fresh (child, LA) records per cycle's upload.
const FRESH_ROWS: usize = 3;
/// LAs whose demo systems upload the fresh records, in order (each can take every spare child).
const UPLOADERS: [&str; 4] = [COVENTRY, "E09000033", "E08000025", "E06000001"];
/// How long the final, clean run may take to deliver every notification. A delivery claimed by a
/// server that was then killed is leased for 60 s before another attempt, so this is lease + slack.
const DRAIN_LIMIT: Duration = Duration::from_secs(150);

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn cpis(db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cpis"));
    c.arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .env_remove("CPIS_CONFIG")
        .env_remove("CPIS_LOG")
        .env_remove("CPIS_BIND")
        .env_remove("CPIS_DATABASE_URL")
        .env_remove("CPIS_READ_DATABASE_URL")
        .env_remove("RUST_LOG");
    c
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// A strict HTTP/1.1 client: a reply only counts if it arrived whole.

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

fn incomplete(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what.to_owned())
}

/// One request over a fresh connection (`Connection: close`). The body is written in `pieces`
/// parts with `pause` between them (a slow client). `Ok` only for a complete response: the whole
/// head, and exactly `Content-Length` bytes or a terminated chunked body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    pieces: usize,
    pause: Duration,
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    let step = body.len().div_ceil(pieces.max(1)).max(1);
    for (i, part) in body.chunks(step).enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        s.write_all(part)?;
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| incomplete("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let rest = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| incomplete("bad status line"))?;
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let eol = rest[at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| incomplete("chunk size"))?;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[at..at + eol])
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim(),
                16,
            )
            .map_err(|_| incomplete("chunk size"))?;
            at += eol + 2;
            if size == 0 {
                break;
            }
            if rest.len() < at + size {
                return Err(incomplete("chunk"));
            }
            out.extend_from_slice(&rest[at..at + size]);
            at += size + 2;
        }
        out
    } else {
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| incomplete("no content-length"))?;
        if rest.len() != len {
            return Err(incomplete("short body"));
        }
        rest.to_vec()
    };
    Ok(Reply { status, body })
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Reply> {
    http(port, "GET", path, headers, b"", 1, Duration::ZERO)
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver.

#[derive(Default)]
struct Received {
    /// Distinct notification ids accepted (answered 2xx the first time they were processed).
    accepted: HashSet<String>,
    /// Requests for an id already accepted: recognised and not counted again.
    duplicates: u64,
    /// Requests answered 500 on purpose (before accepting).
    refused: u64,
    /// Requests accepted, then the connection dropped without an answer (the sender retries).
    dropped: u64,
    /// Anything wrong with a request: bad signature, id mismatch, unreadable body.
    errors: Vec<String>,
}

struct Receiver {
    port: u16,
    state: Arc<Mutex<Received>>,
    /// A webhook request is being read or answered.
    busy: Arc<AtomicBool>,
}

impl Receiver {
    fn bind() -> (Receiver, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        (
            Receiver {
                port,
                state: Arc::default(),
                busy: Arc::default(),
            },
            listener,
        )
    }

    fn start(&self, listener: TcpListener, secret: String, seed: u64) {
        let (state, busy) = (self.state.clone(), self.busy.clone());
        std::thread::Builder::new()
            .name("webhook-receiver".into())
            .spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed);
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { continue };
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let roll: f64 = rng.gen();
                    busy.store(true, Ordering::SeqCst);
                    // An error: the sender went away mid-request (killed); nothing was accepted.
                    let _ = receive(&mut conn, &secret, roll, &state);
                    busy.store(false, Ordering::SeqCst);
                }
            })
            .unwrap();
    }

    fn snapshot<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

/// Handles one webhook request. `roll` (0..1) decides misbehaviour: < 0.04 answer 500 without
/// accepting; < 0.06 accept, then drop the connection without answering.
fn receive(
    conn: &mut TcpStream,
    secret: &str,
    roll: f64,
    state: &Mutex<Received>,
) -> std::io::Result<()> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Err(incomplete("request head"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[split + 4..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Err(incomplete("request body"));
        }
        body.extend_from_slice(&buf[..n]);
    }
    let answer = |conn: &mut TcpStream, status: &str| {
        conn.write_all(
            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    let signature = header("cpis-signature").unwrap_or_default();
    let id = header("cpis-notification-id").unwrap_or_default();
    if let Err(e) = cpis_core::delivery::verify(
        secret,
        &signature,
        &body,
        chrono::Utc::now(),
        chrono::Duration::minutes(5),
    ) {
        state
            .lock()
            .unwrap()
            .errors
            .push(format!("notification {id}: signature {e}"));
        return answer(conn, "401 Unauthorized");
    }
    let body_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned));
    if body_id.as_deref() != Some(id.as_str()) || id.is_empty() {
        state.lock().unwrap().errors.push(format!(
            "CPIS-Notification-Id {id:?} does not match the body's id {body_id:?}"
        ));
        return answer(conn, "400 Bad Request");
    }
    // A receiver does some work before answering (and kills can land meanwhile).
    std::thread::sleep(Duration::from_millis(1));
    if roll < 0.04 {
        state.lock().unwrap().refused += 1;
        return answer(conn, "500 Internal Server Error");
    }
    {
        let mut s = state.lock().unwrap();
        if !s.accepted.insert(id) {
            s.duplicates += 1;
        }
        if roll < 0.06 {
            s.dropped += 1;
            return Ok(()); // accepted, but the sender never hears so: it must send again
        }
    }
    answer(conn, "200 OK")
}

// ---------------------------------------------------------------------------------------------
// Work done in a cycle and what the clients saw.

/// A lookup answered 200 (complete response).
#[derive(Clone)]
struct AckedLookup {
    cycle: usize,
    trace: String,
    nhs: String,
    /// The LAs whose CareTeams it showed: each must have been notified, once.
    las: Vec<String>,
}

struct UploadJob {
    cycle: usize,
    file_id: String,
    la: &'static str,
    body: Arc<Vec<u8>>,
    fresh: Vec<String>,
    rows: usize,
    /// The (status, upload id) of the complete 201/200 answer, once there is one.
    acked: Option<(u16, String)>,
    /// Whether the database held it applied at the last check.
    applied: bool,
    attempts: usize,
}

#[derive(Default)]
struct Tally {
    lookups_sent: u64,
    lookups_acked: u64,
    lookups_acked_coventry: u64,
    lookups_unacked: u64,
    misses_acked: u64,
    uploads_sent: u64,
    uploads_acked: u64,
    uploads_retried: u64,
    replays: u64,
    kills_with_requests_in_flight: u64,
    lookups_in_flight_at_kills: u64,
    kills_during_delivery: u64,
    kills_during_upload: u64,
    /// Spool entries (lookups answered while an upload held the writer) the killed server left
    /// for the next open to copy in.
    spooled_at_kills: u64,
    unexpected: Vec<String>,
}

/// Active, non-sensitive children (born 2009 or later) that no demo upload mentions.
fn spare_children() -> Vec<(String, String)> {
    let mut used = HashSet::new();
    for entry in std::fs::read_dir(manifest_path("../../demo/uploads")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().skip(1) {
            if let Some(n) = line.split(',').nth(1) {
                used.insert(n.replace(' ', ""));
            }
        }
    }
    let text = std::fs::read_to_string(manifest_path("../../demo/demographics.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() >= 5
                && f[1] == "active"
                && f[4] == "false"
                && f[3] >= "2009-01-01"
                && !used.contains(f[0]))
            .then(|| (f[0].to_owned(), f[3].to_owned()))
        })
        .collect()
}

/// Children Coventry holds in the demo data (some of them also held by other LAs).
fn coventry_children() -> Vec<String> {
    let text = std::fs::read_to_string(manifest_path("../../demo/uploads/E08000026.csv")).unwrap();
    let mut out: Vec<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1).map(|n| n.replace(' ', "")))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn care_team_path(nhs: &str) -> String {
    format!("/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C{nhs}")
}

/// Valid NHS numbers outside the demographics index (rows the upload rejects with CPR01, and
/// lookups that miss).
fn unknown_numbers(n: usize) -> Vec<String> {
    (800_000_000u32..)
        .filter_map(cpis_domain::NhsNumber::from_prefix)
        .take(n)
        .map(|n| n.digits())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checks on the database (server stopped, or read alongside the final run).

struct Db {
    conn: rusqlite::Connection,
}

/// An access as stored: (id, kind, NHS number).
type AccessRow = (String, String, String);
/// Trace id → the accesses recorded with it.
type AccessesByTrace = HashMap<String, Vec<AccessRow>>;

impl Db {
    fn open(path: &Path) -> Db {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        Db { conn }
    }

    /// Entries the lookup log beside the database holds that the database has not copied in
    /// (read as the store reads it; a frame cut short by the kill was never acknowledged).
    fn spooled_waiting(path: &Path) -> u64 {
        cpis_store::sqlite::lookup_log_waiting(path).unwrap()
    }

    fn integrity(&self) -> String {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap()
    }

    fn count(&self, sql: &str, params: impl rusqlite::Params) -> i64 {
        self.conn.query_row(sql, params, |r| r.get(0)).unwrap()
    }

    /// trace id → (access id, kind, NHS number) for accesses after `after_seq`; and the largest seq.
    fn accesses_since(&self, after_seq: i64) -> (AccessesByTrace, i64) {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, id, kind, nhs_number, trace_id FROM accesses WHERE seq > ?1 ORDER BY seq",
            )
            .unwrap();
        let mut rows = stmt.query([after_seq]).unwrap();
        let mut out: AccessesByTrace = HashMap::new();
        let mut max = after_seq;
        while let Some(r) = rows.next().unwrap() {
            max = r.get(0).unwrap();
            let trace: Option<String> = r.get(4).unwrap();
            if let Some(t) = trace {
                out.entry(t).or_default().push((
                    r.get(1).unwrap(),
                    r.get(2).unwrap(),
                    r.get(3).unwrap(),
                ));
            }
        }
        (out, max)
    }

    /// access id → LAs notified, for access notifications after `after_seq`; and the largest seq.
    fn notified_since(&self, after_seq: i64) -> (HashMap<String, Vec<String>>, i64) {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, la_ods, payload FROM notifications
                 WHERE seq > ?1 AND kind = 'access' ORDER BY seq",
            )
            .unwrap();
        let mut rows = stmt.query([after_seq]).unwrap();
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        let mut max = after_seq;
        while let Some(r) = rows.next().unwrap() {
            max = r.get(0).unwrap();
            let payload = support::stored::notification_payload(r, 2).unwrap();
            let access = serde_json::from_str::<serde_json::Value>(&payload)
                .ok()
                .and_then(|p| p["access"]["id"].as_str().map(str::to_owned));
            out.entry(access.unwrap_or_default())
                .or_default()
                .push(r.get(1).unwrap());
        }
        (out, max)
    }

    fn lookup_audits(&self, trace: &str) -> i64 {
        self.count(
            "SELECT count(*) FROM audit_log WHERE trace_id = ?1 AND action LIKE 'lookup.%'",
            [trace],
        )
    }

    /// (delivery id, lease end) of deliveries claimed and never finished: a worker claimed them
    /// (lease of 60 s; a retry waits at most 2 s here) and was killed.
    fn leased_deliveries(&self) -> Vec<(i64, String)> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, next_attempt_at FROM deliveries WHERE delivered_at IS NULL
                   AND julianday(next_attempt_at) > julianday('now', '+10 seconds')",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn coventry_notification_ids(&self) -> HashSet<String> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM notifications WHERE la_ods = ?1")
            .unwrap();
        stmt.query_map([COVENTRY], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

/// Every acknowledged lookup has exactly one access (the right kind, the right child), one audit
/// entry, and one notification per LA it showed.
fn check_lookups(
    db: &Db,
    lookups: &[AckedLookup],
    accesses: &AccessesByTrace,
    notified: &HashMap<String, Vec<String>>,
) {
    for l in lookups {
        let found = accesses.get(&l.trace).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(
            found.len(),
            1,
            "cycle {}: lookup {} was answered 200 but {} accesses are recorded for it",
            l.cycle,
            l.trace,
            found.len()
        );
        let (access_id, kind, nhs) = &found[0];
        assert_eq!(
            nhs, &l.nhs,
            "lookup {}: the access names another child",
            l.trace
        );
        let want_kind = if l.las.is_empty() {
            "miss"
        } else {
            "unscheduled"
        };
        assert_eq!(kind, want_kind, "lookup {}: access kind", l.trace);
        assert_eq!(
            db.lookup_audits(&l.trace),
            1,
            "cycle {}: lookup {} answered 200 without exactly one audit entry",
            l.cycle,
            l.trace
        );
        let mut las = notified.get(access_id).cloned().unwrap_or_default();
        las.sort();
        assert_eq!(
            las, l.las,
            "cycle {}: lookup {} of {} answered 200 showing records of {:?}; notifications committed for {las:?}",
            l.cycle, l.trace, l.nhs, l.las
        );
    }
}

/// Every upload is wholly applied or not at all; acknowledged ones are applied. Updates
/// `job.applied`.
fn check_uploads(db: &Db, jobs: &mut [UploadJob]) {
    assert_eq!(
        db.count(
            "SELECT count(*) FROM uploads WHERE status = 'processing'",
            []
        ),
        0,
        "an upload was left processing"
    );
    for job in jobs.iter_mut() {
        let mut stmt = db
            .conn
            .prepare_cached(
                "SELECT id, seq, status, rows_total, rows_accepted FROM uploads
                 WHERE la_ods = ?1 AND file_id = ?2 AND effective = 1",
            )
            .unwrap();
        let effective: Vec<(String, i64, String, i64, i64)> = stmt
            .query_map([job.la, job.file_id.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let all_rows = db.count(
            "SELECT count(*) FROM uploads WHERE la_ods = ?1 AND file_id = ?2",
            [job.la, job.file_id.as_str()],
        );
        let mut records = 0;
        let mut from_this = 0;
        for nhs in &job.fresh {
            let mut stmt = db
                .conn
                .prepare_cached(
                    "SELECT r.last_upload_id, (SELECT count(*) FROM plans p WHERE p.record_id = r.id)
                     FROM records r WHERE r.nhs_number = ?1 AND r.la_ods = ?2",
                )
                .unwrap();
            let found: Vec<(Option<String>, i64)> = stmt
                .query_map([nhs.as_str(), job.la], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            if let Some((last, plans)) = found.first() {
                records += 1;
                assert_eq!(*plans, 1, "{}: record {nhs} has {plans} plans", job.file_id);
                if effective
                    .first()
                    .is_some_and(|e| Some(&e.0) == last.as_ref())
                {
                    from_this += 1;
                }
            }
        }
        match effective.as_slice() {
            [] => {
                assert_eq!(
                    (all_rows, records),
                    (0, 0),
                    "upload {} (cycle {}) is half-applied: no effective report but {all_rows} report rows and {records} of its {} records",
                    job.file_id,
                    job.cycle,
                    job.fresh.len()
                );
                assert!(
                    job.acked.is_none(),
                    "upload {} (cycle {}) was acknowledged {:?} but is not in the database",
                    job.file_id,
                    job.cycle,
                    job.acked
                );
                job.applied = false;
            }
            [(id, seq, status, total, accepted)] => {
                assert_eq!(status, "completed", "upload {}", job.file_id);
                assert_eq!(
                    *total as usize, job.rows,
                    "upload {}: rows_total",
                    job.file_id
                );
                assert_eq!(
                    *accepted as usize,
                    job.fresh.len(),
                    "upload {}: rows_accepted",
                    job.file_id
                );
                let report_rows = db.count(
                    "SELECT count(*) FROM upload_rows WHERE upload_seq = ?1",
                    [seq],
                );
                assert_eq!(
                    report_rows as usize, job.rows,
                    "upload {} (cycle {}) is half-applied: {report_rows} of {} report rows",
                    job.file_id, job.cycle, job.rows
                );
                assert_eq!(
                    (records, from_this),
                    (job.fresh.len(), job.fresh.len()),
                    "upload {} (cycle {}) is half-applied: {records} of its {} records present, {from_this} written by it",
                    job.file_id,
                    job.cycle,
                    job.fresh.len()
                );
                if let Some((code, acked_id)) = &job.acked {
                    if *code == 201 {
                        assert_eq!(acked_id, id, "upload {}: acknowledged id", job.file_id);
                    }
                }
                job.applied = true;
            }
            many => panic!("upload {}: {} effective reports", job.file_id, many.len()),
        }
    }
}

fn audit_verify(db: &Path) {
    let out = cpis(db).args(["audit", "verify"]).output().unwrap();
    assert!(
        out.status.success(),
        "cpis audit verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------

fn start_server(db: &Path, config: &Path, log: &Path) -> (Child, u16) {
    let port = free_port();
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = cpis(db)
        .arg("--config")
        .arg(config)
        .args(["--log", "warn", "serve", "--bind"])
        .arg(format!("127.0.0.1:{port}"))
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Ok(r) = get(port, "/readyz", &[]) {
            if r.status == 200 {
                return (child, port);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "server exited at start-up ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server not ready after 30 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What one client thread saw in a cycle.
#[derive(Default)]
struct Seen {
    acked: Vec<AckedLookup>,
    sent: u64,
    unacked: u64,
    unexpected: Vec<String>,
}

/// What the client threads of a cycle share.
#[derive(Clone)]
struct Clients {
    port: u16,
    cycle: usize,
    /// Set once the server has been killed.
    stop: Arc<AtomicBool>,
    /// Requests sent and not yet answered (or failed).
    busy: Arc<AtomicUsize>,
    /// Children Coventry holds in the demo data.
    coventry: Arc<Vec<String>>,
    /// Coventry children from acknowledged uploads: a lookup must find them.
    uploaded: Arc<Vec<String>>,
    /// Valid NHS numbers nobody holds.
    misses: Arc<Vec<String>>,
}

fn lookup_client(ctx: Clients, thread: usize, seed: u64) -> Seen {
    let Clients {
        port,
        cycle,
        stop,
        busy,
        coventry,
        uploaded,
        misses,
    } = ctx;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen = Seen::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let roll: f64 = rng.gen();
        let (nhs, must_find) = if roll < 0.1 {
            (SHARED_CHILD.to_owned(), true)
        } else if roll < 0.2 {
            (misses[rng.gen_range(0..misses.len())].clone(), false)
        } else if roll < 0.35 && !uploaded.is_empty() {
            (uploaded[rng.gen_range(0..uploaded.len())].clone(), true)
        } else {
            (coventry[rng.gen_range(0..coventry.len())].clone(), false)
        };
        let trace = format!("crash-c{cycle}-t{thread}-{n}");
        seen.sent += 1;
        busy.fetch_add(1, Ordering::SeqCst);
        let r = get(
            port,
            &care_team_path(&nhs),
            &[
                ("Authorization", &format!("Bearer {ED_TOKEN}")),
                ("IsUnscheduledAccessEvent", "true"),
                ("TraceID", &trace),
            ],
        );
        busy.fetch_sub(1, Ordering::SeqCst);
        match r {
            Ok(r) if r.status == 200 => {
                let bundle = r.json();
                let mut las: Vec<String> = bundle["entry"]
                    .as_array()
                    .map(|entries| {
                        entries
                            .iter()
                            .filter(|e| e["resource"]["resourceType"] == "CareTeam")
                            .filter_map(|e| {
                                e["resource"]["managingOrganization"][0]["identifier"]["value"]
                                    .as_str()
                                    .map(str::to_owned)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                las.sort();
                las.dedup();
                let total = bundle["total"].as_u64().unwrap_or(0) as usize;
                if total > 0 && las.is_empty() {
                    seen.unexpected.push(format!(
                        "lookup {trace}: {total} CareTeams without a managing LA"
                    ));
                }
                if must_find && total == 0 {
                    seen.unexpected.push(format!(
                        "lookup {trace}: {nhs} (acknowledged upload or shared child) not found"
                    ));
                }
                seen.acked.push(AckedLookup {
                    cycle,
                    trace,
                    nhs,
                    las,
                });
            }
            Ok(r) => {
                seen.unexpected.push(format!(
                    "lookup {trace}: status {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
            Err(_) => {
                // Killed in flight, or refused once the server is gone.
                seen.unacked += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // A few ms between lookups: load, but a webhook backlog the final run can drain.
        std::thread::sleep(Duration::from_millis(rng.gen_range(1..6)));
    }
    seen
}

/// One upload attempt: the complete answer, or `None`.
fn send_upload(port: u16, la: &str, file_id: &str, body: &[u8], slow: bool) -> Option<Reply> {
    let token = format!("Bearer demo-{la}");
    let path = format!("/api/v1/uploads?file_id={file_id}&mode=delta");
    let (pieces, pause) = if slow {
        (6, Duration::from_millis(8))
    } else {
        (1, Duration::ZERO)
    };
    http(
        port,
        "POST",
        &path,
        &[("Authorization", &token), ("Content-Type", "text/csv")],
        body,
        pieces,
        pause,
    )
    .ok()
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_write() {
    let cycles: usize = std::env::var("CPIS_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("CPIS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00c0_ffee);
    let began = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let log = dir.path().join("server.log");
    let config = dir.path().join("cpis.toml");
    std::fs::write(
        &config,
        "# Thousands of lookups by one identity, and quick webhook retries.\n\
         [anomaly]\nmax_per_minute = 1000000000\nmax_distinct_children = 1000000000\norg_max_lookups = 1000000000\nsequential_run = 1000000000\nsequential_gap = 0\n\
         miss_window = 1000000000\nmax_miss_ratio = 1.0\nthrottle_minutes = 1\n\
         [webhooks]\nfirst_retry_seconds = 1\nmax_backoff_seconds = 2\ngive_up_after_hours = 72\nlease_seconds = 3\n\
         [webhook_destinations]\nallow_http_loopback = true\n",
    )
    .unwrap();
    let out = cpis(&db).args(["demo", "load"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (receiver, listener) = Receiver::bind();
    let out = cpis(&db)
        .arg("--config")
        .arg(&config)
        .args(["webhooks", "add", COVENTRY])
        .arg(format!("http://127.0.0.1:{}/hook", receiver.port))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("signing secret (shown once): "))
        .expect("the signing secret is printed")
        .trim()
        .to_owned();
    receiver.start(listener, secret, rng.gen());
    {
        let db = Db::open(&db);
        assert_eq!(
            db.count(
                "SELECT count(*) FROM notifications WHERE la_ods = ?1",
                [COVENTRY]
            ),
            0,
            "the demo data has no notifications yet"
        );
    }

    let coventry = Arc::new(coventry_children());
    let misses = Arc::new(unknown_numbers(50));
    let padding_pool = unknown_numbers(800);
    let spare = spare_children();
    // Groups of FRESH_ROWS (child, LA) pairs never held: every spare child for each LA in turn.
    let fresh_groups: Vec<(&'static str, &[(String, String)])> = UPLOADERS
        .iter()
        .flat_map(|la| spare.chunks_exact(FRESH_ROWS).map(move |g| (*la, g)))
        .collect();
    assert!(
        fresh_groups.len() >= cycles,
        "{} fresh groups for {cycles} cycles",
        fresh_groups.len()
    );

    // Plans start a month ago (visible now, whatever today is).
    let plan_start = (chrono::Utc::now().date_naive() - chrono::Days::new(30)).to_string();
    let mut tally = Tally::default();
    let mut acked_lookups: Vec<AckedLookup> = Vec::new();
    let mut jobs: Vec<UploadJob> = Vec::new();
    // Coventry children from acknowledged uploads: later lookups must find them.
    let mut uploaded_coventry: Vec<String> = Vec::new();
    let (mut access_seq, mut notification_seq) = (0i64, 0i64);
    let mut kill_delays = Vec::new();
    let mut interrupted: HashSet<(i64, String)> = HashSet::new();

    for (cycle, &(la, group)) in fresh_groups.iter().enumerate().take(cycles) {
        // This cycle's upload: FRESH_ROWS new records for one LA (a new LA when one runs out),
        // padded with rows the engine rejects (unknown NHS numbers) so it takes a while.
        let mut rows = Vec::new();
        let mut fresh_nhs = Vec::new();
        for (i, (nhs, dob)) in group.iter().enumerate() {
            rows.push(format!(
                "upsert,{nhs},CRASH-{cycle}-{i},Crash,Test,{dob},CPP,{plan_start},,,false"
            ));
            fresh_nhs.push(nhs.clone());
        }
        let padding = rng.gen_range(0..600);
        let start = rng.gen_range(0..padding_pool.len() - padding);
        for (i, nhs) in padding_pool[start..start + padding].iter().enumerate() {
            rows.push(format!(
                "upsert,{nhs},PAD-{cycle}-{i},Pad,Ding,2015-03-03,CPP,{plan_start},,,false"
            ));
        }
        // Shuffle so fresh rows are not always first.
        for i in (1..rows.len()).rev() {
            let j = rng.gen_range(0..=i);
            rows.swap(i, j);
        }
        let body = format!("{HEADER}\n{}\n", rows.join("\n"));
        jobs.push(UploadJob {
            cycle,
            file_id: format!("crash-{seed:x}-{cycle}"),
            la,
            body: Arc::new(body.into_bytes()),
            fresh: fresh_nhs,
            rows: rows.len(),
            acked: None,
            applied: false,
            attempts: 0,
        });

        let (mut child, port) = start_server(&db, &config, &log);
        let ctx = Clients {
            port,
            cycle,
            stop: Arc::new(AtomicBool::new(false)),
            busy: Arc::new(AtomicUsize::new(0)),
            coventry: coventry.clone(),
            uploaded: Arc::new(uploaded_coventry.clone()),
            misses: misses.clone(),
        };
        let threads = rng.gen_range(2..=3);
        let clients: Vec<_> = (0..threads)
            .map(|t| {
                let (ctx, s) = (ctx.clone(), rng.gen());
                std::thread::spawn(move || lookup_client(ctx, t, s))
            })
            .collect();

        // The upload thread: first the unacknowledged uploads of earlier cycles again (as an LA
        // would), then this cycle's.
        let kill_after = Duration::from_millis(rng.gen_range(20..=200));
        kill_delays.push(kill_after.as_millis() as u64);
        let upload_after = Duration::from_millis(rng.gen_range(0..=kill_after.as_millis() as u64));
        let slow = rng.gen_bool(0.3);
        let pending: Vec<usize> = jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.acked.is_none())
            .map(|(i, _)| i)
            .collect();
        let to_send: Vec<(usize, Arc<Vec<u8>>, String, &'static str)> = pending
            .iter()
            .map(|&i| (i, jobs[i].body.clone(), jobs[i].file_id.clone(), jobs[i].la))
            .collect();
        let uploading = Arc::new(AtomicBool::new(false));
        let uploader = {
            let (ctx, uploading) = (ctx.clone(), uploading.clone());
            std::thread::spawn(move || {
                std::thread::sleep(upload_after);
                let mut answers = Vec::new();
                for (i, body, file_id, la) in to_send {
                    if ctx.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    uploading.store(true, Ordering::SeqCst);
                    let r = send_upload(ctx.port, la, &file_id, &body, slow);
                    uploading.store(false, Ordering::SeqCst);
                    answers.push((i, r));
                }
                answers
            })
        };

        // Kill at the chosen moment, or a little later when something is in flight then.
        std::thread::sleep(kill_after);
        let aim = Instant::now();
        while ctx.busy.load(Ordering::SeqCst) == 0
            && !uploading.load(Ordering::SeqCst)
            && !receiver.busy.load(Ordering::SeqCst)
            && aim.elapsed() < Duration::from_millis(30)
        {
            std::thread::sleep(Duration::from_micros(100));
        }
        let in_upload = uploading.load(Ordering::SeqCst);
        let lookups_in_flight = ctx.busy.load(Ordering::SeqCst);
        let in_delivery = receiver.busy.load(Ordering::SeqCst);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        ctx.stop.store(true, Ordering::SeqCst);
        if in_delivery {
            tally.kills_during_delivery += 1;
        }
        if in_upload || lookups_in_flight > 0 || in_delivery {
            tally.kills_with_requests_in_flight += 1;
        }
        if in_upload {
            tally.kills_during_upload += 1;
        }
        tally.lookups_in_flight_at_kills += lookups_in_flight as u64;

        let mut cycle_lookups = Vec::new();
        for c in clients {
            let seen = c.join().unwrap();
            tally.lookups_sent += seen.sent;
            tally.lookups_unacked += seen.unacked;
            tally.unexpected.extend(seen.unexpected);
            cycle_lookups.extend(seen.acked);
        }
        for (i, answer) in uploader.join().unwrap() {
            let job = &mut jobs[i];
            job.attempts += 1;
            tally.uploads_sent += 1;
            if job.attempts > 1 {
                tally.uploads_retried += 1;
            }
            let Some(r) = answer else { continue };
            let want = if job.applied { 200 } else { 201 };
            if r.status != want {
                tally.unexpected.push(format!(
                    "upload {} attempt {} (applied before: {}): status {} (want {want}) {}",
                    job.file_id,
                    job.attempts,
                    job.applied,
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
                continue;
            }
            let report = r.json();
            let accepted = report["counts"]["accepted"].as_u64().unwrap_or(0) as usize;
            if accepted != job.fresh.len() && r.status == 201 {
                tally.unexpected.push(format!(
                    "upload {}: {accepted} rows accepted, want {}: {report}",
                    job.file_id,
                    job.fresh.len()
                ));
            }
            if r.status == 200 {
                tally.replays += 1;
            }
            tally.uploads_acked += 1;
            job.acked = Some((r.status, report["id"].as_str().unwrap_or("").to_owned()));
            if job.la == COVENTRY {
                uploaded_coventry.extend(job.fresh.iter().cloned());
            }
        }
        assert!(
            tally.unexpected.is_empty(),
            "cycle {cycle}: unexpected answers:\n{}",
            tally.unexpected.join("\n")
        );

        // The database after the kill, once opened by cpis (`audit verify`): opening it copies in
        // the lookups the killed server answered from its lookup spool (an upload held the
        // writer), as the next start would.
        tally.spooled_at_kills += Db::spooled_waiting(&db);
        audit_verify(&db);
        assert_eq!(
            Db::spooled_waiting(&db),
            0,
            "cycle {cycle}: spooled lookups copied in"
        );
        let d = Db::open(&db);
        assert_eq!(d.integrity(), "ok", "cycle {cycle}: integrity_check");
        let (accesses, a_max) = d.accesses_since(access_seq);
        let (notified, n_max) = d.notified_since(notification_seq);
        check_lookups(&d, &cycle_lookups, &accesses, &notified);
        (access_seq, notification_seq) = (a_max, n_max);
        check_uploads(&d, &mut jobs);
        // Deliveries claimed by the killed server and not finished: leased (~60 s) for a retry.
        interrupted.extend(d.leased_deliveries());
        drop(d);
        tally.lookups_acked += cycle_lookups.len() as u64;
        tally.lookups_acked_coventry += cycle_lookups
            .iter()
            .filter(|l| l.las.iter().any(|la| la == COVENTRY))
            .count() as u64;
        tally.misses_acked += cycle_lookups.iter().filter(|l| l.las.is_empty()).count() as u64;
        acked_lookups.extend(cycle_lookups);
    }
    let cycles_done = Instant::now();
    let acked_in_cycles = jobs.iter().filter(|j| j.acked.is_some()).count();

    // One clean run: unacknowledged uploads are sent once more, then webhook deliveries drain.
    let (mut child, port) = start_server(&db, &config, &log);
    for job in jobs.iter_mut().filter(|j| j.acked.is_none()) {
        let want = if job.applied { 200 } else { 201 };
        let r = send_upload(port, job.la, &job.file_id, &job.body, false)
            .expect("upload answered on the clean run");
        assert_eq!(
            r.status,
            want,
            "resending {}: {}",
            job.file_id,
            String::from_utf8_lossy(&r.body)
        );
        job.acked = Some((r.status, r.json()["id"].as_str().unwrap().to_owned()));
        tally.uploads_sent += 1;
        tally.uploads_acked += 1;
        tally.uploads_retried += 1;
        if r.status == 200 {
            tally.replays += 1;
        }
    }
    let drain_started = Instant::now();
    let expected = loop {
        let d = Db::open(&db);
        let expected = d.coventry_notification_ids();
        let undelivered = d.count(
            "SELECT count(*) FROM deliveries WHERE delivered_at IS NULL",
            [],
        );
        drop(d);
        let missing = receiver.snapshot(|r| expected.difference(&r.accepted).count());
        if missing == 0 && undelivered == 0 {
            break expected;
        }
        assert!(
            drain_started.elapsed() < DRAIN_LIMIT,
            "after {:?}: {missing} of {} Coventry notifications never accepted by the receiver, {undelivered} deliveries pending\n{}",
            DRAIN_LIMIT,
            expected.len(),
            std::fs::read_to_string(&log).unwrap_or_default().lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let drained_in = drain_started.elapsed();
    // No upload is running now: the clean run swept every spool file (NHS numbers, names) that
    // the killed servers left, and its own were deleted as each upload finished.
    let spool = db.with_file_name("crash.db.spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .expect("the server spools beside the database")
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "spool files survived the crashes: {left:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // Final checks over everything.
    let d = Db::open(&db);
    assert_eq!(d.integrity(), "ok", "final integrity_check");
    let (accesses, _) = d.accesses_since(0);
    let (notified, _) = d.notified_since(0);
    check_lookups(&d, &acked_lookups, &accesses, &notified);
    check_uploads(&d, &mut jobs);
    assert!(
        jobs.iter().all(|j| j.applied),
        "every upload applied after the clean run"
    );
    let coventry_access_notifications = d.count(
        "SELECT count(*) FROM notifications WHERE la_ods = ?1 AND kind = 'access'",
        [COVENTRY],
    );
    assert!(
        coventry_access_notifications as u64 >= tally.lookups_acked_coventry,
        "{coventry_access_notifications} Coventry notifications for {} acknowledged lookups that showed Coventry",
        tally.lookups_acked_coventry
    );
    let deliveries = d.count("SELECT count(*) FROM deliveries", []);
    let dead = d.count(
        "SELECT count(*) FROM deliveries WHERE dead_at IS NOT NULL",
        [],
    );
    assert_eq!(
        deliveries as usize,
        expected.len(),
        "one delivery per Coventry notification"
    );
    assert_eq!(dead, 0, "dead-lettered deliveries");
    drop(d);
    audit_verify(&db);

    let (accepted, duplicates, refused, dropped, errors) = receiver.snapshot(|r| {
        (
            r.accepted.clone(),
            r.duplicates,
            r.refused,
            r.dropped,
            r.errors.clone(),
        )
    });
    assert!(errors.is_empty(), "receiver errors:\n{}", errors.join("\n"));
    let unknown: Vec<_> = accepted.difference(&expected).collect();
    assert!(
        unknown.is_empty(),
        "the receiver accepted ids not in the database: {unknown:?}"
    );
    let missing: Vec<_> = expected.difference(&accepted).collect();
    assert!(
        missing.is_empty(),
        "notifications never delivered: {missing:?}"
    );

    let mut per_la: BTreeMap<&str, usize> = BTreeMap::new();
    for j in &jobs {
        *per_la.entry(j.la).or_default() += 1;
    }
    kill_delays.sort_unstable();
    println!(
        "crash harness: seed={seed:#x} cycles={cycles} kills_with_requests_in_flight={} kills_during_upload={} spooled_lookup_writes_at_kills={} \
         lookups_in_flight_at_kills={} kills_during_delivery={} deliveries_interrupted={} \
         kill_delay_ms(min/median/max)={}/{}/{} lookups_sent={} lookups_acknowledged={} (coventry {}, misses {}) \
         lookups_unacknowledged={} uploads={} uploads_sent={} uploads_acknowledged_during_cycles={} uploads_resent={} replays_200={} \
         uploads_by_la={per_la:?} coventry_notifications={} accepted_by_receiver={} duplicates_on_wire={duplicates} \
         receiver_500s={refused} receiver_drops={dropped} cycles_secs={:.1} drain_secs={:.1} total_secs={:.1}",
        tally.kills_with_requests_in_flight,
        tally.kills_during_upload,
        tally.spooled_at_kills,
        tally.lookups_in_flight_at_kills,
        tally.kills_during_delivery,
        interrupted.len(),
        kill_delays.first().unwrap_or(&0),
        kill_delays.get(kill_delays.len() / 2).unwrap_or(&0),
        kill_delays.last().unwrap_or(&0),
        tally.lookups_sent,
        tally.lookups_acked,
        tally.lookups_acked_coventry,
        tally.misses_acked,
        tally.lookups_unacked,
        jobs.len(),
        tally.uploads_sent,
        acked_in_cycles,
        tally.uploads_retried,
        tally.replays,
        expected.len(),
        accepted.len(),
        (cycles_done - began).as_secs_f64(),
        drained_in.as_secs_f64(),
        began.elapsed().as_secs_f64(),
    );
    assert!(
        tally.kills_with_requests_in_flight * 2 >= cycles as u64,
        "only {} of {cycles} kills landed while requests were in flight",
        tally.kills_with_requests_in_flight
    );
}
