//! What the FHIR API declares about itself: the CapabilityStatement (everything declared here
//! works; docs/FHIR.md), and cpis's own definitions, served where their canonical URLs point by
//! default.

use super::params::{format_only, AUDIT_EVENT_INCLUDES, CARE_TEAM_INCLUDES, HISTORY_LEN};
use super::{canonical, fhir_json, server_url, BasePath};
use crate::error::ApiError;
use crate::extract::FhirQuery;
use crate::fhir::FhirError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use cpis_domain::SettingType;
use serde_json::{json, Value};

/// The CP-IS FHIR API producer requirements this server instantiates.
const CPIS_PRODUCER: &str = "https://fhir.nhs.uk/CapabilityStatement/CPIS-FHIR-API-Producer";
/// The date the declarations below last changed.
const DECLARED: &str = "2026-12-03";

pub async fn metadata(
    State(state): State<AppState>,
    axum::Extension(path): axum::Extension<BasePath>,
    FhirQuery(query): FhirQuery<Vec<(String, String)>>,
) -> Result<Response, FhirError> {
    format_only(&query)?;
    let canon = canonical(&state);
    let patient = |doc: &str| {
        json!({
            "name": "patient",
            "definition": "http://hl7.org/fhir/SearchParameter/clinical-patient",
            "type": "reference",
            "documentation": format!("As `patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{{NHS number}}` (the only form accepted). {doc}")
        })
    };
    let read = |kind: &str, profile: &str| {
        json!({
            "type": kind,
            "profile": profile,
            "interaction": [{"code": "read"}],
            "documentation": "cpis's own definitions (docs/FHIR.md); no authentication needed."
        })
    };
    let body = json!({
        "resourceType": "CapabilityStatement",
        "id": "cpis",
        "url": format!("{}/CapabilityStatement/cpis", canon.0),
        "version": env!("CARGO_PKG_VERSION"),
        "name": "CpisFhirApi",
        "title": "cpis Child Protection – Information Sharing FHIR API",
        "status": "active",
        "date": DECLARED,
        "publisher": "cpis",
        "description": "Child protection information for health care settings: CareTeam (one per visible plan) and AuditEvent (recent unscheduled accesses) searches by NHS number, as NHS England's CP-IS FHIR API.",
        "kind": "instance",
        "instantiates": [CPIS_PRODUCER],
        "software": {"name": "cpis", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {
            "description": "Child Protection – Information Sharing",
            "url": format!("{}{}", server_url(&state), path.0)
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "OAuth",
                    "display": "OAuth"
                }]}],
                "description": "Authorization: Bearer <token> (NHS CIS2 for people, signed-JWT client credentials from /oauth2/token for systems, or cpis API tokens). Headers: TraceID (echoed), IsUnscheduledAccessEvent: true|false (IsUnscheduledEvent accepted; absent means true)."
            },
            "resource": [
                {
                    "type": "CareTeam",
                    "profile": "http://hl7.org/fhir/StructureDefinition/CareTeam",
                    "interaction": [{"code": "search-type"}],
                    "searchInclude": CARE_TEAM_INCLUDES,
                    "searchParam": [patient("One CareTeam per visible plan; the LA Organization and the Patient are always included. Header IsUnscheduledAccessEvent decides whether the LA is notified.")],
                    "documentation": "category: SNOMED CT, England-ChildProtectionPlan value set; telecom: office hours use=work, emergency duty team use=mobile."
                },
                {
                    "type": "AuditEvent",
                    "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
                    "interaction": [{"code": "search-type"}],
                    "searchInclude": AUDIT_EVENT_INCLUDES,
                    "searchParam": [
                        patient("The most recent unscheduled accesses, newest first; the viewers (PractitionerRole) and the Patient are always included."),
                        {
                            "name": "_count",
                            "definition": "http://hl7.org/fhir/SearchParameter/Resource-count",
                            "type": "number",
                            "documentation": format!("1 to {HISTORY_LEN} (default {HISTORY_LEN}); anything else is refused")
                        }
                    ]
                },
                {
                    "type": "Appointment",
                    "profile": "http://hl7.org/fhir/StructureDefinition/Appointment",
                    "interaction": [{"code": "create"}],
                    "documentation": "Was not brought: a GP, health visiting, school nursing, community paediatrics, CAMHS or dentistry setting reports a child not brought to an appointment, as an Appointment with status noshow, start, end and the child as the participant identified by NHS number. Each local authority with a plan the reporter could see is notified (was-not-brought). 201 with the Appointment; 422 when the child has no such plan (nobody is told)."
                },
                {
                    "type": "PractitionerRole",
                    "profile": "http://hl7.org/fhir/StructureDefinition/PractitionerRole",
                    "documentation": "Only as included in AuditEvent searches."
                },
                read("StructureDefinition", "http://hl7.org/fhir/StructureDefinition/StructureDefinition"),
                read("CodeSystem", "http://hl7.org/fhir/StructureDefinition/CodeSystem")
            ]
        }]
    });
    Ok(fhir_json(StatusCode::OK, &body))
}

/// `GET StructureDefinition/expected-delivery-date`.
pub async fn structure_definition(
    State(state): State<AppState>,
    Path(id): Path<String>,
    FhirQuery(query): FhirQuery<Vec<(String, String)>>,
) -> Result<Response, FhirError> {
    format_only(&query)?;
    let canon = canonical(&state);
    if id != "expected-delivery-date" {
        return Err(FhirError(ApiError::NotFound));
    }
    let url = canon.edd_extension();
    let body = json!({
        "resourceType": "StructureDefinition",
        "id": id,
        "url": url,
        "version": env!("CARGO_PKG_VERSION"),
        "name": "ExpectedDeliveryDate",
        "title": "Expected date of delivery",
        "status": "active",
        "date": DECLARED,
        "publisher": "cpis",
        "description": "The expected date of delivery of an unborn child on an unborn child protection plan (UCPP), as the local authority sent it. Carried on the CareTeam of a UCPP, which is held against the mother's NHS number.",
        "fhirVersion": "4.0.1",
        "kind": "complex-type",
        "abstract": false,
        "context": [{"type": "element", "expression": "CareTeam"}],
        "type": "Extension",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
        "derivation": "constraint",
        "differential": {"element": [
            {"id": "Extension", "path": "Extension", "short": "Expected date of delivery", "definition": "The expected date of delivery of the unborn child.", "min": 0, "max": "1"},
            {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "type": [{"code": "date"}]}
        ]}
    });
    Ok(fhir_json(StatusCode::OK, &body))
}

/// `GET CodeSystem/care-setting-type`.
pub async fn code_system(
    State(state): State<AppState>,
    Path(id): Path<String>,
    FhirQuery(query): FhirQuery<Vec<(String, String)>>,
) -> Result<Response, FhirError> {
    format_only(&query)?;
    let canon = canonical(&state);
    if id != "care-setting-type" {
        return Err(FhirError(ApiError::NotFound));
    }
    let concept: Vec<Value> = SettingType::ALL
        .iter()
        .map(|s| {
            json!({
                "code": s.code(),
                "display": s.code(),
                "definition": if s.is_unscheduled() {
                    "An unscheduled care setting: its lookups notify the local authority."
                } else {
                    "A scheduled or sensitive care setting: its lookups are silent."
                }
            })
        })
        .collect();
    let body = json!({
        "resourceType": "CodeSystem",
        "id": id,
        "url": canon.setting_type_system(),
        "version": env!("CARGO_PKG_VERSION"),
        "name": "CareSettingType",
        "title": "Care setting type",
        "status": "active",
        "date": DECLARED,
        "publisher": "cpis",
        "description": "The kind of care setting a child was seen at (SPEC 1), carried on the viewer's agent role in access-history AuditEvents.",
        "caseSensitive": true,
        "content": "complete",
        "count": concept.len(),
        "concept": concept
    });
    Ok(fhir_json(StatusCode::OK, &body))
}
