//! The LA upload flow the API (`POST /api/v1/uploads`, `GET /api/v1/uploads/{id}`) and the web
//! upload page (`/la/uploads`) share: receiving a body into a spool file as it arrives
//! ([`AsyncSpool`]), then, through an [`LaUploads`] view made only from the LA's [`LaUpload`]
//! capability, reading that LA's upload reports. The upload itself runs through
//! [`crate::UploadEngine::submit_as`] with the same capability.

use chrono::{DateTime, Utc};
use cpis_auth::capability::LaUpload;
use cpis_domain::report::{RowResult, UploadId, UploadSummary};
use cpis_domain::{AuditEntry, RecordOutcome};
use cpis_store::{RowFilter, Store, StoreResult};
use std::path::PathBuf;

use crate::upload::{SpoolError, SpooledFile, Spooler};

/// How a body is coded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCoding {
    Identity,
    /// Decoded on the way into the spool; the decoded size counts against the limit (a zip bomb
    /// is [`SpoolError::TooLarge`]).
    Gzip,
}

/// A body being written to a spool file on a blocking thread as its chunks arrive, never held
/// whole in memory.
pub struct AsyncSpool<B> {
    tx: tokio::sync::mpsc::Sender<B>,
    writer: tokio::task::JoinHandle<Result<SpooledFile, SpoolError>>,
}

impl<B: AsRef<[u8]> + Send + 'static> AsyncSpool<B> {
    /// Starts the writer: a spool in `dir` (else the installed spool directory), at most `limit`
    /// bytes (decoded).
    pub fn start(dir: Option<PathBuf>, limit: u64, coding: BodyCoding) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<B>(16);
        let writer = tokio::task::spawn_blocking(move || -> Result<_, SpoolError> {
            let spool = Spooler::new(dir.as_deref(), limit)?;
            match coding {
                BodyCoding::Identity => {
                    let mut spool = spool;
                    while let Some(chunk) = rx.blocking_recv() {
                        spool.write_chunk(chunk.as_ref())?;
                    }
                    spool.finish()
                }
                BodyCoding::Gzip => {
                    use std::io::Write;
                    let mut decoder = flate2::write::MultiGzDecoder::new(spool);
                    while let Some(chunk) = rx.blocking_recv() {
                        decoder
                            .write_all(chunk.as_ref())
                            .map_err(|e| SpoolError::from_write(e, limit))?;
                    }
                    decoder
                        .finish()
                        .map_err(|e| SpoolError::from_write(e, limit))?
                        .finish()
                }
            }
        });
        AsyncSpool { tx, writer }
    }

    /// Passes one chunk on. `false` when the writer has stopped: [`AsyncSpool::finish`] says
    /// why.
    pub async fn write(&self, chunk: B) -> bool {
        self.tx.send(chunk).await.is_ok()
    }

    /// The spooled file, once every chunk is written.
    pub async fn finish(self) -> Result<SpooledFile, SpoolError> {
        drop(self.tx);
        match self.writer.await {
            Ok(spooled) => spooled,
            Err(e) => Err(SpoolError::Io(std::io::Error::other(e))),
        }
    }
}

/// The uploads of the one LA its capability names.
pub struct LaUploads<'a> {
    store: &'a dyn Store,
    cap: &'a LaUpload,
}

impl<'a> LaUploads<'a> {
    pub fn new(store: &'a dyn Store, cap: &'a LaUpload) -> Self {
        LaUploads { store, cap }
    }

    /// The LA's upload `id`. Another LA's upload (or none) is answered exactly like a missing
    /// one, but the probe is audited (`action`, denied) so that cross-LA probing leaves a trace;
    /// a failure to write that entry is logged, and the answer stays "not found".
    pub fn summary(
        &self,
        id: &UploadId,
        action: &str,
        now: DateTime<Utc>,
        trace_id: Option<String>,
    ) -> StoreResult<Option<UploadSummary>> {
        let found = self.store.upload(self.cap.la(), id)?;
        if found.is_none() {
            let entry = AuditEntry::new(now, self.cap.actor().clone(), action, trace_id)
                .denied()
                .detail(format!(
                    "upload {id}: not one of {}'s uploads (another LA's, or none)",
                    self.cap.la()
                ));
            crate::refusals::record(self.store, &entry);
        }
        Ok(found)
    }

    /// A page of an upload's row results, in row order, after row `after`.
    pub fn rows(
        &self,
        id: &UploadId,
        after: u64,
        limit: u32,
        outcome: Option<RecordOutcome>,
    ) -> StoreResult<Vec<RowResult>> {
        let filter = RowFilter {
            after_row: after,
            limit,
            outcome,
        };
        self.store.upload_rows(self.cap.la(), id, &filter)
    }

    /// The LA's latest uploads, from every channel, newest first.
    pub fn recent(&self, limit: u32) -> StoreResult<Vec<UploadSummary>> {
        self.store.recent_uploads(self.cap.la(), limit)
    }
}
