//! The FHIR R4 API for health systems (SPEC 3.1): CareTeam and AuditEvent searches by NHS number,
//! and the CapabilityStatement. Errors are OperationOutcomes (see `error.rs`).

mod appointment;
mod conformance;
mod error;
mod params;
mod render;
mod resources;

use crate::auth::FhirCaller;
use crate::error::ApiError;
use crate::extract::FhirQuery;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cpis_auth::Principal;
use cpis_core::AccessHistory;
use cpis_domain::{LocalAuthority, NhsNumber};
pub use error::FhirError;
use params::SearchOf;
use render::Canonical;
use resources::{Bundle, BundleEntry, BundleLink, BundleMeta, BundleSearch};
use serde::Serialize;
use std::collections::BTreeMap;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
static TRACE_ID: HeaderName = HeaderName::from_static("traceid");

/// The FHIR base paths: cpis's own, and the one NHS England's CP-IS API uses.
pub const BASE_PATHS: [&str; 2] = ["/fhir/R4", "/cpis/FHIR/R4"];

fn routes() -> Router<AppState> {
    Router::new()
        .route("/metadata", get(conformance::metadata))
        .route("/CareTeam", get(care_team_search))
        .route("/AuditEvent", get(audit_event_search))
        .route(
            "/Appointment",
            post(appointment::create).fallback(post_only),
        )
        .route(
            "/StructureDefinition/{id}",
            get(conformance::structure_definition),
        )
        .route("/CodeSystem/{id}", get(conformance::code_system))
        .route(
            "/{*rest}",
            get(unknown).post(unknown).put(unknown).delete(unknown),
        )
        .method_not_allowed_fallback(not_allowed)
}

pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for base in BASE_PATHS {
        router = router.nest(base, routes());
    }
    router.layer(middleware::from_fn(fhir_edge))
}

async fn not_allowed() -> Response {
    let mut resp = FhirError(ApiError::MethodNotAllowed).into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    resp
}

/// Another method on a create-only type (`Appointment`).
async fn post_only() -> Response {
    let mut resp = FhirError(ApiError::MethodNotAllowed).into_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    resp
}

async fn unknown() -> FhirError {
    FhirError(ApiError::NotFound)
}

/// Every FHIR response: echoes the caller's `TraceID` (or a new one, logged either way), carries
/// `Date`, and refuses an `Accept` cpis cannot satisfy (406) before any work is done.
async fn fhir_edge(mut req: Request, next: Next) -> Response {
    let id =
        crate::auth::trace_id_of(req.headers()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let path = req.uri().path();
    let base = BASE_PATHS
        .into_iter()
        .find(|b| path.starts_with(b))
        .unwrap_or(BASE_PATHS[0]);
    req.extensions_mut().insert(TraceId(id.clone()));
    req.extensions_mut().insert(BasePath(base));
    let mut resp = match params::accept(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => FhirError(e).into_response(),
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(TRACE_ID.clone(), v);
    }
    if !h.contains_key(header::DATE) {
        let now = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        if let Ok(v) = HeaderValue::from_str(&now) {
            h.insert(header::DATE, v);
        }
    }
    resp
}

#[derive(Clone)]
struct TraceId(String);

/// Which of [`BASE_PATHS`] the request came in on (`fullUrl`s use the same).
#[derive(Clone, Copy)]
struct BasePath(&'static str);

fn fhir_json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_string(body) {
        Ok(s) => (status, [(header::CONTENT_TYPE, FHIR_JSON)], s).into_response(),
        Err(e) => FhirError(ApiError::internal(e)).into_response(),
    }
}

/// The base of every `fullUrl`: the configured public URL (`cpis serve` defaults it to the
/// address it listens on) and the base path the request used. Never the request's `Host`
/// header, which any client can set.
fn base_url(state: &AppState, path: BasePath) -> String {
    format!("{}{}", server_url(state), path.0)
}

fn server_url(state: &AppState) -> String {
    state
        .config
        .public_base_url
        .as_deref()
        .unwrap_or("http://localhost")
        .trim_end_matches('/')
        .to_owned()
}

/// The canonical base of cpis's own definitions: configured, else the server's FHIR base.
fn canonical(state: &AppState) -> Canonical {
    Canonical(
        state
            .config
            .fhir_canonical_base
            .clone()
            .unwrap_or_else(|| format!("{}{}", server_url(state), BASE_PATHS[0]))
            .trim_end_matches('/')
            .to_owned(),
    )
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
        full_url: format!("{base}/{kind}/{id}"),
        resource: serde_json::value::to_raw_value(resource).map_err(ApiError::internal)?,
        search: BundleSearch { mode },
    })
}

fn self_link(kind: &str, nhs: NhsNumber, extra: &str) -> String {
    format!(
        "/{kind}?patient:identifier={}|{}{extra}",
        render::NHS_NUMBER_SYSTEM,
        nhs.digits()
    )
}

async fn care_team_search(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    headers: HeaderMap,
    axum::Extension(trace): axum::Extension<TraceId>,
    axum::Extension(path): axum::Extension<BasePath>,
    FhirQuery(query): FhirQuery<Vec<(String, String)>>,
) -> Result<Response, FhirError> {
    let cap = caller.grant(&state, "lookup", Principal::lookup).await?;
    let parsed = params::search(SearchOf::CareTeam, &query)
        .and_then(|s| Ok((s, params::unscheduled(&headers)?)));
    let (search, requested_unscheduled) = refuse_audited(&state, &caller, "lookup", parsed).await?;
    let nhs = search.nhs;
    // The CareTeam search shows no access history (the AuditEvent search does).
    let result = crate::lookup_flow::lookup(
        &state,
        &caller,
        &cap,
        nhs,
        requested_unscheduled,
        AccessHistory::NotShown,
        &trace.0,
    )
    .await?;
    let base = base_url(&state, path);
    let canon = canonical(&state);
    let las: BTreeMap<String, LocalAuthority> = result
        .local_authorities
        .iter()
        .map(|la| (la.ods_code.to_string(), la.clone()))
        .collect();
    let mut matches = Vec::new();
    let mut includes = Vec::new();
    for record in &result.records {
        let Some(la) = las.get(record.record.la.as_str()) else {
            return Err(ApiError::internal(anyhow::anyhow!(
                "record of an LA missing from the directory"
            ))
            .into());
        };
        for (plan, vis) in render::sorted_plans(record) {
            let ct = render::care_team(&canon, nhs, la, record, &plan, vis);
            matches.push(entry(&base, "CareTeam", &ct.id, &ct, "match")?);
        }
        let org = render::organization(la);
        includes.push(entry(&base, "Organization", &org.id, &org, "include")?);
    }
    if !result.records.is_empty() {
        let p = render::patient(&canon, nhs, &result.records);
        includes.push(entry(&base, "Patient", &p.id, &p, "include")?);
    }
    let total = matches.len();
    matches.extend(includes);
    let mut resp = fhir_json(
        StatusCode::OK,
        &bundle(&base, self_link("CareTeam", nhs, ""), total, matches),
    );
    if let Ok(v) = HeaderValue::from_str(&result.notified.len().to_string()) {
        resp.headers_mut().insert("cpis-notified-las", v);
    }
    Ok(resp)
}

/// A search refused for what it asked (400, 406) is written to the audit like every other refusal:
/// who, what was wrong, the trace id. The request's own values are not copied into the entry (an
/// invalid NHS number may be a mistyped real one).
async fn refuse_audited<T>(
    state: &AppState,
    caller: &crate::auth::Caller,
    action: &str,
    parsed: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let err = match parsed {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let entry = cpis_domain::AuditEntry::new(
        state.clock.now(),
        caller.principal.audit_actor(),
        action,
        caller.trace_id.clone(),
    )
    .outcome(cpis_domain::AuditOutcome::Denied)
    .detail(format!("refused: {}", refusal_kind(&err)));
    crate::refusals::audit(state, entry).await;
    Err(err)
}

/// What kind of bad request a refusal was, without the values sent.
fn refusal_kind(e: &ApiError) -> &'static str {
    match e {
        ApiError::InvalidSearch(_) => "invalid search data (NHS number or identifier system)",
        ApiError::NotAcceptable(_) => "a format cpis does not serve",
        _ => "a missing, repeated or unsupported parameter or header",
    }
}

/// The access history in the CP-IS guide's shape: AuditEvents (newest first, at most `_count`,
/// 25 by default) with the viewers as included PractitionerRoles and the child as the included
/// Patient, so every reference resolves inside the Bundle.
async fn audit_event_search(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    axum::Extension(trace): axum::Extension<TraceId>,
    axum::Extension(path): axum::Extension<BasePath>,
    FhirQuery(query): FhirQuery<Vec<(String, String)>>,
) -> Result<Response, FhirError> {
    let cap = caller
        .grant(&state, "lookup.history", Principal::lookup)
        .await?;
    let search = refuse_audited(
        &state,
        &caller,
        "lookup.history",
        params::search(SearchOf::AuditEvent, &query),
    )
    .await?;
    let nhs = search.nhs;
    crate::lookup_flow::admit(&state, &caller, nhs, &trace.0).await?;
    let lookups = state.lookups.clone();
    let trace_id = trace.0.clone();
    let (records, mut history) =
        tokio::task::spawn_blocking(move || lookups.history(&cap, nhs, Some(trace_id))).await??;
    crate::lookup_flow::learn(&state, &caller, nhs, !history.is_empty(), &trace.0).await;
    history.truncate(search.count);
    let sensitive = records.iter().any(|r| r.record.sensitive);
    let base = base_url(&state, path);
    let canon = canonical(&state);
    let mut entries = Vec::new();
    let mut viewers = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for access in &history {
        let ae = render::audit_event(&canon, nhs, access, sensitive);
        entries.push(entry(&base, "AuditEvent", &ae.id, &ae, "match")?);
        let role = render::practitioner_role(access, sensitive);
        if seen.insert(role.id.clone()) {
            viewers.push(entry(
                &base,
                "PractitionerRole",
                &role.id,
                &role,
                "include",
            )?);
        }
    }
    let total = entries.len();
    entries.extend(viewers);
    if total > 0 {
        let p = render::patient(&canon, nhs, &records);
        entries.push(entry(&base, "Patient", &p.id, &p, "include")?);
    }
    let extra = if search.count == params::HISTORY_LEN {
        String::new()
    } else {
        format!("&_count={}", search.count)
    };
    Ok(fhir_json(
        StatusCode::OK,
        &bundle(&base, self_link("AuditEvent", nhs, &extra), total, entries),
    ))
}
