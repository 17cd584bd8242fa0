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
use crate::error::{ApiError, WebError};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Duration, NaiveDate};
use cpis_auth::Principal;
use cpis_domain::{AuditEntry, AuditOutcome, AuditRecord, NhsNumber};
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
            next_before: None,
            verification: None,
        }
    }

    fn error_for(&self, field: &str) -> Option<&str> {
        page::error_for(&self.errors, field)
    }
}

async fn auditor(state: &AppState, user: &SignedIn, action: &str) -> Result<(), WebError> {
    user.caller()
        .grant(state, action, Principal::auditor)
        .await?;
    Ok(())
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

fn date(s: &str) -> Result<Option<NaiveDate>, ()> {
    match s.trim() {
        "" => Ok(None),
        t => cpis_domain::parse_iso_date(t).map(Some).map_err(|_| ()),
    }
}

/// The store query a form asks for, the outcome to keep, or the form's errors.
fn query(form: &SearchForm) -> Result<(AuditQuery, Option<AuditOutcome>), Vec<FieldError>> {
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
            message: "Enter the start date as a real date, for example 2026-11-20".into(),
        });
        None
    });
    let to = date(&form.to).unwrap_or_else(|()| {
        errors.push(FieldError {
            field: "to",
            message: "Enter the end date as a real date, for example 2026-11-20".into(),
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
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    Ok((
        AuditQuery {
            subject_nhs: subject,
            actor_id: trimmed(&form.user),
            organisation: trimmed(&form.organisation).map(|o| o.to_ascii_uppercase()),
            action_prefix: trimmed(&form.action),
            from: from.map(midnight),
            // The store's `to` is inclusive: the last microsecond of the end date.
            to: to.map(|t| midnight(t) + Duration::days(1) - Duration::microseconds(1)),
            before_seq: before,
            limit: BATCH,
        },
        outcome,
    ))
}

/// One page of matching entries and the cursor after it (if the trail may go on).
fn page_of(
    store: &dyn cpis_store::Store,
    mut q: AuditQuery,
    outcome: Option<AuditOutcome>,
) -> Result<(Vec<AuditRecord>, Option<u64>), cpis_store::StoreError> {
    let mut found = Vec::new();
    let mut scanned = 0usize;
    loop {
        let batch = store.audit_search(&q)?;
        let full = batch.len() == q.limit as usize;
        for rec in batch {
            scanned += 1;
            let seq = rec.seq;
            if outcome.is_none_or(|o| rec.entry.outcome == o) {
                found.push(rec);
            }
            if found.len() == PAGE_SIZE || scanned >= SCAN_LIMIT {
                return Ok((found, (seq > 1).then_some(seq)));
            }
            q.before_seq = Some(seq);
        }
        if !full {
            return Ok((found, None));
        }
    }
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
    auditor(&state, &user, "audit.search").await?;
    let (q, outcome) = match query(&form) {
        Ok(q) => q,
        Err(errors) => {
            let mut page = AuditPage::new(&user, form);
            page.form.nhs_number = page.form.nhs_number.chars().take(40).collect();
            page.errors = errors;
            page.layout = page.layout.with_errors(true);
            return Ok(page::html(StatusCode::BAD_REQUEST, &page));
        }
    };
    let detail = format!(
        "user={:?} organisation={:?} action={:?} outcome={:?} from={:?} to={:?} (web)",
        q.actor_id,
        q.organisation,
        q.action_prefix,
        outcome.map(AuditOutcome::code),
        q.from,
        q.to
    );
    append(&state, &user, "audit.search", detail, q.subject_nhs).await?;
    let store = state.store.clone();
    let (records, next) =
        tokio::task::spawn_blocking(move || page_of(store.as_ref(), q, outcome)).await??;
    let mut page = AuditPage::new(&user, form);
    page.results = Some(records.iter().map(view).collect());
    page.next_before = next;
    Ok(page::html(StatusCode::OK, &page))
}

async fn append(
    state: &AppState,
    user: &SignedIn,
    action: &str,
    detail: String,
    subject: Option<NhsNumber>,
) -> Result<(), ApiError> {
    let entry = AuditEntry {
        time: state.clock.now(),
        actor: user.principal.audit_actor(),
        action: action.into(),
        subject_nhs: subject,
        trace_id: Some(user.trace_id.clone()),
        outcome: AuditOutcome::Success,
        detail: Some(detail),
    };
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.append_audit(&entry)).await??;
    Ok(())
}

#[derive(Deserialize)]
pub struct VerifyForm {}

/// `POST /audit/verify`: walks the whole chain and shows the result on the search page.
pub async fn verify(
    State(state): State<AppState>,
    SignedInForm { user, .. }: SignedInForm<VerifyForm>,
) -> Result<Response, WebError> {
    auditor(&state, &user, "audit.verify").await?;
    let store = state.store.clone();
    let v = tokio::task::spawn_blocking(move || store.audit_verify()).await??;
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
