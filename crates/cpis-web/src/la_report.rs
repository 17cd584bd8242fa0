//! `GET /la/uploads/{id}`: an upload's report for its own LA (another LA's upload, or an id that
//! does not exist, is the same 404): the summary, counts by outcome code, the row results
//! filtered by outcome code (`?outcome=CPR04`) and paged (`?page=2`), a CSV download (the API's
//! `GET /api/v1/uploads/{id}?format=csv`, which takes the session cookie) and, for a full upload
//! held by the mass-ending guard, the "Confirm and apply" form.

use super::la_pagination::PageLink;
use super::la_upload::{file_title, grouped_text, upload_capability, web_file_name, when};
use super::page::{self, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use cpis_api::uploads::read_rows;
use cpis_api::ApiError;
use cpis_api::AppState;
use cpis_auth::capability::LaUpload;
use cpis_core::upload::sentence;
use cpis_domain::report::{UploadId, UploadStatus, UploadSummary};
use cpis_domain::{FileOutcome, RecordOutcome};
use serde::Deserialize;

/// Rows per page.
const PAGE: u32 = 50;
/// Rows read at a time when skipping to a page of a filtered view.
const SKIP_CHUNK: u32 = 10_000;

const ALL_OUTCOMES: [RecordOutcome; 7] = [
    RecordOutcome::NotFound,
    RecordOutcome::Sensitive,
    RecordOutcome::DobMismatch,
    RecordOutcome::MalformedNhsNumber,
    RecordOutcome::Superseded,
    RecordOutcome::Accepted,
    RecordOutcome::Invalid,
];

#[derive(Deserialize)]
pub struct ReportQuery {
    outcome: Option<String>,
    page: Option<String>,
}

struct SummaryRow {
    key: &'static str,
    value: String,
}

struct OutcomeCount {
    code: &'static str,
    description: &'static str,
    count: u64,
    selected: bool,
}

struct RowView {
    row: u64,
    nhs_number: String,
    /// The local id the row was sent with (empty when none).
    local_id: String,
    /// The detail code (`NHS_NUMBER_CHECK_DIGIT`), in its own column.
    detail_code: &'static str,
    code: &'static str,
    accepted: bool,
    message: String,
}

#[derive(Template)]
#[template(path = "la_report.html")]
struct ReportPage {
    layout: Layout,
    id: String,
    csrf_token: String,
    heading: String,
    outcome_code: String,
    outcome_description: String,
    /// `nhsuk-tag--green`, `--orange` or `--red`.
    outcome_class: &'static str,
    message: Option<String>,
    held: bool,
    duplicate_of: Option<String>,
    summary: Vec<SummaryRow>,
    outcomes: Vec<OutcomeCount>,
    filter: String,
    rows: Vec<RowView>,
    rows_heading: String,
    csv_href: String,
    previous: Option<PageLink>,
    next: Option<PageLink>,
}

#[derive(Template)]
#[template(path = "la_report_processing.html")]
struct ProcessingPage {
    layout: Layout,
    id: String,
    phase: &'static str,
    rows: u64,
}

/// How an upload reached cpis, in words.
pub(super) fn channel_name(channel: &str) -> &str {
    match channel {
        "web" => "Web page",
        "api" => "API",
        "cli" => "Command line",
        "mesh" => "MESH",
        "demo" => "Demo data",
        other => other,
    }
}

/// An upload's result as the pages show it: code, words and tag colour.
pub(super) fn outcome_tag(summary: &UploadSummary) -> (String, String, &'static str) {
    let code = summary
        .file_outcome
        .map_or_else(|| summary.status.code().to_owned(), |o| o.code().to_owned());
    let description = match (summary.status, summary.file_outcome) {
        (UploadStatus::HeldForConfirmation, _) => "Held: nothing applied until you confirm".into(),
        (UploadStatus::Duplicate, _) => "Already received: nothing changed".into(),
        (UploadStatus::Processing, _) => "Being checked".into(),
        (_, Some(o)) => o.description().to_owned(),
        (_, None) => summary.status.code().to_owned(),
    };
    (
        code,
        description,
        outcome_class(summary.file_outcome, summary.status),
    )
}

fn outcome_class(o: Option<FileOutcome>, status: UploadStatus) -> &'static str {
    match (status, o) {
        (UploadStatus::HeldForConfirmation, _) => "nhsuk-tag--orange",
        (_, Some(FileOutcome::AllLoaded)) => "nhsuk-tag--green",
        (_, Some(FileOutcome::Partial)) => "nhsuk-tag--orange",
        _ => "nhsuk-tag--red",
    }
}

/// `GET /la/uploads/{id}`.
pub async fn report(
    State(state): State<AppState>,
    user: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    let cap = upload_capability(&state, &user, "upload.report").await?;
    let la = cap.la().clone();
    let id = UploadId::parse(&id).map_err(|_| ApiError::NotFound)?;
    let outcome = match q.outcome.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(
            RecordOutcome::from_code(&c.to_ascii_uppercase()).ok_or_else(|| {
                ApiError::BadRequest("Choose an outcome code from the list.".into())
            })?,
        ),
    };
    let page_no = match q.page.as_deref().map(str::trim) {
        None | Some("") => 1,
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|p| (1..=1_000_000).contains(p))
            .ok_or(ApiError::NotFound)?,
    };
    if let Some(running) = state.progress.get(&id, &la) {
        return Ok(page::html(
            StatusCode::OK,
            &ProcessingPage {
                layout: Layout::signed_in(&user, "Upload in progress", "/la/uploads"),
                id: id.to_string(),
                phase: running.phase,
                rows: running.rows,
            },
        ));
    }
    let Some(summary) = cpis_api::uploads::summary(
        &state,
        &cap,
        &id,
        "upload.report",
        Some(user.trace_id.clone()),
    )
    .await?
    else {
        return Err(ApiError::NotFound.into());
    };

    let total = match outcome {
        None => summary.counts.rows,
        Some(o) => summary.counts.by_outcome.get(&o).copied().unwrap_or(0),
    };
    let pages = total.div_ceil(u64::from(PAGE)).max(1);
    if page_no > pages {
        return Err(ApiError::NotFound.into());
    }
    let after = start_after(&state, &cap, &summary, outcome, page_no).await?;
    let rows = read_rows(&state, &cap, &summary, after, PAGE, outcome).await?;

    let filter = outcome.map_or(String::new(), |o| o.code().to_owned());
    let base = format!("/la/uploads/{id}");
    let link = |p: u64| -> String {
        match (outcome, p) {
            (None, 1) => base.clone(),
            (None, p) => format!("{base}?page={p}"),
            (Some(o), 1) => format!("{base}?outcome={}", o.code()),
            (Some(o), p) => format!("{base}?outcome={}&page={p}", o.code()),
        }
    };
    let previous = (page_no > 1).then(|| PageLink {
        href: link(page_no - 1),
        label: format!("Page {} of {pages}", page_no - 1),
    });
    let next = (page_no < pages).then(|| PageLink {
        href: link(page_no + 1),
        label: format!("Page {} of {pages}", page_no + 1),
    });
    let rows_heading = match outcome {
        None => format!("Rows ({total})"),
        Some(o) => format!("Rows with outcome {} ({total})", o.code()),
    };
    let rows_heading = if pages > 1 {
        format!("{rows_heading}, page {page_no} of {pages}")
    } else {
        rows_heading
    };
    let csv_href = match outcome {
        None => format!("/api/v1/uploads/{id}?format=csv"),
        Some(o) => format!("/api/v1/uploads/{id}?format=csv&outcome={}", o.code()),
    };
    let (outcome_code, outcome_description, outcome_class) = outcome_tag(&summary);
    // The engine's message often is the outcome's own words: not said twice.
    let message = summary
        .message
        .clone()
        .filter(|m| *m != outcome_description);
    let title = format!("Upload report: {}", file_title(&summary));
    let page = ReportPage {
        layout: Layout::signed_in(&user, &title, "/la/uploads").wide(),
        id: id.to_string(),
        csrf_token: user.csrf.clone(),
        heading: title.clone(),
        outcome_code,
        outcome_description,
        outcome_class,
        message,
        held: summary.status == UploadStatus::HeldForConfirmation,
        duplicate_of: summary.duplicate_of.as_ref().map(ToString::to_string),
        summary: summary_rows(&summary),
        outcomes: ALL_OUTCOMES
            .iter()
            .map(|o| OutcomeCount {
                code: o.code(),
                description: o.description(),
                count: summary.counts.by_outcome.get(o).copied().unwrap_or(0),
                selected: Some(*o) == outcome,
            })
            .collect(),
        filter,
        rows: rows
            .iter()
            .map(|r| RowView {
                row: r.row,
                nhs_number: grouped_text(&r.nhs_number),
                local_id: r.local_id.clone().unwrap_or_default(),
                detail_code: r.detail.map_or("", |d| d.code()),
                code: r.outcome.code(),
                accepted: r.outcome.is_accepted(),
                message: row_message(r),
            })
            .collect(),
        rows_heading,
        csv_href,
        previous,
        next,
    };
    Ok(page::html(StatusCode::OK, &page))
}

/// The row number page `page_no` starts after. Without a filter rows are numbered 1, 2, 3…
/// so it is computed; with one, the rows before the page are read (a chunk at a time) to find it.
async fn start_after(
    state: &AppState,
    cap: &LaUpload,
    summary: &UploadSummary,
    outcome: Option<RecordOutcome>,
    page_no: u64,
) -> Result<u64, ApiError> {
    let skip = (page_no - 1) * u64::from(PAGE);
    if outcome.is_none() || skip == 0 {
        return Ok(skip);
    }
    let (mut after, mut left) = (0u64, skip);
    while left > 0 {
        let chunk = u32::try_from(left.min(u64::from(SKIP_CHUNK))).unwrap_or(SKIP_CHUNK);
        let rows = read_rows(state, cap, summary, after, chunk, outcome).await?;
        match rows.last() {
            Some(last) => after = last.row,
            None => break,
        }
        left -= rows.len() as u64;
        if rows.len() < chunk as usize {
            break;
        }
    }
    Ok(after)
}

/// A row's message as a sentence (the detail code has its own column, never a prefix).
fn row_message(r: &cpis_domain::report::RowResult) -> String {
    let mut text = match r.message.as_deref().map(sentence) {
        Some(m) if !m.is_empty() => m,
        _ => sentence(r.outcome.description()),
    };
    if let Some(new) = r.new_nhs_number {
        text.push_str(&format!(" The new NHS number is {}.", new.grouped()));
    }
    text
}

fn summary_rows(s: &UploadSummary) -> Vec<SummaryRow> {
    let mut rows = Vec::new();
    if let Some(name) = web_file_name(s) {
        rows.push(SummaryRow {
            key: "File name",
            value: name.to_owned(),
        });
    }
    rows.extend([
        SummaryRow {
            key: "File ID",
            value: s.meta.file_id.clone(),
        },
        SummaryRow {
            key: "Contents",
            value: match s.meta.mode {
                cpis_domain::upload::UploadMode::Delta => "Changes only (delta)".into(),
                cpis_domain::upload::UploadMode::Full => "Complete list (full)".into(),
            },
        },
        SummaryRow {
            key: "File date",
            value: super::format::long_date(s.meta.file_date),
        },
        SummaryRow {
            key: "Received",
            value: when(s.received_at),
        },
        SummaryRow {
            key: "Sent by",
            value: channel_name(&s.meta.channel).into(),
        },
        SummaryRow {
            key: "Rows",
            value: s.counts.rows.to_string(),
        },
        SummaryRow {
            key: "Accepted",
            value: s.counts.accepted.to_string(),
        },
        SummaryRow {
            key: "Rejected",
            value: s.counts.rejected.to_string(),
        },
    ]);
    if s.counts.plans_ended > 0 {
        rows.push(SummaryRow {
            key: "Plans ended (not in the full list)",
            value: s.counts.plans_ended.to_string(),
        });
    }
    if s.counts.deleted > 0 {
        rows.push(SummaryRow {
            key: "Deleted",
            value: s.counts.deleted.to_string(),
        });
    }
    rows
}
