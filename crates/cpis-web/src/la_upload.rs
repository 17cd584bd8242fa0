//! The local authority upload page: `GET /la/uploads` (the form), `POST /la/uploads` (run the
//! file through the same [`cpis_core::UploadEngine`] as `POST /api/v1/uploads`, channel `web`,
//! then `303` to the report) and `POST /la/uploads/{id}/confirm` (apply a full upload held by
//! the mass-ending guard). With JavaScript (`assets/la-upload.js`) the form is sent by XHR with
//! `Accept: application/json`: the answer is `202 {id, report}` as soon as the file is
//! received, and the script polls `GET /api/v1/uploads/{id}` for progress.

use super::format;
use super::forms::SignedInForm;
use super::la_upload_form::UploadForm;
use super::page::{self, FieldError, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cpis_api::uploads::run_upload;
use cpis_api::ApiError;
use cpis_api::AppState;
use cpis_auth::capability::LaUpload;
use cpis_auth::Principal;
use cpis_core::upload::Submitted;
use cpis_core::UploadEngine;
use cpis_domain::report::{UploadId, UploadMeta, UploadSummary};
use cpis_domain::upload::{UploadMode, FORMAT_V1};
use cpis_domain::FileOutcome;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "la_upload.html")]
struct UploadPage {
    layout: Layout,
    errors: Vec<FieldError>,
    csrf_token: String,
    mode: String,
    day: String,
    month: String,
    year: String,
    la_name: String,
    /// The LA's latest uploads, from every channel, newest first.
    recent: Vec<RecentUpload>,
}

impl UploadPage {
    /// The sentence above the recent uploads, in the right number.
    fn recent_intro(&self) -> String {
        let la = &self.la_name;
        match self.recent.len() {
            1 => format!("The one file received from {la} so far, from this website, MESH or the API, with its report."),
            n if n < RECENT_UPLOADS as usize => format!("The {n} files received from {la} so far, newest first, from this website, MESH and the API. Each has its report."),
            n => format!("The latest {n} files received from {la}, newest first, from this website, MESH and the API. Each has its report."),
        }
    }
}

/// One line of the recent uploads table.
struct RecentUpload {
    href: String,
    received: String,
    file_id: String,
    /// The file name when known, else the file id.
    title: String,
    channel: String,
    mode: &'static str,
    code: String,
    description: String,
    class: &'static str,
    accepted: u64,
    rejected: u64,
}

/// How many recent uploads the upload page lists; older reports are reached by their links
/// (the MESH report, the API's upload id).
const RECENT_UPLOADS: u32 = 20;

impl RecentUpload {
    fn of(u: &UploadSummary) -> Self {
        let (code, description, class) = super::la_report::outcome_tag(u);
        RecentUpload {
            href: format!("/la/uploads/{}", u.id),
            received: when(u.received_at),
            file_id: u.meta.file_id.clone(),
            title: file_title(u).to_owned(),
            channel: super::la_report::channel_name(&u.meta.channel).to_owned(),
            mode: match u.meta.mode {
                UploadMode::Delta => "Changes only",
                UploadMode::Full => "Complete list",
            },
            code,
            description,
            class,
            accepted: u.counts.accepted,
            rejected: u.counts.rejected,
        }
    }
}

/// The LA's recent uploads for the upload page.
async fn recent_uploads(state: &AppState, cap: &LaUpload) -> Result<Vec<RecentUpload>, WebError> {
    let recent = cpis_api::uploads::recent(state, cap, RECENT_UPLOADS).await?;
    Ok(recent.iter().map(RecentUpload::of).collect())
}

impl UploadPage {
    fn new(user: &SignedIn, today: chrono::NaiveDate) -> Self {
        use chrono::Datelike;
        UploadPage {
            layout: Layout::signed_in(user, "Upload a file", "/la/uploads"),
            errors: Vec::new(),
            csrf_token: user.csrf.clone(),
            mode: "delta".into(),
            day: today.day().to_string(),
            month: today.month().to_string(),
            year: today.year().to_string(),
            la_name: user.principal.organisation_name().to_owned(),
            recent: Vec::new(),
        }
    }

    fn error_for(&self, field: &str) -> Option<&str> {
        page::error_for(&self.errors, field)
    }

    fn date_error(&self) -> Option<&str> {
        self.error_for("file-date-day")
    }
}

pub(super) async fn upload_capability(
    state: &AppState,
    user: &SignedIn,
    action: &str,
) -> Result<LaUpload, WebError> {
    Ok(user
        .caller()
        .grant(state, action, Principal::la_upload)
        .await?)
}

/// `GET /la/uploads`.
pub async fn form(State(state): State<AppState>, user: SignedIn) -> Result<Response, WebError> {
    let cap = upload_capability(&state, &user, "upload.form").await?;
    let mut page = UploadPage::new(&user, state.clock.today());
    page.recent = recent_uploads(&state, &cap).await?;
    Ok(page::html(StatusCode::OK, &page))
}

/// The form's file date from its three boxes (`25`, `11`, `2026`).
fn file_date(day: &str, month: &str, year: &str) -> Option<chrono::NaiveDate> {
    let (d, m, y) = (day.trim(), month.trim(), year.trim());
    if y.len() != 4 {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// `POST /la/uploads` (multipart): checks the form, then runs the upload. Nothing is recorded
/// for a form with errors.
pub async fn submit(State(state): State<AppState>, form: UploadForm) -> Result<Response, WebError> {
    let cap = upload_capability(&state, &form.user, "upload.submit").await?;
    let mut errors = Vec::new();
    if form.file.is_none() {
        errors.push(FieldError {
            field: "file",
            message: "Select a CSV file to upload".into(),
        });
    }
    let mode = form.mode.parse::<UploadMode>().ok();
    if mode.is_none() {
        errors.push(FieldError {
            field: "mode",
            message: "Select whether the file has changes only or your complete list".into(),
        });
    }
    let date = file_date(&form.day, &form.month, &form.year);
    if date.is_none() {
        errors.push(FieldError {
            field: "file-date-day",
            message: "File date must be a real date, for example 25 11 2026".into(),
        });
    }
    let (Some(file), Some(mode), Some(file_date), true) =
        (form.file, mode, date, errors.is_empty())
    else {
        let mut page = UploadPage::new(&form.user, state.clock.today());
        page.layout = page.layout.with_errors(true);
        page.errors = errors;
        page.mode = form.mode.chars().take(10).collect();
        page.day = form.day.chars().take(10).collect();
        page.month = form.month.chars().take(10).collect();
        page.year = form.year.chars().take(10).collect();
        page.recent = recent_uploads(&state, &cap).await?;
        return Ok(page::html(StatusCode::BAD_REQUEST, &page));
    };
    let meta = UploadMeta {
        la: cap.la().clone(),
        file_id: web_file_id(form.file_name.as_deref(), file.sha256()),
        mode,
        file_date,
        format: FORMAT_V1.to_owned(),
        channel: "web".to_owned(),
    };
    let id = UploadEngine::new_upload_id();
    state.progress.start(&id, cap.la());
    let (engine, st, run_id) = (state.engine.clone(), state.clone(), id.clone());
    let job =
        tokio::task::spawn_blocking(move || run_upload(&engine, &cap, &st, run_id, meta, &file));
    let report = format!("/la/uploads/{id}");
    if form.wants_json {
        tokio::spawn(async move {
            if let Ok(Err(e)) = job.await {
                tracing::error!(error = %e, "background upload failed");
            }
        });
        let body = serde_json::json!({
            "id": id, "report": report, "status": format!("/api/v1/uploads/{id}"),
        });
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    match job.await?? {
        Submitted::New(s) if s.file_outcome == Some(FileOutcome::TemporarilyUnavailable) => {
            let mut page = UploadPage::new(&form.user, state.clock.today());
            page.layout = page.layout.with_errors(true);
            page.errors.push(FieldError {
                field: "file",
                message: "The service could not store this upload just now and nothing was applied. Select the file and upload it again".into(),
            });
            Ok(page::html(StatusCode::SERVICE_UNAVAILABLE, &page))
        }
        _ => Ok(page::see_other(&report)),
    }
}

#[derive(Deserialize)]
pub struct NoFields {}

/// `POST /la/uploads/{id}/confirm`: applies a held full upload, then back to its report.
pub async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedInForm { user, .. }: SignedInForm<NoFields>,
) -> Result<Response, WebError> {
    let cap = upload_capability(&state, &user, "upload.confirm").await?;
    let id = UploadId::parse(&id).map_err(|_| ApiError::NotFound)?;
    let engine = state.engine.clone();
    let run_id = id.clone();
    tokio::task::spawn_blocking(move || engine.confirm(&cap, &run_id, &|_| {}))
        .await?
        .map_err(ApiError::from)?;
    Ok(page::see_other(&format!("/la/uploads/{id}")))
}

/// Characters of the content hash a web upload's file id ends with.
const FILE_ID_HASH: usize = 16;

/// A web upload's file id: the file's name (as far as a file id can hold it: `A-Z a-z 0-9 . _ -`,
/// other characters as `_`, at most 47 of them) then `.` and 16 hex digits of the content's
/// SHA-256, e.g. `errors-E08000026.csv.3f9a0c1b2d4e5f60`. The same file sent twice is a
/// duplicate, as before; a corrected file under the same name is a new upload; and the report can
/// be titled by the name ([`web_file_name`]) without storing anything new. Without a name, the
/// API's default `sha256-<16 hex>`.
pub(super) fn web_file_id(name: Option<&str>, sha256: &str) -> String {
    let hash = &sha256[..FILE_ID_HASH.min(sha256.len())];
    let safe: String = name
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_matches(['.', '_']);
    if safe.is_empty() {
        return format!("sha256-{hash}");
    }
    // Keep the end of a long name (its extension), cut from the middle of the stem.
    let max = 64 - 1 - FILE_ID_HASH;
    let safe = if safe.len() > max {
        let tail = &safe[safe.len() - 8..];
        format!("{}{tail}", &safe[..max - 8])
    } else {
        safe.to_owned()
    };
    format!("{safe}.{hash}")
}

/// The file name a web upload's file id carries ([`web_file_id`]); `None` for other channels and
/// for ids without one.
pub(super) fn web_file_name(s: &UploadSummary) -> Option<&str> {
    if s.meta.channel != "web" {
        return None;
    }
    let (name, hash) = s.meta.file_id.rsplit_once('.')?;
    let is_hash = hash.len() == FILE_ID_HASH
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (is_hash && !name.is_empty() && s.content_sha256.starts_with(hash)).then_some(name)
}

/// How a report names its file: the file name when known, else the file id.
pub(super) fn file_title(s: &UploadSummary) -> &str {
    web_file_name(s).unwrap_or(&s.meta.file_id)
}

/// `9990597634` → `999 059 7634`; anything that is not ten digits as it is.
pub(super) fn grouped_text(nhs: &str) -> String {
    if nhs.len() == 10 && nhs.bytes().all(|b| b.is_ascii_digit()) {
        format!("{} {} {}", &nhs[..3], &nhs[3..6], &nhs[6..])
    } else {
        nhs.to_owned()
    }
}

/// `20 November 2026, 10:00 (GMT)`.
pub(super) fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    format::uk_time(t)
}

#[cfg(test)]
mod tests {
    use super::web_file_id;

    #[test]
    fn web_file_ids_carry_the_file_name_and_the_content_hash() {
        let sha = "3f9a0c1b2d4e5f60aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        assert_eq!(
            web_file_id(Some("errors-E08000026.csv"), sha),
            "errors-E08000026.csv.3f9a0c1b2d4e5f60"
        );
        assert_eq!(
            web_file_id(Some("My list (2).csv"), sha),
            "My_list__2_.csv.3f9a0c1b2d4e5f60"
        );
        assert_eq!(web_file_id(None, sha), "sha256-3f9a0c1b2d4e5f60");
        assert_eq!(web_file_id(Some("..."), sha), "sha256-3f9a0c1b2d4e5f60");
        let long = web_file_id(Some(&format!("{}.csv", "a".repeat(100))), sha);
        assert_eq!(long.len(), 64);
        assert!(long.ends_with("aaaa.csv.3f9a0c1b2d4e5f60"), "{long}");
        assert!(cpis_domain::upload::FileId::parse(&long).is_ok());
    }
}
