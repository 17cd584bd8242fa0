//! `GET /la/records`: the local authority's own records (never another LA's), paged
//! (`?page=2`), with a search box (`?q=`): ten digits search by NHS number exactly, anything
//! else by a part of the child's name or the LA's local ID.

use super::la_pagination::PageLink;
use super::la_upload::upload_capability;
use super::page::{self, FieldError, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use cpis_api::ApiError;
use cpis_api::AppState;
use cpis_domain::{NhsNumber, PlanType};
use cpis_store::{RecordQuery, RecordSearch, StoredRecord};
use serde::Deserialize;

const PAGE: u32 = 25;
/// The longest search accepted (names and local ids are short).
const MAX_SEARCH: usize = 100;

#[derive(Deserialize)]
pub struct RecordsQuery {
    q: Option<String>,
    page: Option<String>,
}

struct PlanView {
    kind: &'static str,
    state: String,
    active: bool,
}

struct RecordView {
    name: String,
    born: String,
    nhs_number: String,
    nhs_digits: String,
    local_id: String,
    sensitive: bool,
    plans: Vec<PlanView>,
}

#[derive(Template)]
#[template(path = "la_records.html")]
struct RecordsPage {
    layout: Layout,
    errors: Vec<FieldError>,
    q: String,
    records: Vec<RecordView>,
    heading: String,
    previous: Option<PageLink>,
    next: Option<PageLink>,
    /// The user may export access histories (`la:notifications`): each record links to its own.
    may_export: bool,
}

impl RecordsPage {
    fn error_for(&self, field: &str) -> Option<&str> {
        page::error_for(&self.errors, field)
    }
}

/// What the search box asks for: `Err` with a message for an NHS number that cannot be one.
fn search_of(q: &str) -> Result<Option<RecordSearch>, &'static str> {
    let q = q.trim();
    if q.is_empty() {
        return Ok(None);
    }
    let digits = q.chars().filter(char::is_ascii_digit).count();
    if digits == 10 && q.chars().all(|c| c.is_ascii_digit() || c == ' ') {
        return NhsNumber::parse(q)
            .map(|n| Some(RecordSearch::Nhs(n)))
            .map_err(|_| "This is not a valid NHS number. Check it and enter it again");
    }
    Ok(Some(RecordSearch::Text(q.to_owned())))
}

fn plan_kind(t: PlanType) -> &'static str {
    match t {
        PlanType::Cpp => "Child protection plan",
        PlanType::Lac => "Looked after child",
        PlanType::Ucpp => "Unborn child protection plan",
    }
}

fn view(r: &StoredRecord, today: chrono::NaiveDate) -> RecordView {
    let name = [r.given_name.as_deref(), r.family_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    RecordView {
        name: if name.is_empty() {
            "Name not given".into()
        } else {
            name
        },
        born: r
            .date_of_birth
            .map(super::format::long_date)
            .unwrap_or_default(),
        nhs_number: r.nhs_number.grouped(),
        nhs_digits: r.nhs_number.digits(),
        local_id: r.local_id.clone().unwrap_or_default(),
        sensitive: r.sensitive,
        plans: r
            .plans
            .iter()
            .map(|p| {
                let ended = p.end().filter(|e| *e <= today);
                PlanView {
                    kind: plan_kind(p.plan_type()),
                    state: match ended {
                        Some(e) => format!("ended {}", super::format::long_date(e)),
                        None => format!("since {}", super::format::long_date(p.start())),
                    },
                    active: ended.is_none(),
                }
            })
            .collect(),
    }
}

/// `GET /la/records`.
pub async fn records(
    State(state): State<AppState>,
    user: SignedIn,
    Query(q): Query<RecordsQuery>,
) -> Result<Response, WebError> {
    let cap = upload_capability(&state, &user, "records.list").await?;
    let text: String = q.q.unwrap_or_default().chars().take(MAX_SEARCH).collect();
    let page_no = match q.page.as_deref().map(str::trim) {
        None | Some("") => 1,
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|p| (1..=100_000).contains(p))
            .ok_or(ApiError::NotFound)?,
    };
    let mut page = RecordsPage {
        layout: Layout::signed_in(&user, "Records", "/la/records").wide(),
        errors: Vec::new(),
        q: text.clone(),
        records: Vec::new(),
        heading: String::new(),
        previous: None,
        next: None,
        may_export: user.principal.la_evidence().is_ok(),
    };
    let search = match search_of(&text) {
        Ok(s) => s,
        Err(message) => {
            page.layout = page.layout.with_errors(true);
            page.errors.push(FieldError {
                field: "q",
                message: message.into(),
            });
            return Ok(page::html(StatusCode::BAD_REQUEST, &page));
        }
    };
    let query = RecordQuery {
        search: search.clone(),
        offset: (page_no - 1) * u64::from(PAGE),
        limit: PAGE + 1,
    };
    let store = state.store.clone();
    let mut found = tokio::task::spawn_blocking(move || {
        cpis_core::records::LaRecords::new(store.as_ref(), &cap).search(&query)
    })
    .await??;
    let more = found.len() > PAGE as usize;
    found.truncate(PAGE as usize);
    let today = state.clock.today();
    page.records = found.iter().map(|r| view(r, today)).collect();
    let link = |p: u64| {
        let mut pairs = Vec::new();
        if !text.trim().is_empty() {
            pairs.push(("q", text.trim().to_owned()));
        }
        if p > 1 {
            pairs.push(("page", p.to_string()));
        }
        match serde_urlencoded::to_string(&pairs) {
            Ok(qs) if !qs.is_empty() => format!("/la/records?{qs}"),
            _ => "/la/records".to_owned(),
        }
    };
    page.previous = (page_no > 1).then(|| PageLink {
        href: link(page_no - 1),
        label: format!("Page {}", page_no - 1),
    });
    page.next = more.then(|| PageLink {
        href: link(page_no + 1),
        label: format!("Page {}", page_no + 1),
    });
    page.heading = match (&search, page.records.len()) {
        (None, _) => format!("Your records, page {page_no}"),
        (Some(_), 0) => "No records match your search".into(),
        (Some(_), _) => format!("Records matching your search, page {page_no}"),
    };
    Ok(page::html(StatusCode::OK, &page))
}
