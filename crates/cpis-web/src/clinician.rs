//! The clinician journey: `GET /lookup` (the NHS number form) and `POST /lookup` (look the child
//! up and show the flag panels). The NHS number travels only in the POST body: never in a URL,
//! so never in browser history or access logs. The lookup is the one every channel uses
//! (`cpis_api::lookup_flow`): it records the access and may notify the LA, hence a POST with CSRF.

use super::format;
use super::forms::SignedInForm;
use super::page::{self, FieldError, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use cpis_api::AppState;
use cpis_auth::{capability, Principal};
use cpis_core::lookup::LookupResult;
use cpis_core::AccessHistory;
use cpis_domain::office_hours::{self, CallNow};
use cpis_domain::{
    AccessKind, LocalAuthority, NhsNumber, NhsNumberError, OfficeHours, Plan, PlanType,
    PlanVisibility, Subject,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The NHS number errors, worded once: the server uses them and renders them into the field's
/// `data-error-*` attributes for the JavaScript check (`assets/nhs-number.js`).
pub struct NhsNumberMessages {
    pub empty: &'static str,
    pub characters: &'static str,
    pub length: &'static str,
    pub check_digit: &'static str,
}

pub const MESSAGES: NhsNumberMessages = NhsNumberMessages {
    empty: "Enter the child's NHS number",
    characters: "NHS number must only include numbers and spaces",
    length: "NHS number must be 10 digits",
    check_digit: "This is not a valid NHS number. Check it and enter it again",
};

fn message(e: &NhsNumberError) -> &'static str {
    match e {
        NhsNumberError::Empty => MESSAGES.empty,
        NhsNumberError::NotDigits => MESSAGES.characters,
        NhsNumberError::WrongLength(_) => MESSAGES.length,
        NhsNumberError::BadCheckDigit => MESSAGES.check_digit,
    }
}

#[derive(Template)]
#[template(path = "lookup.html")]
struct LookupPage {
    layout: Layout,
    errors: Vec<FieldError>,
    csrf_token: String,
    nhs_number: String,
    messages: &'static NhsNumberMessages,
    notify_statement: String,
}

impl LookupPage {
    fn new(user: &SignedIn, cap: &capability::Lookup) -> Self {
        LookupPage {
            layout: Layout::signed_in(user, "Look up a child", "/lookup"),
            errors: Vec::new(),
            csrf_token: user.csrf.clone(),
            nhs_number: String::new(),
            messages: &MESSAGES,
            notify_statement: notify_statement(cap),
        }
    }

    fn error_for(&self, field: &str) -> Option<&str> {
        page::error_for(&self.errors, field)
    }
}

/// What looking a child up from here will do (see docs/WEB.md, "Notifying lookups").
fn notify_statement(cap: &capability::Lookup) -> String {
    let unscheduled = cap
        .accessor()
        .setting_type
        .is_some_and(|t| t.is_unscheduled());
    if cap.may_notify() && unscheduled {
        format!(
            "If there is CP-IS information for this NHS number, the local authority will be told the child, or for an unborn child the mother, was seen at {}.",
            cap.accessor().organisation_name
        )
    } else {
        "Your lookups are silent: local authorities are not told. Each lookup is recorded for audit."
            .into()
    }
}

async fn lookup_capability(
    state: &AppState,
    user: &SignedIn,
) -> Result<capability::Lookup, WebError> {
    Ok(user
        .caller()
        .grant(state, "lookup", Principal::lookup)
        .await?)
}

/// `GET /lookup`. A query string is never read (an NHS number must not be in a URL): any query
/// is dropped by redirecting to the bare page, so it leaves the address bar and history too.
pub async fn form(
    State(state): State<AppState>,
    user: SignedIn,
    uri: Uri,
) -> Result<Response, WebError> {
    if uri.query().is_some() {
        return Ok(page::see_other("/lookup"));
    }
    let cap = lookup_capability(&state, &user).await?;
    Ok(page::html(StatusCode::OK, &LookupPage::new(&user, &cap)))
}

#[derive(Deserialize)]
pub struct LookupForm {
    #[serde(default)]
    nhs_number: String,
}

/// `POST /lookup`: validates the NHS number (the same error the JavaScript check shows), then
/// looks the child up and renders the result. Invalid input records nothing.
pub async fn submit(
    State(state): State<AppState>,
    SignedInForm { user, form }: SignedInForm<LookupForm>,
) -> Result<Response, WebError> {
    let cap = lookup_capability(&state, &user).await?;
    let nhs = match NhsNumber::parse(&form.nhs_number) {
        Ok(nhs) => nhs,
        Err(e) => {
            let mut page = LookupPage::new(&user, &cap);
            page.layout = page.layout.with_errors(true);
            page.errors.push(FieldError {
                field: "nhs-number",
                message: message(&e).into(),
            });
            page.nhs_number = form.nhs_number.chars().take(40).collect();
            return Ok(page::html(StatusCode::BAD_REQUEST, &page));
        }
    };
    let caller = user.caller();
    let result = cpis_api::lookup_flow::lookup(
        &state,
        &caller,
        &cap,
        nhs,
        true,
        AccessHistory::Shown,
        &user.trace_id,
    )
    .await?;
    Ok(page::html(
        StatusCode::OK,
        &ResultPage::new(&user, &cap, nhs, &result, state.clock.now()),
    ))
}

struct PlanView {
    /// The plan stated plainly, the panel's heading ("Looked after child").
    heading: &'static str,
    active: bool,
    /// After the "Active" or "Ended" tag: "since 1 March 2026" or "on 3 June 2026 (started 1 March
    /// 2026)".
    state: String,
}

/// One of an LA's two numbers.
struct PhoneView {
    /// "the emergency duty team" or "children's social care (office hours)".
    who: String,
    phone: String,
    tel: String,
}

struct RecordView {
    la_name: String,
    plans: Vec<PlanView>,
    /// Every plan on the record has ended: the panel is shown as ended.
    ended: bool,
    /// The number to ring now (office hours or the emergency duty team), first and large.
    call_now: PhoneView,
    /// `office` or `edt`: which one `call_now` is.
    call_now_code: &'static str,
    /// Why that number: "The office is open now (Mon-Fri 09:00-17:00, UK time)".
    call_now_reason: String,
    /// The other number, smaller.
    other: PhoneView,
    /// The child (or the mother) as the LA shared them (name, date of birth), to confirm it is
    /// the same person.
    shared_as: Option<String>,
}

struct AccessView {
    setting: String,
    time: String,
}

#[derive(Template)]
#[template(path = "lookup_result.html")]
struct ResultPage {
    layout: Layout,
    nhs_number: String,
    records: Vec<RecordView>,
    history: Vec<AccessView>,
    notification_statement: String,
    attendance: AttendanceView,
}

/// The child's attendance across settings, from the national access log: "Seen N times at M
/// settings in the last 30 days", with the settings named unless the child is sensitive.
struct AttendanceView {
    frequent: bool,
    line: String,
    /// `: A, B` naming the settings, or why they are withheld.
    settings: Option<String>,
    six_months: String,
}

impl AttendanceView {
    fn new(result: &LookupResult) -> Self {
        let c = &result.attendance.counts;
        let plural =
            |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let line = if c.seen_30_days == 0 {
            "Not seen in unscheduled care in the last 30 days".to_owned()
        } else {
            format!(
                "Seen {} at {} in the last 30 days",
                plural(c.seen_30_days, "time", "times"),
                plural(c.organisations_30_days, "setting", "settings")
            )
        };
        let settings = (c.organisations_30_days > 0).then(|| {
            if result.sensitive() {
                " (settings withheld: sensitive record)".to_owned()
            } else {
                format!(": {}", result.attendance.organisations_30_days.join(", "))
            }
        });
        AttendanceView {
            frequent: result.pattern.is_some(),
            line,
            settings,
            six_months: plural(c.seen_6_months, "time", "times"),
        }
    }
}

/// The flag's heading for a plan (docs/WORKFLOW.md, "The clinician's flag").
fn plan_heading(t: PlanType) -> &'static str {
    match t {
        PlanType::Cpp => "Child protection plan",
        PlanType::Lac => "Looked after child",
        PlanType::Ucpp => "Unborn child protection plan \u{2014} this is the mother's record",
    }
}

fn plan_view(p: &Plan, vis: PlanVisibility) -> PlanView {
    let (active, mut state) = match vis {
        PlanVisibility::Ended(end) => (
            false,
            format!(
                "on {} (started {})",
                format::long_date(end),
                format::long_date(p.start())
            ),
        ),
        _ => (true, format!("since {}", format::long_date(p.start()))),
    };
    if let Some(edd) = p.expected_delivery() {
        state.push_str(&format!(". Baby expected {}", format::long_date(edd)));
    }
    PlanView {
        heading: plan_heading(p.plan_type()),
        active,
        state,
    }
}

/// The LA's numbers, the one to ring at `now` first.
fn numbers(
    la: Option<&LocalAuthority>,
    now: DateTime<Utc>,
) -> (PhoneView, &'static str, String, PhoneView) {
    let hours = la.map_or_else(OfficeHours::standard, |l| l.office_hours.clone());
    let office = PhoneView {
        who: "children's social care (office hours)".into(),
        phone: la.map_or_else(String::new, |l| l.office_hours_phone.clone()),
        tel: la.map_or_else(String::new, |l| format::tel(&l.office_hours_phone)),
    };
    let edt = PhoneView {
        who: "the emergency duty team (out of hours)".into(),
        phone: la.map_or_else(String::new, |l| l.edt_phone.clone()),
        tel: la.map_or_else(String::new, |l| format::tel(&l.edt_phone)),
    };
    match office_hours::number_now(&hours, office_hours::uk_local(now)) {
        CallNow::OfficeHours => (
            office,
            "office",
            format!("The office is open now ({hours}, UK time)."),
            edt,
        ),
        CallNow::EmergencyDutyTeam => (
            edt,
            "edt",
            format!("The office is closed now (open {hours}, UK time, not on bank holidays)."),
            office,
        ),
    }
}

impl ResultPage {
    fn new(
        user: &SignedIn,
        cap: &capability::Lookup,
        nhs: NhsNumber,
        result: &LookupResult,
        now: DateTime<Utc>,
    ) -> Self {
        let las: BTreeMap<&str, &LocalAuthority> = result
            .local_authorities
            .iter()
            .map(|la| (la.ods_code.as_str(), la))
            .collect();
        let records = result
            .records
            .iter()
            .map(|r| {
                let la = las.get(r.record.la.as_str()).copied();
                let mut plans = r.plans.clone();
                // Active plans first, then by type.
                plans.sort_by_key(|(p, vis)| {
                    (
                        !matches!(vis, PlanVisibility::Active),
                        PlanType::ALL.iter().position(|t| *t == p.plan_type()),
                    )
                });
                let plans: Vec<PlanView> =
                    plans.iter().map(|(p, vis)| plan_view(p, *vis)).collect();
                let (call_now, call_now_code, call_now_reason, other) = numbers(la, now);
                RecordView {
                    la_name: la.map_or_else(|| r.record.la.to_string(), |l| l.name.clone()),
                    ended: plans.iter().all(|p| !p.active),
                    plans,
                    call_now,
                    call_now_code,
                    call_now_reason,
                    other,
                    shared_as: child_as_shared(&r.record),
                }
            })
            .collect();
        let sensitive = result.sensitive();
        let history = result
            .history
            .iter()
            .map(|a| AccessView {
                setting: if sensitive {
                    "Withheld: sensitive record".into()
                } else {
                    match a.accessor.setting_type {
                        Some(t) => {
                            format!("{} ({})", a.accessor.organisation_name, format::setting(t))
                        }
                        None => a.accessor.organisation_name.clone(),
                    }
                },
                time: format::uk_time(a.time),
            })
            .collect();
        ResultPage {
            layout: Layout::signed_in(user, "Lookup result", "/lookup"),
            nhs_number: nhs.grouped(),
            records,
            history,
            notification_statement: notification_statement(cap, result, &las),
            attendance: AttendanceView::new(result),
        }
    }
}

fn child_as_shared(r: &cpis_domain::Record) -> Option<String> {
    let name = [r.given_name.as_deref(), r.family_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    match (name.is_empty(), r.date_of_birth) {
        (true, None) => None,
        (true, Some(dob)) => Some(format!("born {}", format::long_date(dob))),
        (false, None) => Some(name),
        (false, Some(dob)) => Some(format!("{name}, born {}", format::long_date(dob))),
    }
}

/// Whom the lookup found: the mother when every plan found is an unborn child protection plan.
fn subject(result: &LookupResult) -> Subject {
    Subject::of(
        result
            .records
            .iter()
            .flat_map(|r| r.plans.iter().map(|(p, _)| p.plan_type())),
    )
}

/// Whether this lookup notified the local authority, and if not, why not.
fn notification_statement(
    cap: &capability::Lookup,
    result: &LookupResult,
    las: &BTreeMap<&str, &LocalAuthority>,
) -> String {
    match result.access.kind {
        AccessKind::Unscheduled => {
            let names: Vec<String> = result
                .notified
                .iter()
                .map(|code| las.get(code.as_str()).map_or_else(|| code.to_string(), |l| l.name.clone()))
                .collect();
            let who = match subject(result) {
                Subject::Mother => "the mother",
                Subject::Child => "the child",
            };
            format!(
                "This lookup notified the local authority that {who} was seen here: {}.",
                names.join(", ")
            )
        }
        AccessKind::Silent if !cap.may_notify() => "This lookup did not notify the local authority: your account looks children up silently. It is recorded for audit.".into(),
        AccessKind::Silent => "This lookup did not notify the local authority: lookups from this care setting are silent. It is recorded for audit.".into(),
        AccessKind::Miss => "No local authority was notified, as there is no CP-IS information. The lookup is recorded for audit.".into(),
    }
}
