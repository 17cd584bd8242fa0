//! The auditor's pages: `GET /audit` (the search form and the chain check), `POST /audit` (search
//! the trail: the same `AuditQuery` as `GET /api/v1/audit`, audited the same way) and
//! `POST /audit/verify` (walk the hash chain, as `GET /api/v1/audit/verify`).
//!
//! Searches are POSTed forms (with CSRF): an NHS number searched for never appears in a URL, so
//! never in browser history, referrers or access logs. "Older entries" posts the same filters
//! again with the cursor. The outcome filter is applied here, on top of the store's query (which
//! has none): a page scans at most [`SCAN_LIMIT`] entries, and its cursor continues from the
//! last entry scanned, so paging never skips one.

use super::format;
use super::forms::SignedInForm;
use super::page::{self, FieldError, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, NaiveDate};
use cpis_api::AppState;
use cpis_auth::capability::Auditor;
use cpis_auth::Principal;
use cpis_core::audit_search::{AuditTrail, SearchNote};
use cpis_domain::{AuditOutcome, AuditRecord, NhsNumber};
use cpis_store::{AuditQuery, AuditVerification};
use serde::Deserialize;

/// Entries shown per page.
pub const PAGE_SIZE: usize = 50;
/// Most entries one page reads from the store while filtering by outcome.
const SCAN_LIMIT: usize = 5_000;
/// Entries read from the store per round.
const BATCH: u32 = 500;

#[derive(Deserialize, Default, Clone)]
pub struct SearchForm {
    #[serde(default)]
    nhs_number: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// The paging cursor: entries with a lower sequence number.
    #[serde(default)]
    before: String,
}

struct EntryView {
    seq: u64,
    time: String,
    who: String,
    who_detail: String,
    action: String,
    nhs_number: String,
    outcome: &'static str,
    outcome_tag: &'static str,
    detail: String,
}

struct VerifyView {
    intact: bool,
    summary: String,
    head_hash: Option<String>,
}

struct OutcomeOption {
    value: &'static str,
    text: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "audit_search.html")]
struct AuditPage {
    layout: Layout,
    csrf_token: String,
    errors: Vec<FieldError>,
    form: SearchForm,
    outcomes: Vec<OutcomeOption>,
    /// `None` before a search.
    results: Option<Vec<EntryView>>,
    /// What the results are, in words.
    results_summary: String,
    /// The cursor for "Older entries", when there may be more.
    next_before: Option<u64>,
    verification: Option<VerifyView>,
}

impl AuditPage {
    fn new(user: &SignedIn, form: SearchForm) -> Self {
        let outcomes = [
            ("", "Any outcome"),
            ("success", "Success"),
            ("denied", "Denied"),
            ("failure", "Failure"),
        ]
        .into_iter()
        .map(|(value, text)| OutcomeOption {
            value,
            text,
            selected: form.outcome == value,
        })
        .collect();
        AuditPage {
            layout: Layout::signed_in(user, "Audit trail", "/audit").wide(),
            csrf_token: user.csrf.clone(),
            errors: Vec::new(),
            form,
            outcomes,
            results: None,
            results_summary: String::new(),
            next_before: None,
            verification: None,
        }
    }

    fn error_for(&self, field: &str) -> Option<&str> {
        page::error_for(&self.errors, field)
    }
}

async fn auditor(state: &AppState, user: &SignedIn, action: &str) -> Result<Auditor, WebError> {
    Ok(user
        .caller()
        .grant(state, action, Principal::auditor)
        .await?)
}

/// `GET /audit`: the empty search form. A query string is dropped (searches are POSTed).
pub async fn form(
    State(state): State<AppState>,
    user: SignedIn,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    if uri.query().is_some() {
        return Ok(page::see_other("/audit"));
    }
    auditor(&state, &user, "audit.search").await?;
    Ok(page::html(
        StatusCode::OK,
        &AuditPage::new(&user, SearchForm::default()),
    ))
}

fn trimmed(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// A date as the form's hint shows it: day/month/year (`20/11/2026`; `-`, `.` or spaces also
/// separate), or ISO `2026-11-20` as the API takes it.
fn date(s: &str) -> Result<Option<NaiveDate>, ()> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if let Ok(d) = cpis_domain::parse_iso_date(t) {
        return Ok(Some(d));
    }
    let parts: Vec<&str> = t
        .split(['/', '-', '.', ' '])
        .filter(|p| !p.is_empty())
        .collect();
    let [d, m, y] = parts[..] else {
        return Err(());
    };
    if y.len() != 4 || d.len() > 2 || m.len() > 2 {
        return Err(());
    }
    let num = |p: &str| p.parse::<u32>().map_err(|_| ());
    let year = i32::try_from(num(y)?).map_err(|_| ())?;
    NaiveDate::from_ymd_opt(year, num(m)?, num(d)?)
        .map(Some)
        .ok_or(())
}

/// A date as the form shows it: `20/11/2026`.
pub(super) fn form_date(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

/// The first moment of a UK calendar day, in UTC: midnight GMT, or 23:00 UTC the day before
/// while British Summer Time applies (the page shows times in UK time).
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: midnight"
)]
fn uk_midnight(d: NaiveDate) -> chrono::DateTime<chrono::Utc> {
    let utc = d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let bst = utc - Duration::hours(1);
    if format::is_bst(bst) {
        bst
    } else {
        utc
    }
}

/// What a valid search form asks for.
struct Search {
    query: AuditQuery,
    /// Kept here, on top of the store's query (which has no outcome filter).
    outcome: Option<AuditOutcome>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

impl Search {
    /// The filters in words (`user demo.admin`, `from 20/11/2026`…); the NHS number only when
    /// asked for (an audit entry holds it as its subject, not in its text).
    fn filters(&self, with_nhs_number: bool) -> Vec<String> {
        let q = &self.query;
        let mut out = Vec::new();
        if let (true, Some(n)) = (with_nhs_number, q.subject_nhs) {
            out.push(format!("NHS number {}", n.grouped()));
        }
        if let Some(u) = &q.actor_id {
            out.push(format!("user {u}"));
        }
        if let Some(o) = &q.organisation {
            out.push(format!("organisation {o}"));
        }
        if let Some(a) = &q.action_prefix {
            out.push(format!("action starting {a}"));
        }
        if let Some(o) = self.outcome {
            out.push(format!("outcome {}", o.code()));
        }
        if let Some(d) = self.from {
            out.push(format!("from {}", form_date(d)));
        }
        if let Some(d) = self.to {
            out.push(format!("to {}", form_date(d)));
        }
        out
    }

    /// The `audit.search` entry's text: a sentence, never debug output.
    fn audit_detail(&self) -> String {
        let filters = self.filters(false);
        let nhs = if self.query.subject_nhs.is_some() {
            " for the NHS number in this entry"
        } else {
            ""
        };
        if filters.is_empty() {
            format!("Searched the audit trail on the web page{nhs}, with no other filters.")
        } else {
            format!(
                "Searched the audit trail on the web page{nhs}: {} (UK dates).",
                filters.join(", ")
            )
        }
    }

    /// The line above the results.
    fn summary(&self) -> String {
        let filters = self.filters(true);
        if filters.is_empty() {
            "All entries, newest first.".to_owned()
        } else {
            format!("Entries with {}, newest first.", filters.join(", "))
        }
    }
}

/// The store query a form asks for, the outcome to keep, or the form's errors.
fn query(form: &SearchForm) -> Result<Search, Vec<FieldError>> {
    let mut errors = Vec::new();
    let subject = match trimmed(&form.nhs_number) {
        None => None,
        Some(n) => match NhsNumber::parse(&n) {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push(FieldError {
                    field: "nhs-number",
                    message: "Enter a valid 10-digit NHS number, or leave it empty".into(),
                });
                None
            }
        },
    };
    let outcome = match form.outcome.as_str() {
        "" => None,
        code => match AuditOutcome::from_code(code) {
            Some(o) => Some(o),
            None => {
                errors.push(FieldError {
                    field: "outcome",
                    message: "Select an outcome from the list".into(),
                });
                None
            }
        },
    };
    let from = date(&form.from).unwrap_or_else(|()| {
        errors.push(FieldError {
            field: "from",
            message: "Enter the start date as a real date, for example 20/11/2026".into(),
        });
        None
    });
    let to = date(&form.to).unwrap_or_else(|()| {
        errors.push(FieldError {
            field: "to",
            message: "Enter the end date as a real date, for example 20/11/2026".into(),
        });
        None
    });
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            errors.push(FieldError {
                field: "to",
                message: "The end date must be the same as or after the start date".into(),
            });
        }
    }
    // A cursor that does not parse starts from the newest entry again.
    let before = form.before.trim().parse::<u64>().ok().filter(|b| *b > 0);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Search {
        query: AuditQuery {
            subject_nhs: subject,
            actor_id: trimmed(&form.user),
            organisation: trimmed(&form.organisation).map(|o| o.to_ascii_uppercase()),
            action_prefix: trimmed(&form.action),
            from: from.map(uk_midnight),
            // The store's `to` is inclusive: the last microsecond of the end date (UK time).
            to: to.map(|t| uk_midnight(t + Duration::days(1)) - Duration::microseconds(1)),
            before_seq: before,
            limit: BATCH,
        },
        outcome,
        from,
        to,
    })
}

fn view(rec: &AuditRecord) -> EntryView {
    let e = &rec.entry;
    let (outcome, outcome_tag) = match e.outcome {
        AuditOutcome::Success => ("Success", "nhsuk-tag--green"),
        AuditOutcome::Denied => ("Denied", "nhsuk-tag--red"),
        AuditOutcome::Failure => ("Failure", "nhsuk-tag--orange"),
    };
    EntryView {
        seq: rec.seq,
        time: format::uk_time(e.time),
        who: e.actor.name.clone(),
        who_detail: match &e.actor.organisation {
            Some(org) => format!("{} ({org})", e.actor.id),
            None => e.actor.id.clone(),
        },
        action: e.action.clone(),
        nhs_number: e.subject_nhs.map(|n| n.grouped()).unwrap_or_default(),
        outcome,
        outcome_tag,
        detail: e.detail.clone().unwrap_or_default(),
    }
}

/// `POST /audit`: search. The search itself is audited (`audit.search`, with the NHS number
/// searched for as the entry's subject), as the API does.
pub async fn search(
    State(state): State<AppState>,
    SignedInForm { user, form }: SignedInForm<SearchForm>,
) -> Result<Response, WebError> {
    let cap = auditor(&state, &user, "audit.search").await?;
    let search = match query(&form) {
        Ok(q) => q,
        Err(errors) => {
            let mut page = AuditPage::new(&user, form);
            page.form.nhs_number = page.form.nhs_number.chars().take(40).collect();
            page.form.from = page.form.from.chars().take(40).collect();
            page.form.to = page.form.to.chars().take(40).collect();
            page.errors = errors;
            page.layout = page.layout.with_errors(true);
            return Ok(page::html(StatusCode::BAD_REQUEST, &page));
        }
    };
    let note = SearchNote {
        now: state.clock.now(),
        trace_id: Some(user.trace_id.clone()),
        detail: search.audit_detail(),
    };
    let summary = search.summary();
    let mut form = form;
    // Dates shown back as the hint writes them.
    form.from = search.from.map(form_date).unwrap_or_default();
    form.to = search.to.map(form_date).unwrap_or_default();
    let store = state.store.clone();
    let (q, outcome) = (search.query, search.outcome);
    let found = tokio::task::spawn_blocking(move || {
        AuditTrail::new(store.as_ref(), &cap).search_page(q, outcome, PAGE_SIZE, SCAN_LIMIT, note)
    })
    .await??;
    let mut page = AuditPage::new(&user, form);
    page.results = Some(found.entries.iter().map(view).collect());
    page.results_summary = summary;
    page.next_before = found.next_before;
    Ok(page::html(StatusCode::OK, &page))
}

#[derive(Deserialize)]
pub struct VerifyForm {}

/// `POST /audit/verify`: walks the whole chain and shows the result on the search page.
pub async fn verify(
    State(state): State<AppState>,
    SignedInForm { user, .. }: SignedInForm<VerifyForm>,
) -> Result<Response, WebError> {
    let cap = auditor(&state, &user, "audit.verify").await?;
    let store = state.store.clone();
    let v = tokio::task::spawn_blocking(move || AuditTrail::new(store.as_ref(), &cap).verify())
        .await??;
    let mut page = AuditPage::new(&user, SearchForm::default());
    page.verification = Some(match v {
        AuditVerification::Intact {
            entries,
            head_seq,
            head_hash,
        } => VerifyView {
            intact: true,
            summary: format!(
                "The audit chain is intact: all {entries} entries check out, up to entry {head_seq}."
            ),
            head_hash: Some(head_hash),
        },
        AuditVerification::Broken { seq, problem } => VerifyView {
            intact: false,
            summary: format!("The audit chain is broken at entry {seq}: {problem}."),
            head_hash: None,
        },
    });
    Ok(page::html(StatusCode::OK, &page))
}
