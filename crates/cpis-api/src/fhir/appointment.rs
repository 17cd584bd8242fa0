//! `POST Appointment`: a scheduled care setting reports that a child was not brought to an
//! appointment, as a FHIR R4 Appointment with `status: noshow` (docs/FHIR.md, docs/WORKFLOW.md).
//! The child is the one participant identified by NHS number; the reporting setting and person
//! come from the caller's capability, never from the body. 201 with the stored Appointment and its
//! `Location`; an OperationOutcome, with nothing sent, for anything else.

use super::error::operation_outcome;
use super::render::{instant, NHS_NUMBER_SYSTEM, ODS_SYSTEM};
use super::{base_url, fhir_json, BasePath, FhirError, TraceId};
use crate::auth::FhirCaller;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cpis_auth::capability::ReportWasNotBrought;
use cpis_auth::Principal;
use cpis_core::was_not_brought::Reported;
use cpis_domain::{AuditEntry, NhsNumber, WasNotBrought};
use serde_json::{json, Value};

/// The largest Appointment accepted.
const MAX_BODY: usize = 64 * 1024;
const ACTION: &str = "was-not-brought";
/// Appointment.participant.status (R4 `participationstatus`).
const PARTICIPATION: [&str; 4] = ["accepted", "declined", "tentative", "needs-action"];

const VALIDATION_ERROR: (&str, &str) = ("VALIDATION_ERROR", "Validation error");
const MISSING_VALUE: (&str, &str) = ("MISSING_VALUE", "Missing value");
const INVALID_VALUE: (&str, &str) = ("INVALID_VALUE", "Invalid value");
const PRECONDITION_FAILED: (&str, &str) = ("PRECONDITION_FAILED", "Precondition failed");

/// Why a body is not a report cpis can take: 400 for a body that is not an Appointment or lacks
/// an element, 422 for an Appointment whose values break the rules.
#[derive(Debug)]
pub struct Invalid {
    status: StatusCode,
    issue: &'static str,
    spine: (&'static str, &'static str),
    message: String,
    expression: Option<String>,
}

impl Invalid {
    fn structure(message: impl Into<String>) -> Self {
        Invalid {
            status: StatusCode::BAD_REQUEST,
            issue: "structure",
            spine: VALIDATION_ERROR,
            message: message.into(),
            expression: None,
        }
    }
    fn missing(element: &str) -> Self {
        Invalid {
            status: StatusCode::BAD_REQUEST,
            issue: "required",
            spine: MISSING_VALUE,
            message: format!("Appointment.{element} is required"),
            expression: Some(format!("Appointment.{element}")),
        }
    }
    fn value(element: &str, message: impl Into<String>) -> Self {
        Invalid {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            issue: "invalid",
            spine: INVALID_VALUE,
            message: message.into(),
            expression: Some(format!("Appointment.{element}")),
        }
    }
}

impl IntoResponse for Invalid {
    fn into_response(self) -> Response {
        operation_outcome(
            self.status,
            self.issue,
            self.spine,
            &self.message,
            self.expression.as_deref(),
        )
    }
}

/// The report in an Appointment body, or why it is not one. `now` decides whether the
/// appointment has passed.
pub fn parse(body: &[u8], now: chrono::DateTime<chrono::Utc>) -> Result<Parsed, Invalid> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| Invalid::structure("the body is not JSON: send a FHIR R4 Appointment"))?;
    if v.get("resourceType").and_then(Value::as_str) != Some("Appointment") {
        return Err(Invalid::structure(
            "the body is not an Appointment resource (resourceType must be \"Appointment\")",
        ));
    }
    let text = |element: &str| -> Result<Option<&str>, Invalid> {
        match v.get(element) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Invalid::structure(format!(
                "Appointment.{element} must be a string"
            ))),
        }
    };
    let status = text("status")?.ok_or_else(|| Invalid::missing("status"))?;
    if status != "noshow" {
        return Err(Invalid::value(
            "status",
            format!("status is \"{}\": a child not brought to an appointment is reported with status \"noshow\"", short(status)),
        ));
    }
    let time = |element: &str| -> Result<chrono::DateTime<chrono::Utc>, Invalid> {
        let s = text(element)?.ok_or_else(|| Invalid::missing(element))?;
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|_| {
                Invalid::value(
                    element,
                    format!("Appointment.{element} is not a FHIR instant (e.g. 2026-11-19T09:30:00Z, with a time zone)"),
                )
            })
    };
    let start = time("start")?;
    let end = time("end")?;
    let description = text("description")?;
    let (nhs, participation) = patient(&v)?;
    let report = WasNotBrought::new(nhs, start, end, description, now)
        .map_err(|e| Invalid::value(e.element(), e.to_string()))?;
    Ok(Parsed {
        report,
        participation,
    })
}

/// An Appointment as parsed: the report, and the patient participant's status as sent.
pub struct Parsed {
    pub report: WasNotBrought,
    participation: String,
}

/// The one participant identified by NHS number, and its participation status.
fn patient(v: &Value) -> Result<(NhsNumber, String), Invalid> {
    let participants = match v.get("participant") {
        None | Some(Value::Null) => return Err(Invalid::missing("participant")),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(Invalid::structure(
                "Appointment.participant must be an array",
            ))
        }
    };
    let children: Vec<&Value> = participants
        .iter()
        .filter(|p| p["actor"]["identifier"]["system"] == NHS_NUMBER_SYSTEM)
        .collect();
    let child = match children.as_slice() {
        [] => {
            return Err(Invalid {
                message: format!("Appointment.participant needs the child: an actor with identifier system {NHS_NUMBER_SYSTEM} and the NHS number as value"),
                ..Invalid::missing("participant")
            })
        }
        [one] => *one,
        _ => {
            return Err(Invalid::value(
                "participant",
                "more than one participant is identified by NHS number: report one child per Appointment",
            ))
        }
    };
    let digits = child["actor"]["identifier"]["value"]
        .as_str()
        .ok_or_else(|| Invalid::missing("participant.actor.identifier.value"))?;
    let nhs = NhsNumber::parse(digits).map_err(|_| {
        Invalid::value(
            "participant.actor.identifier.value",
            "the NHS number is not valid (10 digits with a correct check digit)",
        )
    })?;
    let participation = child["status"]
        .as_str()
        .ok_or_else(|| Invalid::missing("participant.status"))?;
    if !PARTICIPATION.contains(&participation) {
        return Err(Invalid::value(
            "participant.status",
            "participant.status must be accepted, declined, tentative or needs-action",
        ));
    }
    Ok((nhs, participation.to_owned()))
}

/// At most 40 characters of a value sent, for a message.
fn short(s: &str) -> String {
    s.chars().take(40).filter(|c| !c.is_control()).collect()
}

/// Whether the body is declared as JSON (`application/fhir+json` or `application/json`).
fn json_body(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/fhir+json" || mime == "application/json" {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "send the Appointment as Content-Type: application/fhir+json".into(),
        ))
    }
}

/// `POST Appointment`.
pub async fn create(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    headers: HeaderMap,
    axum::Extension(trace): axum::Extension<TraceId>,
    axum::Extension(path): axum::Extension<BasePath>,
    body: Body,
) -> Result<Response, FhirError> {
    let cap: ReportWasNotBrought = caller
        .grant(&state, ACTION, Principal::report_was_not_brought)
        .await?;
    json_body(&headers)?;
    let bytes =
        axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| ApiError::PayloadTooLarge {
                limit: MAX_BODY as u64,
            })?;
    let parsed = match parse(&bytes, state.clock.now()) {
        Ok(p) => p,
        Err(invalid) => {
            // Audited without the values sent (an invalid NHS number may be a mistyped real one).
            let entry = AuditEntry::new(
                state.clock.now(),
                caller.principal.audit_actor(),
                ACTION,
                Some(trace.0.clone()),
            )
            .failed()
            .detail(format!(
                "refused: {}",
                invalid
                    .expression
                    .as_deref()
                    .unwrap_or("not an Appointment")
            ));
            crate::refusals::audit(&state, entry).await;
            return Ok(invalid.into_response());
        }
    };
    let accessor = cap.accessor().clone();
    let Parsed {
        report,
        participation,
    } = parsed;
    let reported =
        crate::was_not_brought_flow::report(&state, &caller, cap, report.clone(), &trace.0).await?;
    let (id, at, notified) = match reported {
        Reported::Sent { id, at, notified } => (id, at, notified),
        Reported::NoVisiblePlan => {
            return Ok(operation_outcome(
                StatusCode::UNPROCESSABLE_ENTITY,
                "business-rule",
                PRECONDITION_FAILED,
                NO_PLAN,
                Some("Appointment.participant"),
            ))
        }
    };
    let appointment = json!({
        "resourceType": "Appointment",
        "id": id,
        "meta": {"lastUpdated": instant(at)},
        "status": "noshow",
        "description": report.description(),
        "start": instant(report.start()),
        "end": instant(report.end()),
        "created": instant(at),
        "participant": [
            {
                "actor": {
                    "type": "Patient",
                    "identifier": {"system": NHS_NUMBER_SYSTEM, "value": report.nhs_number().digits()}
                },
                "status": participation
            },
            {
                "actor": {
                    "type": "HealthcareService",
                    "identifier": {"system": ODS_SYSTEM, "value": accessor.organisation.as_str()},
                    "display": accessor.organisation_name
                },
                "status": "accepted"
            }
        ]
    });
    let mut appointment = appointment;
    if report.description().is_none() {
        if let Some(o) = appointment.as_object_mut() {
            o.remove("description");
        }
    }
    let mut resp = fhir_json(StatusCode::CREATED, &appointment);
    let location = format!("{}/Appointment/{id}", base_url(&state, path));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&notified.len().to_string()) {
        h.insert("cpis-notified-las", v);
    }
    Ok(resp)
}

/// What the reporter is told when the child has no plan a lookup would show them: nothing more
/// than an empty lookup would say (docs/WORKFLOW.md).
pub const NO_PLAN: &str = "No child protection plan is shared for this child, so no local authority was told. Nothing was recorded but this attempt: follow your own was-not-brought policy.";
