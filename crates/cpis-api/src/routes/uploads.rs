//! `POST /api/v1/uploads`, `GET /api/v1/uploads/{id}`, `POST /api/v1/uploads/{id}/confirm`.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::uploads::{read_rows, run_upload, spool_error, start_spool};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cpis_auth::capability::LaUpload;
use cpis_auth::Principal;
use cpis_core::la_upload::BodyCoding;
use cpis_core::upload::{write_report_csv, Submitted};
use cpis_core::UploadEngine;
use cpis_domain::report::{RowResult, UploadId, UploadMeta, UploadSummary};
use cpis_domain::upload::{FileId, UploadMode, FORMAT_V1};
use cpis_domain::{parse_iso_date, RecordOutcome};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
pub struct CreateParams {
    mode: Option<String>,
    file_id: Option<String>,
    file_date: Option<String>,
    format: Option<String>,
}

fn upload_meta(
    la: cpis_domain::OdsCode,
    p: &CreateParams,
    today: chrono::NaiveDate,
    sha: &str,
) -> Result<UploadMeta, ApiError> {
    let mode = match p.mode.as_deref() {
        None => UploadMode::Delta,
        Some(m) => m
            .parse()
            .map_err(|e: cpis_domain::upload::UnknownMode| ApiError::BadRequest(e.to_string()))?,
    };
    let file_id = match p.file_id.as_deref() {
        None => format!("sha256-{}", &sha[..16]),
        Some(f) => FileId::parse(f)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?
            .as_str()
            .to_owned(),
    };
    let file_date = match p.file_date.as_deref() {
        None => today,
        Some(d) => {
            parse_iso_date(d).map_err(|e| ApiError::BadRequest(format!("file_date: {e}")))?
        }
    };
    Ok(UploadMeta {
        la,
        file_id,
        mode,
        file_date,
        format: p.format.clone().unwrap_or_else(|| FORMAT_V1.to_owned()),
        channel: "api".to_owned(),
    })
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "content type must be text/csv".into(),
        ))
    }
}

fn body_coding(headers: &HeaderMap) -> Result<BodyCoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(BodyCoding::Identity);
    };
    let value = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match value.as_str() {
        "" | "identity" => Ok(BodyCoding::Identity),
        "gzip" | "x-gzip" => Ok(BodyCoding::Gzip),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding '{other}' is not supported: send the file uncompressed or with Content-Encoding: gzip"
        ))),
    }
}

/// A body announced (`Content-Length`) as larger than the limit is refused before it is read.
fn check_announced_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match announced {
        Some(n) if n > limit => Err(ApiError::PayloadTooLarge { limit }),
        _ => Ok(()),
    }
}

/// Streams the request body into a spool file on a blocking thread, never holding it whole. A
/// gzip body is decoded on the way; the decoded size counts against the limit (a zip bomb is 413).
async fn spool_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<cpis_core::upload::SpooledFile, ApiError> {
    let coding = body_coding(headers)?;
    check_announced_length(headers, state.config.max_upload_bytes)?;
    let spool = start_spool(state, coding);
    let mut stream = body.into_data_stream();
    let mut read_error = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                if !spool.write(c).await {
                    break; // the writer stopped: its error says why
                }
            }
            Err(e) => {
                read_error = Some(e);
                break;
            }
        }
    }
    let spooled = spool.finish().await;
    if let Some(e) = read_error {
        return Err(ApiError::BadRequest(format!(
            "could not read the request body: {e}"
        )));
    }
    spooled.map_err(spool_error)
}

/// The report as JSON: the summary, then a page of row results.
#[derive(Serialize)]
struct ReportJson {
    #[serde(flatten)]
    summary: UploadSummary,
    file_outcome_description: Option<&'static str>,
    /// Present while the upload is being processed.
    rows_processed: Option<u64>,
    records: Vec<RowResult>,
    /// Pass as `after` to read the next page; absent on the last page.
    records_next_after: Option<u64>,
}

fn summary_response(
    status: StatusCode,
    summary: UploadSummary,
    records: Vec<RowResult>,
    next: Option<u64>,
) -> Response {
    let location = format!("/api/v1/uploads/{}", summary.id);
    let body = ReportJson {
        file_outcome_description: summary.file_outcome.map(|o| o.description()),
        summary,
        rows_processed: None,
        records,
        records_next_after: next,
    };
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

const FIRST_PAGE: u32 = 1000;

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<CreateParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let cap = caller
        .grant(&state, "upload.submit", Principal::la_upload)
        .await?;
    check_content_type(&headers)?;
    let spooled = spool_body(&state, &headers, body).await?;
    let meta = upload_meta(
        cap.la().clone(),
        &params,
        state.clock.today(),
        spooled.sha256(),
    )?;
    let id = UploadEngine::new_upload_id();
    state.progress.start(&id, cap.la());
    let respond_async = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
        });

    let engine = state.engine.clone();
    let st = state.clone();
    let (run_id, run_cap) = (id.clone(), cap.clone());
    let job = tokio::task::spawn_blocking(move || {
        run_upload(&engine, &run_cap, &st, run_id, meta, &spooled)
    });
    if respond_async {
        tokio::spawn(async move {
            if let Ok(Err(e)) = job.await {
                tracing::error!(error = %e, "background upload failed");
            }
        });
        let location = format!("/api/v1/uploads/{id}");
        let mut resp = (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"id": id, "status": "processing", "location": location})),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return Ok(resp);
    }
    let submitted = job.await??;
    let (status, summary) = match submitted {
        Submitted::Replay(s) => (StatusCode::OK, s),
        Submitted::New(s)
            if s.file_outcome == Some(cpis_domain::FileOutcome::TemporarilyUnavailable) =>
        {
            let mut r = summary_response(StatusCode::SERVICE_UNAVAILABLE, s, Vec::new(), None);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            return Ok(r);
        }
        // Refused whole (CPF01 unreadable, CPF06 unsupported format): nothing was applied, and a
        // client can tell without reading outcome codes. The report is still stored and linked.
        Submitted::New(s)
            if matches!(
                s.file_outcome,
                Some(
                    cpis_domain::FileOutcome::Malformed
                        | cpis_domain::FileOutcome::UnsupportedVersion
                )
            ) =>
        {
            (StatusCode::UNPROCESSABLE_ENTITY, s)
        }
        Submitted::New(s) => (StatusCode::CREATED, s),
    };
    let rows = read_rows(&state, &cap, &summary, 0, FIRST_PAGE, None).await?;
    let next = next_after(&rows, FIRST_PAGE);
    Ok(summary_response(status, summary, rows, next))
}

fn next_after(rows: &[RowResult], limit: u32) -> Option<u64> {
    (rows.len() as u64 == u64::from(limit))
        .then(|| rows.last().map(|r| r.row))
        .flatten()
}

#[derive(Debug, Deserialize)]
pub struct ReportParams {
    /// `csv` or `json` (default: from the Accept header, else JSON).
    format: Option<String>,
    after: Option<u64>,
    limit: Option<u32>,
    outcome: Option<String>,
}

fn parse_id(id: &str) -> Result<UploadId, ApiError> {
    // An id that cannot exist is reported like one that does not: no hint either way.
    UploadId::parse(id).map_err(|_| ApiError::NotFound)
}

pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<ReportParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cap = caller
        .grant(&state, "upload.report", Principal::la_upload)
        .await?;
    let la = cap.la().clone();
    let id = parse_id(&id)?;
    let outcome = match p.outcome.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            RecordOutcome::from_code(&c.to_ascii_uppercase()).ok_or_else(|| {
                ApiError::BadRequest("outcome must be one of CPR01..CPR07".into())
            })?,
        ),
    };
    let wants_csv = match p.format.as_deref() {
        Some(f) if f.eq_ignore_ascii_case("csv") => true,
        Some(f) if f.eq_ignore_ascii_case("json") => false,
        Some(_) => return Err(ApiError::BadRequest("format must be csv or json".into())),
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };
    // Progress first: an upload leaves the registry only after it committed, so a poller never
    // falls between the two.
    if let Some(running) = state.progress.get(&id, &la) {
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({
                "id": id, "status": "processing", "phase": running.phase, "rows_processed": running.rows
            })),
        )
            .into_response());
    }
    let Some(summary) =
        crate::uploads::summary(&state, &cap, &id, "upload.report", caller.trace_id.clone())
            .await?
    else {
        return Err(ApiError::NotFound);
    };
    if wants_csv {
        return csv_report(&state, &cap, summary, outcome).await;
    }
    let limit = p.limit.unwrap_or(FIRST_PAGE).clamp(1, 10_000);
    let after = crate::extract::cursor(p.after.unwrap_or(0), "after")?;
    let rows = read_rows(&state, &cap, &summary, after, limit, outcome).await?;
    let next = next_after(&rows, limit);
    Ok(summary_response(StatusCode::OK, summary, rows, next))
}

/// The whole per-record report as CSV, read from the store a page at a time.
async fn csv_report(
    state: &AppState,
    cap: &LaUpload,
    summary: UploadSummary,
    outcome: Option<RecordOutcome>,
) -> Result<Response, ApiError> {
    const PAGE: u32 = 10_000;
    let mut out = Vec::new();
    let mut after = 0;
    let mut first = true;
    loop {
        let rows = read_rows(state, cap, &summary, after, PAGE, outcome).await?;
        out = write_report_csv(out, &rows, first).map_err(ApiError::internal)?;
        first = false;
        match next_after(&rows, PAGE) {
            Some(n) => after = n,
            None => break,
        }
    }
    // Named by the LA's file id (`cpis-report-<file id>.csv`), not the upload's internal id.
    let disposition = format!(
        "attachment; filename=\"{}\"",
        cpis_core::upload::report_file_name(&summary)
    );
    let mut resp = (StatusCode::OK, out).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let cap = caller
        .grant(&state, "upload.confirm", Principal::la_upload)
        .await?;
    let id = parse_id(&id)?;
    let (engine, run_cap) = (state.engine.clone(), cap.clone());
    let summary =
        tokio::task::spawn_blocking(move || engine.confirm(&run_cap, &id, &|_| {})).await??;
    let rows = read_rows(&state, &cap, &summary, 0, FIRST_PAGE, None).await?;
    let next = next_after(&rows, FIRST_PAGE);
    Ok(summary_response(StatusCode::OK, summary, rows, next))
}
