//! What a FHIR search may ask for, parsed once: the NHS number, the includes and count that are
//! really honoured, the response format, and the CP-IS headers. Anything else is refused with an
//! OperationOutcome rather than silently ignored (docs/FHIR.md).

use super::render::NHS_NUMBER_SYSTEM;
use crate::error::ApiError;
use axum::http::{header, HeaderMap};
use cpis_domain::NhsNumber;

/// The most accesses an AuditEvent search returns (SPEC rule 4), and the largest `_count`.
pub const HISTORY_LEN: usize = 25;

/// `_include` values an AuditEvent search accepts. The viewers (PractitionerRole) and the Patient
/// are always included, as the CP-IS guide's example does; these spellings (the guide's own,
/// and the FHIR R4 ones) are accepted so clients that ask get what they asked for.
pub const AUDIT_EVENT_INCLUDES: &[&str] = &[
    "AuditEvent:entity-type=http://terminology.hl7.org/CodeSystem/v3-RoleClass|ASSIGNED",
    "AuditEvent:agent",
    "AuditEvent:agent:PractitionerRole",
    "AuditEvent:patient",
    "PractitionerRole",
];

/// `_include` values a CareTeam search accepts (the LA Organization and the Patient are always
/// included).
pub const CARE_TEAM_INCLUDES: &[&str] = &[
    "CareTeam:patient",
    "CareTeam:subject",
    "CareTeam:participant",
];

/// Which resource a search is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SearchOf {
    CareTeam,
    AuditEvent,
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub nhs: NhsNumber,
    /// How many matches to return (AuditEvent only; at most [`HISTORY_LEN`]).
    pub count: usize,
}

/// Parses a search's query parameters. Parameters other than those named here are refused.
pub fn search(of: SearchOf, params: &[(String, String)]) -> Result<Search, ApiError> {
    let mut count = HISTORY_LEN;
    for (name, value) in params {
        match (name.as_str(), of) {
            ("patient:identifier", _) => {}
            ("_format", _) => format_param(value)?,
            ("_include", SearchOf::AuditEvent)
                if AUDIT_EVENT_INCLUDES.contains(&value.as_str()) => {}
            ("_include", SearchOf::CareTeam) if CARE_TEAM_INCLUDES.contains(&value.as_str()) => {}
            ("_include", _) => {
                return Err(ApiError::BadRequest(format!(
                    "_include={value} is not supported here (see the CapabilityStatement)"
                )))
            }
            ("_count", SearchOf::AuditEvent) => {
                count = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=HISTORY_LEN).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "_count must be a whole number from 1 to {HISTORY_LEN}"
                        ))
                    })?;
            }
            ("patient", _) => {
                return Err(ApiError::BadRequest(format!(
                    "search by 'patient:identifier={NHS_NUMBER_SYSTEM}|{{NHS number}}'"
                )))
            }
            (other, _) => {
                return Err(ApiError::BadRequest(format!(
                    "search parameter '{other}' is not supported (see the CapabilityStatement)"
                )))
            }
        }
    }
    Ok(Search {
        nhs: patient_identifier(params)?,
        count,
    })
}

/// The query of a read or `metadata`: only `_format` may be given.
pub fn format_only(params: &[(String, String)]) -> Result<(), ApiError> {
    for (name, value) in params {
        match name.as_str() {
            "_format" => format_param(value)?,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "parameter '{other}' is not supported here"
                )))
            }
        }
    }
    Ok(())
}

/// `patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919` (the system may be left out).
fn patient_identifier(params: &[(String, String)]) -> Result<NhsNumber, ApiError> {
    let values: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "patient:identifier")
        .map(|(_, v)| v.as_str())
        .collect();
    let value = match values.as_slice() {
        [] => {
            return Err(ApiError::BadRequest(
                "search parameter 'patient:identifier' is required".into(),
            ))
        }
        [one] => *one,
        _ => {
            return Err(ApiError::BadRequest(
                "give 'patient:identifier' once: one child at a time".into(),
            ))
        }
    };
    let digits = match value.split_once('|') {
        Some((system, v)) if system.is_empty() || system == NHS_NUMBER_SYSTEM => v,
        Some(_) => {
            return Err(ApiError::InvalidSearch(format!(
                "identifier system must be {NHS_NUMBER_SYSTEM}"
            )))
        }
        None => value,
    };
    NhsNumber::parse(digits)
        .map_err(|e| ApiError::InvalidSearch(format!("Invalid NHS number: {e}")))
}

/// `_format`: JSON is served; XML is not (406).
fn format_param(value: &str) -> Result<(), ApiError> {
    let mime = value.split(';').next().unwrap_or("").trim();
    match mime {
        "json" | "application/json" | "application/fhir+json" => Ok(()),
        "xml" | "text/xml" | "application/xml" | "application/fhir+xml" => Err(not_acceptable()),
        other => Err(ApiError::BadRequest(format!(
            "_format={other} is not supported: cpis serves application/fhir+json"
        ))),
    }
}

fn not_acceptable() -> ApiError {
    ApiError::NotAcceptable("cpis serves FHIR as JSON only (application/fhir+json)".into())
}

/// The `Accept` header: absent, or naming JSON (or anything) among its types; only XML is 406.
pub fn accept(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return Ok(());
    };
    let Ok(accept) = accept.to_str() else {
        return Err(not_acceptable());
    };
    let acceptable = accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        // `q=0` (any spelling of zero) says "not this type".
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                == Some(0.0)
        });
        !refused
            && matches!(
                mime.as_str(),
                "*/*" | "application/*" | "application/json" | "application/fhir+json" | ""
            )
    });
    if acceptable {
        Ok(())
    } else {
        Err(not_acceptable())
    }
}

/// `IsUnscheduledAccessEvent` (or `IsUnscheduledEvent`, the spelling one sentence of the CP-IS
/// guide uses): `true` (notifying) or `false` (silent). When absent, a caller allowed to notify
/// at an unscheduled setting notifies, as the guide says: a forgotten header must not lose a
/// notification.
pub fn unscheduled(headers: &HeaderMap) -> Result<bool, ApiError> {
    let value = match (
        headers.get("isunscheduledaccessevent"),
        headers.get("isunscheduledevent"),
    ) {
        (None, None) => return Ok(true),
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::BadRequest(
                "IsUnscheduledAccessEvent and IsUnscheduledEvent disagree".into(),
            ))
        }
        (Some(v), _) | (None, Some(v)) => v,
    };
    match value
        .to_str()
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Ok("true") => Ok(true),
        Ok("false") => Ok(false),
        _ => Err(ApiError::BadRequest(
            "IsUnscheduledAccessEvent must be 'true' or 'false'".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const CHILD: &str = "https://fhir.nhs.uk/Id/nhs-number|9434765919";

    #[test]
    fn the_guides_include_and_count_are_honoured_and_others_refused() {
        let s = search(
            SearchOf::AuditEvent,
            &q(&[
                ("patient:identifier", CHILD),
                ("_include", AUDIT_EVENT_INCLUDES[0]),
                ("_count", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(s.count, 5);
        for bad in [
            ("_count", "26"),
            ("_count", "0"),
            ("_count", "ten"),
            ("_include", "AuditEvent:entity"),
            ("_sort", "-date"),
            ("patient", "9434765919"),
        ] {
            let r = search(
                SearchOf::AuditEvent,
                &q(&[("patient:identifier", CHILD), bad]),
            );
            assert!(matches!(r, Err(ApiError::BadRequest(_))), "{bad:?}: {r:?}");
        }
        assert!(matches!(
            search(
                SearchOf::CareTeam,
                &q(&[("patient:identifier", CHILD), ("_count", "5")])
            ),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            search(
                SearchOf::CareTeam,
                &q(&[("patient:identifier", CHILD), ("_format", "xml")])
            ),
            Err(ApiError::NotAcceptable(_))
        ));
    }

    #[test]
    fn a_bad_nhs_number_is_invalid_search_data_and_a_missing_one_a_failed_precondition() {
        assert!(matches!(
            search(
                SearchOf::CareTeam,
                &q(&[("patient:identifier", "9434765918")])
            ),
            Err(ApiError::InvalidSearch(_))
        ));
        assert!(matches!(
            search(
                SearchOf::CareTeam,
                &q(&[("patient:identifier", "https://example.org/id|9434765919")])
            ),
            Err(ApiError::InvalidSearch(_))
        ));
        assert!(matches!(
            search(SearchOf::CareTeam, &q(&[])),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn accept_refuses_only_what_cpis_cannot_send() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, v.parse().unwrap());
            m
        };
        for ok in [
            "application/fhir+json",
            "application/fhir+json; fhirVersion=4.0",
            "application/json",
            "*/*",
            "application/fhir+xml, application/fhir+json;q=0.5",
        ] {
            assert!(accept(&h(ok)).is_ok(), "{ok}");
        }
        for no in [
            "application/fhir+xml",
            "text/html",
            "application/fhir+json;q=0",
        ] {
            assert!(
                matches!(accept(&h(no)), Err(ApiError::NotAcceptable(_))),
                "{no}"
            );
        }
        assert!(accept(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn the_guides_other_header_spelling_is_an_alias() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert!(!unscheduled(&h(&[("isunscheduledevent", "false")])).unwrap());
        assert!(unscheduled(&h(&[])).unwrap());
        assert!(unscheduled(&h(&[
            ("isunscheduledaccessevent", "true"),
            ("isunscheduledevent", "false")
        ]))
        .is_err());
    }
}
