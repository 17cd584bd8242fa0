//! The evidence export (docs/WORKFLOW.md "Evidence export"): a child's whole access history for
//! an LA's case conference, from the records page. `GET /la/records/{nhs}/history.csv` streams
//! it as CSV a page of the store at a time; `GET /la/records/{nhs}/history` is a printable page
//! (print CSS; the browser's "Save as PDF" makes the PDF). Only for a child the LA holds a record
//! for: anything else is 404. Every export and refusal is audited.

use super::page::{self, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use cpis_api::{ApiError, AppState};
use cpis_auth::capability::LaEvidence;
use cpis_auth::Principal;
use cpis_core::evidence::{self, Export};
use cpis_domain::{Access, NhsNumber, PlanType};
use std::sync::Arc;

/// The most accesses the printable page shows; a longer history says so and points to the CSV
/// (which has them all). Nobody prints more for a case conference.
pub const PRINT_LIMIT: usize = 2000;

/// The CSV's columns.
const COLUMNS: [&str; 12] = [
    "time_utc",
    "time_uk",
    "nhs_number",
    "organisation_ods",
    "organisation_name",
    "setting_type",
    "user_name",
    "role",
    "user_id",
    "sds_user_id",
    "sds_role_profile_id",
    "access_id",
];

/// The export for the child in the path, or 404 (audited) when the LA holds no record of it.
async fn open(
    state: &AppState,
    user: &SignedIn,
    nhs: &str,
    format: &'static str,
) -> Result<(LaEvidence, Export), WebError> {
    let cap = user
        .caller()
        .grant(state, "evidence.export", Principal::la_evidence)
        .await?;
    let nhs = NhsNumber::parse(nhs).map_err(|_| ApiError::NotFound)?;
    let store = state.store.clone();
    let clock = state.clock.clone();
    let trace = Some(user.trace_id.clone());
    let c = cap.clone();
    let export = tokio::task::spawn_blocking(move || {
        evidence::open(store.as_ref(), clock.as_ref(), &c, nhs, format, trace)
    })
    .await??
    .ok_or(ApiError::NotFound)?;
    Ok((cap, export))
}

/// A cell a spreadsheet will not run as a formula: text starting with `=`, `+`, `-`, `@`, a tab
/// or a carriage return gets a leading `'` (OWASP's advice for CSV injection).
pub fn safe_cell(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

fn csv_row(a: &Access) -> Vec<String> {
    let x = &a.accessor;
    [
        a.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        super::format::uk_time(a.time),
        a.nhs_number.digits(),
        x.organisation.as_str().to_owned(),
        x.organisation_name.clone(),
        x.setting_type
            .map(|t| t.code().to_owned())
            .unwrap_or_default(),
        x.user_name.clone(),
        x.role.clone(),
        x.user_id.clone(),
        x.nhs.sds_user_id.clone().unwrap_or_default(),
        x.nhs.role_profile_id.clone().unwrap_or_default(),
        a.id.clone(),
    ]
    .iter()
    .map(|c| safe_cell(c))
    .collect()
}

/// CSV text of some rows (the header when `header`).
fn csv_chunk(header: bool, rows: &[(u64, Access)]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if header {
        w.write_record(COLUMNS)?;
    }
    for (_, a) in rows {
        w.write_record(csv_row(a))?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// `GET /la/records/{nhs}/history.csv`: the whole history, oldest first, streamed a store page
/// at a time (a long history is never held in memory at once).
pub async fn csv(
    State(state): State<AppState>,
    user: SignedIn,
    Path(nhs): Path<String>,
) -> Result<Response, WebError> {
    let (_, export) = open(&state, &user, &nhs, "csv").await?;
    let filename = format!("access-history-{}.csv", export.nhs.digits());
    let export = Arc::new(export);
    let store = state.store.clone();
    // (cursor, first page, finished)
    let pages = futures_util::stream::unfold((0u64, true, false), move |(after, first, done)| {
        let store = store.clone();
        let export = export.clone();
        async move {
            if done {
                return None;
            }
            let read = tokio::task::spawn_blocking(move || export.page(store.as_ref(), after))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r.map_err(std::io::Error::other));
            let page = match read {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "access history export stopped");
                    return Some((Err(e), (after, false, true)));
                }
            };
            let next = page.last().map_or(after, |(seq, _)| *seq);
            let finished = page.len() < evidence::PAGE as usize;
            if page.is_empty() && !first {
                return None;
            }
            let chunk = csv_chunk(first, &page)
                .map(Bytes::from)
                .map_err(std::io::Error::other);
            Some((chunk, (next, false, finished)))
        }
    });
    let mut resp = Response::new(Body::from_stream(pages));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

struct AccessView {
    when: String,
    organisation: String,
    ods: String,
    setting: String,
    who: String,
    role: String,
}

struct PlanView {
    kind: &'static str,
    dates: String,
}

#[derive(Template)]
#[template(path = "la_history.html")]
struct HistoryPage {
    layout: Layout,
    name: String,
    nhs_number: String,
    nhs_digits: String,
    born: String,
    local_id: String,
    sensitive: bool,
    plans: Vec<PlanView>,
    generated: String,
    generated_by: String,
    accesses: Vec<AccessView>,
    more: bool,
    print_limit: usize,
}

fn plan_kind(t: PlanType) -> &'static str {
    match t {
        PlanType::Cpp => "Child protection plan",
        PlanType::Lac => "Looked after child",
        PlanType::Ucpp => "Unborn child protection plan (the mother's record)",
    }
}

/// `GET /la/records/{nhs}/history`: the printable page.
pub async fn page(
    State(state): State<AppState>,
    user: SignedIn,
    Path(nhs): Path<String>,
) -> Result<Response, WebError> {
    let (cap, export) = open(&state, &user, &nhs, "print").await?;
    let export = Arc::new(export);
    // Read a page at a time, keeping at most one access beyond what the page shows (to know
    // whether there are more).
    let mut accesses = Vec::new();
    let mut after = 0;
    loop {
        let (store, e) = (state.store.clone(), export.clone());
        let page = tokio::task::spawn_blocking(move || e.page(store.as_ref(), after)).await??;
        let full = page.len() == evidence::PAGE as usize;
        if let Some((last, _)) = page.last() {
            after = *last;
        }
        for (_, a) in &page {
            if accesses.len() > PRINT_LIMIT {
                break;
            }
            accesses.push(AccessView {
                when: super::format::uk_time(a.time),
                organisation: a.accessor.organisation_name.clone(),
                ods: a.accessor.organisation.as_str().to_owned(),
                setting: a
                    .accessor
                    .setting_type
                    .map(super::format::setting)
                    .unwrap_or_default(),
                who: a.accessor.user_name.clone(),
                role: a.accessor.role.clone(),
            });
        }
        if !full || accesses.len() > PRINT_LIMIT {
            break;
        }
    }
    let more = accesses.len() > PRINT_LIMIT;
    accesses.truncate(PRINT_LIMIT);
    let r = &export.record;
    let name = [r.given_name.as_deref(), r.family_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let actor = cap.actor();
    let page = HistoryPage {
        layout: Layout::signed_in(&user, "Access history", "/la/records").wide(),
        name: if name.is_empty() {
            "Name not given".into()
        } else {
            name
        },
        nhs_number: export.nhs.grouped(),
        nhs_digits: export.nhs.digits(),
        born: r
            .date_of_birth
            .map(super::format::long_date)
            .unwrap_or_default(),
        local_id: r.local_id.clone().unwrap_or_default(),
        sensitive: r.sensitive,
        plans: r
            .plans
            .iter()
            .map(|p| PlanView {
                kind: plan_kind(p.plan_type()),
                dates: match p.end() {
                    Some(e) => format!(
                        "{} to {}",
                        super::format::long_date(p.start()),
                        super::format::long_date(e)
                    ),
                    None => format!("since {}", super::format::long_date(p.start())),
                },
            })
            .collect(),
        generated: super::format::uk_time(state.clock.now()),
        generated_by: format!("{} ({})", actor.name, actor.role),
        accesses,
        more,
        print_limit: PRINT_LIMIT,
    };
    let mut resp = page::html(StatusCode::OK, &page);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_quoted() {
        for bad in ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(safe_cell(bad), format!("'{bad}"));
        }
        for good in ["Dr Smith", "2026-11-20T09:00:00Z", "", "a=b"] {
            assert_eq!(safe_cell(good), good);
        }
    }
}
