//! The clinician's "was not brought" form (docs/WORKFLOW.md): `GET /was-not-brought` and
//! `POST /was-not-brought`. A GP, health visiting, school nursing, community paediatrics, CAMHS
//! or dentistry clinician reports that a child was not brought to an appointment; each LA with a
//! plan a lookup would show is notified, through the same flow as the FHIR API's
//! `POST Appointment` (`cpis_api::was_not_brought_flow`). The NHS number travels only in the
//! POST body. A form with errors records nothing.

use super::forms::SignedInForm;
use super::page::{self, FieldError, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use cpis_api::AppState;
use cpis_auth::capability::ReportWasNotBrought;
use cpis_auth::Principal;
use cpis_core::was_not_brought::Reported;
use cpis_domain::{NhsNumber, NhsNumberError, WasNotBrought, WasNotBroughtError};
use serde::Deserialize;

const PATH: &str = "/was-not-brought";

#[derive(Deserialize, Default)]
pub struct ReportForm {
    #[serde(default)]
    nhs_number: String,
    #[serde(default, rename = "appointment-day")]
    day: String,
    #[serde(default, rename = "appointment-month")]
    month: String,
    #[serde(default, rename = "appointment-year")]
    year: String,
    #[serde(default)]
    time: String,
    #[serde(default)]
    description: String,
}

#[derive(Template)]
#[template(path = "was_not_brought.html")]
struct FormPage {
    layout: Layout,
    errors: Vec<FieldError>,
    csrf_token: String,
    setting: String,
    form: ReportForm,
    max_description: usize,
}

impl FormPage {
    fn new(user: &SignedIn, cap: &ReportWasNotBrought) -> Self {
        FormPage {
            layout: Layout::signed_in(user, "Report a child not brought", PATH),
            errors: Vec::new(),
            csrf_token: user.csrf.clone(),
            setting: cap.accessor().organisation_name.clone(),
            form: ReportForm::default(),
            max_description: cpis_domain::was_not_brought::MAX_DESCRIPTION,
        }
    }
    fn error_for(&self, field: &str) -> Option<&str> {
        page::error_for(&self.errors, field)
    }
}

#[derive(Template)]
#[template(path = "was_not_brought_done.html")]
struct DonePage {
    layout: Layout,
    nhs_number: String,
    when: String,
    /// The LAs told (none: the child has no plan a lookup would show).
    told: Vec<String>,
    no_plan: &'static str,
}

async fn capability(state: &AppState, user: &SignedIn) -> Result<ReportWasNotBrought, WebError> {
    Ok(user
        .caller()
        .grant(state, "was-not-brought", Principal::report_was_not_brought)
        .await?)
}

/// `GET /was-not-brought`.
pub async fn form(State(state): State<AppState>, user: SignedIn) -> Result<Response, WebError> {
    let cap = capability(&state, &user).await?;
    Ok(page::html(StatusCode::OK, &FormPage::new(&user, &cap)))
}

fn nhs_message(e: &NhsNumberError) -> &'static str {
    match e {
        NhsNumberError::Empty => "Enter the child's NHS number",
        NhsNumberError::NotDigits => "NHS number must only include numbers and spaces",
        NhsNumberError::WrongLength(_) => "NHS number must be 10 digits",
        NhsNumberError::BadCheckDigit => {
            "This is not a valid NHS number. Check it and enter it again"
        }
    }
}

/// A time of day as people write it: `9:30`, `09:30`, `9.30` or `0930`.
fn time_of_day(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    let (h, m) = match s.split_once([':', '.']) {
        Some((h, m)) => (h, m),
        None if s.len() == 4 => s.split_at(2),
        None => return None,
    };
    if m.len() != 2 || h.is_empty() || h.len() > 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// UK local time (GMT or BST) as UTC.
fn from_uk(date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = Utc.from_utc_datetime(&date.and_time(time));
    let if_bst = local - Duration::hours(1);
    if super::format::is_bst(if_bst) {
        if_bst
    } else {
        local
    }
}

/// `POST /was-not-brought`: checks the form, then reports.
pub async fn submit(
    State(state): State<AppState>,
    SignedInForm { user, form }: SignedInForm<ReportForm>,
) -> Result<Response, WebError> {
    let cap = capability(&state, &user).await?;
    let mut errors = Vec::new();
    let nhs = NhsNumber::parse(&form.nhs_number)
        .map_err(|e| {
            errors.push(FieldError {
                field: "nhs-number",
                message: nhs_message(&e).into(),
            })
        })
        .ok();
    let date = if [&form.day, &form.month, &form.year]
        .iter()
        .all(|s| s.trim().is_empty())
    {
        errors.push(FieldError {
            field: "appointment-day",
            message: "Enter the date of the appointment".into(),
        });
        None
    } else {
        let (d, m, y) = (form.day.trim(), form.month.trim(), form.year.trim());
        let date = (y.len() == 4)
            .then(|| NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?))
            .flatten();
        if date.is_none() {
            errors.push(FieldError {
                field: "appointment-day",
                message: "The date of the appointment must be a real date, for example 19 11 2026"
                    .into(),
            });
        }
        date
    };
    let time = if form.time.trim().is_empty() {
        errors.push(FieldError {
            field: "appointment-time",
            message: "Enter the time of the appointment, for example 09:30".into(),
        });
        None
    } else {
        let t = time_of_day(&form.time);
        if t.is_none() {
            errors.push(FieldError {
                field: "appointment-time",
                message: "The time must be a real time in 24-hour format, for example 14:15".into(),
            });
        }
        t
    };
    let report = match (nhs, date, time) {
        (Some(nhs), Some(date), Some(time)) => {
            let start = from_uk(date, time);
            match WasNotBrought::new(
                nhs,
                start,
                start,
                Some(&form.description),
                state.clock.now(),
            ) {
                Ok(r) => Some(r),
                Err(e) => {
                    errors.push(match e {
                        WasNotBroughtError::DescriptionTooLong
                        | WasNotBroughtError::DescriptionControl => FieldError {
                            field: "description",
                            message: format!(
                                "What the appointment was for must be {} characters or fewer, on one line",
                                cpis_domain::was_not_brought::MAX_DESCRIPTION
                            ),
                        },
                        WasNotBroughtError::InTheFuture => FieldError {
                            field: "appointment-day",
                            message: "The appointment must be in the past: report a child not brought once the appointment time has passed".into(),
                        },
                        WasNotBroughtError::TooOld | WasNotBroughtError::EndsBeforeStart => {
                            FieldError {
                                field: "appointment-day",
                                message: format!(
                                    "The appointment must be in the last {} days",
                                    cpis_domain::was_not_brought::MAX_AGE_DAYS
                                ),
                            }
                        }
                    });
                    None
                }
            }
        }
        _ => None,
    };
    let Some(report) = report.filter(|_| errors.is_empty()) else {
        let mut page = FormPage::new(&user, &cap);
        page.layout = page.layout.with_errors(true);
        page.errors = errors;
        page.form = ReportForm {
            nhs_number: form.nhs_number.chars().take(40).collect(),
            day: form.day.chars().take(4).collect(),
            month: form.month.chars().take(4).collect(),
            year: form.year.chars().take(6).collect(),
            time: form.time.chars().take(8).collect(),
            description: form.description.chars().take(400).collect(),
        };
        return Ok(page::html(StatusCode::BAD_REQUEST, &page));
    };
    let nhs_number = report.nhs_number().grouped();
    let when = super::format::uk_time(report.start());
    let caller = user.caller();
    let reported =
        cpis_api::was_not_brought_flow::report(&state, &caller, cap, report, &user.trace_id)
            .await?;
    let told = match reported {
        Reported::Sent { notified, .. } => {
            let store = state.store.clone();
            tokio::task::spawn_blocking(move || {
                notified
                    .iter()
                    .map(|ods| {
                        Ok(store
                            .local_authority(ods)?
                            .map_or_else(|| ods.to_string(), |la| la.name))
                    })
                    .collect::<Result<Vec<String>, cpis_store::StoreError>>()
            })
            .await??
        }
        Reported::NoVisiblePlan => Vec::new(),
    };
    Ok(page::html(
        StatusCode::OK,
        &DonePage {
            layout: Layout::signed_in(&user, "Report a child not brought", PATH),
            nhs_number,
            when,
            told,
            no_plan: "No child protection plan is shared for this child, so no local authority was told. Follow your own was-not-brought policy.",
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_people_write_them() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0);
        assert_eq!(time_of_day("9:30"), t(9, 30));
        assert_eq!(time_of_day(" 09:30 "), t(9, 30));
        assert_eq!(time_of_day("14.15"), t(14, 15));
        assert_eq!(time_of_day("1415"), t(14, 15));
        for bad in ["", "9", "25:00", "9:5", "9:60", "noon", "123:00"] {
            assert_eq!(time_of_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn uk_times_become_utc() {
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        assert_eq!(
            from_uk(d(11, 20), nine),
            Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap()
        );
        assert_eq!(
            from_uk(d(7, 20), nine),
            Utc.with_ymd_and_hms(2026, 7, 20, 8, 0, 0).unwrap()
        );
    }
}
