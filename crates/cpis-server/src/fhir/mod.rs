//! The FHIR R4 API for health systems (SPEC 3.1): CareTeam and AuditEvent searches by NHS number,
//! and the CapabilityStatement. Errors are OperationOutcomes (see `error.rs`).

mod render;
mod resources;

use crate::auth::FhirCaller;
use crate::error::{ApiError, FhirError};
use crate::extract::FhirQuery;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cpis_auth::Principal;
use cpis_domain::{LocalAuthority, NhsNumber};
use resources::{Bundle, BundleEntry, BundleLink, BundleMeta, BundleSearch};
use serde::Serialize;
use std::collections::BTreeMap;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
static TRACE_ID: HeaderName = HeaderName::from_static("traceid");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/R4/metadata", get(metadata))
        .route("/fhir/R4/CareTeam", get(care_team_search))
        .route("/fhir/R4/AuditEvent", get(audit_event_search))
        .route(
            "/fhir/R4/{*rest}",
            get(unknown).post(unknown).put(unknown).delete(unknown),
        )
        .method_not_allowed_fallback(not_allowed)
        .layer(middleware::from_fn(trace_id))
}

async fn not_allowed() -> FhirError {
    FhirError(ApiError::MethodNotAllowed)
}

async fn unknown() -> FhirError {
    FhirError(ApiError::NotFound)
}

/// Echoes the caller's `TraceID` (or a new one) on every FHIR response and logs it.
async fn trace_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&TRACE_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(TraceId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(TRACE_ID.clone(), v);
    }
    resp
}

#[derive(Clone)]
struct TraceId(String);

fn fhir_json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_string(body) {
        Ok(s) => (status, [(header::CONTENT_TYPE, FHIR_JSON)], s).into_response(),
        Err(e) => FhirError(ApiError::Internal(e.to_string())).into_response(),
    }
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
        Some((system, v)) if system.is_empty() || system == render::NHS_NUMBER_SYSTEM => v,
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "identifier system must be {}",
                render::NHS_NUMBER_SYSTEM
            )))
        }
        None => value,
    };
    NhsNumber::parse(digits).map_err(|e| ApiError::BadRequest(format!("invalid NHS number: {e}")))
}

/// `IsUnscheduledAccessEvent`: `true` (notifying) or `false` (silent). When absent, a caller allowed
/// to notify at an unscheduled setting notifies: a forgotten header must not lose a notification.
fn unscheduled_header(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers.get("isunscheduledaccessevent") {
        None => Ok(true),
        Some(v) => match v.to_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Ok("true") => Ok(true),
            Ok("false") => Ok(false),
            _ => Err(ApiError::BadRequest(
                "IsUnscheduledAccessEvent must be 'true' or 'false'".into(),
            )),
        },
    }
}

/// The base of every `fullUrl`: the configured public URL (`cpis serve` defaults it to the
/// address it listens on). Never the request's `Host` header, which any client can set.
fn base_url(state: &AppState) -> String {
    state
        .config
        .public_base_url
        .as_deref()
        .unwrap_or("http://localhost")
        .trim_end_matches('/')
        .to_owned()
}

fn bundle(base: &str, self_url: String, total: usize, entry: Vec<BundleEntry>) -> Bundle {
    Bundle {
        resource_type: "Bundle",
        id: uuid::Uuid::new_v4().to_string(),
        meta: BundleMeta {
            last_updated: render::instant(chrono::Utc::now()),
        },
        type_: "searchset",
        total,
        link: vec![BundleLink {
            relation: "self",
            url: format!("{base}{self_url}"),
        }],
        entry,
    }
}

fn entry<T: Serialize>(
    base: &str,
    kind: &str,
    id: &str,
    resource: &T,
    mode: &'static str,
) -> Result<BundleEntry, ApiError> {
    Ok(BundleEntry {
        full_url: format!("{base}/fhir/R4/{kind}/{id}"),
        resource: serde_json::to_value(resource).map_err(|e| ApiError::Internal(e.to_string()))?,
        search: BundleSearch { mode },
    })
}

fn self_link(kind: &str, nhs: NhsNumber) -> String {
    format!(
        "/fhir/R4/{kind}?patient:identifier={}|{}",
        render::NHS_NUMBER_SYSTEM,
        nhs.digits()
    )
}

async fn care_team_search(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    headers: HeaderMap,
    axum::Extension(trace): axum::Extension<TraceId>,
    FhirQuery(params): FhirQuery<Vec<(String, String)>>,
) -> Result<Response, FhirError> {
    let cap = caller.grant(&state, "lookup", Principal::lookup).await?;
    let nhs = patient_identifier(&params)?;
    let requested_unscheduled = unscheduled_header(&headers)?;
    let result =
        crate::lookup_flow::lookup(&state, &caller, &cap, nhs, requested_unscheduled, &trace.0)
            .await?;
    let base = base_url(&state);
    let las: BTreeMap<String, LocalAuthority> = result
        .local_authorities
        .iter()
        .map(|la| (la.ods_code.to_string(), la.clone()))
        .collect();
    let mut matches = Vec::new();
    let mut includes = Vec::new();
    for record in &result.records {
        let Some(la) = las.get(record.record.la.as_str()) else {
            return Err(
                ApiError::Internal("record of an LA missing from the directory".into()).into(),
            );
        };
        for (plan, vis) in render::sorted_plans(record) {
            let ct = render::care_team(nhs, la, record, &plan, vis);
            matches.push(entry(&base, "CareTeam", &ct.id, &ct, "match")?);
        }
        let org = render::organization(la);
        includes.push(entry(&base, "Organization", &org.id, &org, "include")?);
    }
    if !result.records.is_empty() {
        let p = render::patient(nhs, &result.records);
        includes.push(entry(&base, "Patient", &p.id, &p, "include")?);
    }
    let total = matches.len();
    matches.extend(includes);
    let mut resp = fhir_json(
        StatusCode::OK,
        &bundle(&base, self_link("CareTeam", nhs), total, matches),
    );
    if let Ok(v) = HeaderValue::from_str(&result.notified.len().to_string()) {
        resp.headers_mut().insert("cpis-notified-las", v);
    }
    Ok(resp)
}

async fn audit_event_search(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    axum::Extension(trace): axum::Extension<TraceId>,
    FhirQuery(params): FhirQuery<Vec<(String, String)>>,
) -> Result<Response, FhirError> {
    let cap = caller
        .grant(&state, "lookup.history", Principal::lookup)
        .await?;
    let nhs = patient_identifier(&params)?;
    crate::lookup_flow::admit(&state, &caller, nhs, &trace.0).await?;
    let lookups = state.lookups.clone();
    let trace_id = trace.0.clone();
    let (records, history) =
        tokio::task::spawn_blocking(move || lookups.history(&cap, nhs, Some(trace_id))).await??;
    crate::lookup_flow::learn(&state, &caller, nhs, !history.is_empty(), &trace.0).await;
    let sensitive = records.iter().any(|r| r.record.sensitive);
    let base = base_url(&state);
    let mut entries = Vec::new();
    for access in &history {
        let ae = render::audit_event(nhs, access, sensitive);
        entries.push(entry(&base, "AuditEvent", &ae.id, &ae, "match")?);
    }
    let total = entries.len();
    Ok(fhir_json(
        StatusCode::OK,
        &bundle(&base, self_link("AuditEvent", nhs), total, entries),
    ))
}

async fn metadata(State(_state): State<AppState>) -> Response {
    let search = |name: &str, doc: &str| serde_json::json!({"name": name, "type": "token", "documentation": doc});
    let body = serde_json::json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "cpis",
        "kind": "instance",
        "software": {"name": "cpis", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Child Protection – Information Sharing"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": {"description": "Bearer token in the Authorization header"},
            "resource": [
                {
                    "type": "CareTeam",
                    "interaction": [{"code": "search-type"}],
                    "searchInclude": ["CareTeam:patient", "CareTeam:participant"],
                    "searchParam": [search("patient:identifier", "https://fhir.nhs.uk/Id/nhs-number|{NHS number}; header IsUnscheduledAccessEvent: true|false")]
                },
                {
                    "type": "AuditEvent",
                    "interaction": [{"code": "search-type"}],
                    "searchParam": [search("patient:identifier", "https://fhir.nhs.uk/Id/nhs-number|{NHS number}")]
                }
            ]
        }]
    });
    fhir_json(StatusCode::OK, &body)
}
