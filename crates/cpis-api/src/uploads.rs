//! The upload flow ([`cpis_core::la_upload`]) as this server's channels run it: the API routes
//! (`routes::uploads`) and the web upload pages (`web::la_upload*`, `web::la_report`) both call
//! these, so neither depends on the other. Adds what only a server has: the progress registry
//! and the metrics.

use crate::error::ApiError;
use crate::state::AppState;
use cpis_auth::capability::LaUpload;
use cpis_core::la_upload::{AsyncSpool, BodyCoding, LaUploads};
use cpis_core::upload::{Progress, ProgressPhase, SpoolError, SpooledFile, Submitted};
use cpis_core::UploadEngine;
use cpis_domain::report::{RowResult, UploadId, UploadMeta, UploadSummary};
use cpis_domain::RecordOutcome;

/// Starts spooling a body with the server's upload limit and spool directory.
pub fn start_spool<B: AsRef<[u8]> + Send + 'static>(
    state: &AppState,
    coding: BodyCoding,
) -> AsyncSpool<B> {
    AsyncSpool::start(
        state.config.spool_dir.clone(),
        state.config.max_upload_bytes,
        coding,
    )
}

/// A spool failure as the answer to the request.
pub fn spool_error(e: SpoolError) -> ApiError {
    match e {
        SpoolError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
        SpoolError::BadGzip(why) => ApiError::BadRequest(format!(
            "the body is sent with Content-Encoding: gzip but is not valid gzip data ({why}); nothing was applied"
        )),
        SpoolError::NoSpace(io) => {
            tracing::warn!(error = %io, "upload refused: no room to spool it");
            ApiError::Unavailable
        }
        e @ SpoolError::Io(_) => ApiError::internal(e),
    }
}

/// Runs one upload through the engine (blocking), reporting progress to the registry (every
/// channel of this server: the API and the web page) and counting it in the metrics.
pub fn run_upload(
    engine: &UploadEngine,
    cap: &LaUpload,
    state: &AppState,
    id: UploadId,
    meta: UploadMeta,
    file: &SpooledFile,
) -> Result<Submitted, ApiError> {
    let progress = |p: Progress| {
        let phase = match p.phase {
            ProgressPhase::Verifying => "verifying",
            ProgressPhase::Applying => "applying",
        };
        state.progress.update(&id, phase, p.rows);
    };
    let out = engine.submit_as(cap, id.clone(), meta, file, &progress);
    if let Ok(submitted) = &out {
        let s = submitted.summary();
        let outcome = s
            .file_outcome
            .map_or_else(|| s.status.code().to_owned(), |o| o.code().to_owned());
        state
            .metrics
            .uploads
            .get_or_create(&crate::metrics::OutcomeLabel { outcome })
            .inc();
        // A replayed file changed nothing: its rows were counted the first time.
        if matches!(submitted, Submitted::New(_)) {
            for (outcome, n) in &s.counts.by_outcome {
                state
                    .metrics
                    .upload_rows
                    .get_or_create(&crate::metrics::OutcomeLabel {
                        outcome: outcome.code().to_owned(),
                    })
                    .inc_by(*n);
            }
        }
    }
    state.progress.finish(&id);
    Ok(out?)
}

/// The LA's upload `id`, or `None` (another LA's, or none: the probe is audited as `action`).
pub async fn summary(
    state: &AppState,
    cap: &LaUpload,
    id: &UploadId,
    action: &'static str,
    trace_id: Option<String>,
) -> Result<Option<UploadSummary>, ApiError> {
    let (store, cap, id, now) = (
        state.store.clone(),
        cap.clone(),
        id.clone(),
        state.clock.now(),
    );
    Ok(tokio::task::spawn_blocking(move || {
        LaUploads::new(store.as_ref(), &cap).summary(&id, action, now, trace_id)
    })
    .await??)
}

/// A page of an upload's row results (an upload of the capability's LA).
pub async fn read_rows(
    state: &AppState,
    cap: &LaUpload,
    s: &UploadSummary,
    after: u64,
    limit: u32,
    outcome: Option<RecordOutcome>,
) -> Result<Vec<RowResult>, ApiError> {
    let (store, cap, id) = (state.store.clone(), cap.clone(), s.id.clone());
    Ok(tokio::task::spawn_blocking(move || {
        LaUploads::new(store.as_ref(), &cap).rows(&id, after, limit, outcome)
    })
    .await??)
}

/// The LA's latest uploads, newest first.
pub async fn recent(
    state: &AppState,
    cap: &LaUpload,
    limit: u32,
) -> Result<Vec<UploadSummary>, ApiError> {
    let (store, cap) = (state.store.clone(), cap.clone());
    Ok(
        tokio::task::spawn_blocking(move || LaUploads::new(store.as_ref(), &cap).recent(limit))
            .await??,
    )
}
