//! The OpenAPI 3.1 description of cpis's JSON API (`/api/v1`, `/auth`, `/oauth2/token`, the
//! health and metrics endpoints), served at `GET /api/v1/openapi.json`. The FHIR API is described
//! by its own CapabilityStatement (`/fhir/R4/metadata`), the web pages by nothing.
//!
//! The operations are declared here, in one place, next to the schemas of what they answer; CI
//! runs schemathesis against a running demo server with this document (every response must match
//! its schema and status, and none may be a 5xx), so a handler that drifts from it fails there.
//! Error responses are RFC 9457 problem details ([`Problem`]).

#![allow(dead_code)] // the structs below exist for their schemas

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// RFC 9457 problem details: every `/api/v1` and `/auth` error.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `status` and `title` say what happened.
    #[schema(example = "about:blank")]
    r#type: String,
    /// The HTTP status's reason phrase.
    title: String,
    status: u16,
    /// What went wrong, in words.
    detail: String,
    /// The request's path (never its query).
    instance: Option<String>,
    /// The request's trace id (`TraceID`, or one cpis made up).
    trace_id: Option<String>,
    /// cpis's error code: `bad_request`, `unauthenticated`, `sign_in_failed`, `forbidden`,
    /// `not_found`, `method_not_allowed`, `conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `throttled`, `unavailable`, `internal`.
    error: String,
    /// The same words as `detail`.
    message: String,
}

/// One notification to an LA: `access` (a child on a plan was looked up), `inactive-nhs-number`,
/// and the kinds later added; the fields beyond these depend on the kind.
#[derive(Serialize, ToSchema)]
pub struct Notification {
    /// Stable id, for de-duplication (the same on every channel).
    id: String,
    /// `access`, `inactive-nhs-number`, …
    kind: String,
    /// The LA's ODS code.
    la: String,
    /// Opaque cursor: pass it as `after` to read on from here.
    cursor: String,
    created_at: Option<String>,
    /// When the LA acknowledged it (null: not yet).
    acknowledged_at: Option<String>,
    /// `access`: whom `child` describes: `child`, or `mother` when every plan on the record is
    /// an unborn child protection plan (never call her the child).
    subject: Option<String>,
    /// Who acknowledged it first: `{"id": …, "name": …}` (null: not yet).
    #[schema(value_type = Option<Object>)]
    acknowledged_by: Option<serde_json::Value>,
    /// The acknowledgement's outcome: `known-no-action`, `social-worker-informed`,
    /// `contacted-setting`, `referred-to-mash`, `other` (null: none given, or not yet).
    outcome: Option<String>,
    /// The acknowledgement's note (at most 1000 characters).
    note: Option<String>,
    /// The team or worker the item is assigned to.
    assigned_to: Option<String>,
    /// When it was escalated (left unacknowledged past the deadline; docs/WORKFLOW.md).
    escalated_at: Option<String>,
    /// An `escalation`: the notification that became overdue (`id`, `kind`, `cursor`,
    /// `created_at`, `deadline_hours`, `assigned_to`).
    #[schema(value_type = Option<Object>)]
    overdue: Option<serde_json::Value>,
    /// The child (or, for an unborn child's plan, the mother) and the LA's plans.
    #[schema(value_type = Option<Object>)]
    child: Option<serde_json::Value>,
    /// Who looked the child up, where and when (hidden per the sensitive rules), with
    /// `organisation.phone` (the care setting's contact number, or null) and `contact`
    /// (`{ "phone", "email" }`, the clinician's work contact from their identity, or null).
    #[schema(value_type = Option<Object>)]
    access: Option<serde_json::Value>,
    /// `access` only: the child's unscheduled accesses, this one included:
    /// `{ "seen_6_months", "seen_30_days", "organisations_30_days" }`.
    #[schema(value_type = Option<Object>)]
    attendance: Option<serde_json::Value>,
    /// `access` only: `frequent-attendance` when the attendance meets the configured thresholds;
    /// absent otherwise.
    pattern: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationPage {
    /// Oldest first.
    notifications: Vec<Notification>,
    /// The cursor of the last one listed (or the `after` given): the next page's `after`.
    next_cursor: String,
    /// Whether a full page was returned (there may be more).
    more: bool,
}

/// `POST /api/v1/notifications/{id}/ack` (the body is optional: empty acknowledges receipt).
#[derive(Serialize, ToSchema)]
pub struct AckRequest {
    /// `known-no-action`, `social-worker-informed`, `contacted-setting`, `referred-to-mash` or
    /// `other`.
    outcome: Option<String>,
    /// At most 1000 characters.
    note: Option<String>,
}

/// `POST /api/v1/notifications/ack`.
#[derive(Serialize, ToSchema)]
pub struct BulkAckRequest {
    /// 1 to 500 notification ids.
    ids: Vec<String>,
    outcome: Option<String>,
    note: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BulkAckItem {
    id: String,
    /// `acknowledged`, `already-acknowledged` or `not-found`.
    status: String,
    acknowledged_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BulkAckResult {
    /// One per id, in the order given.
    results: Vec<BulkAckItem>,
}

/// `POST /api/v1/notifications/{id}/assign`: `to` or `to_me`, not both.
#[derive(Serialize, ToSchema)]
pub struct AssignRequest {
    /// A team or worker, 1 to 100 characters.
    to: Option<String>,
    /// Assign to the caller (its display name; the "assigned to me" filter).
    to_me: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct AssignResult {
    id: String,
    assigned_to: String,
    assigned_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct AckResult {
    acknowledged_at: String,
    /// It had been acknowledged before (the first acknowledgement stands).
    already_acknowledged: bool,
}

/// One row of an upload's per-record report.
#[derive(Serialize, ToSchema)]
pub struct ReportRow {
    /// The data row's number in the file.
    row: u64,
    nhs_number: String,
    /// `CPR01`…`CPR07`.
    outcome: String,
    detail: Option<String>,
    message: Option<String>,
    /// For CPR05: the number that replaced the one sent.
    new_nhs_number: Option<String>,
}

/// An upload's report: its summary, the first page of per-record rows and the file outcome.
#[derive(Serialize, ToSchema)]
pub struct UploadReport {
    id: String,
    la: String,
    file_id: String,
    /// `delta` or `full`.
    mode: String,
    file_date: String,
    format: String,
    /// `api`, `cli`, `web` or `mesh`.
    channel: String,
    content_sha256: String,
    /// `processing`, `completed`, `held-for-confirmation`, `duplicate`, …
    status: String,
    /// `CPF01`…`CPF06` (null while processing).
    file_outcome: Option<String>,
    file_outcome_description: Option<String>,
    message: Option<String>,
    #[schema(value_type = Object)]
    counts: serde_json::Value,
    received_at: String,
    completed_at: Option<String>,
    /// For a duplicate: the upload it repeats.
    duplicate_of: Option<String>,
    /// While processing: rows read so far.
    rows_processed: Option<u64>,
    records: Vec<ReportRow>,
    /// More rows follow: pass this as `after`.
    records_next_after: Option<u64>,
}

/// `Prefer: respond-async`: the upload runs on; its report is at `location`.
#[derive(Serialize, ToSchema)]
pub struct UploadAccepted {
    id: String,
    /// `processing`.
    status: String,
    location: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditActor {
    id: String,
    name: String,
    organisation: Option<String>,
    role: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditRecord {
    seq: u64,
    time: String,
    actor: AuditActor,
    action: String,
    subject_nhs: Option<String>,
    trace_id: Option<String>,
    /// `success`, `denied` or `failure`.
    outcome: String,
    detail: Option<String>,
    hash: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    entries: Vec<AuditRecord>,
    /// Pass as `before` for the next (older) page; null when this was the last.
    next_before: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditCheck {
    /// `{"Intact": {entries, head_seq, head_hash}}` or `{"Broken": {seq, problem}}`.
    #[schema(value_type = Object)]
    result: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    #[schema(value_type = Vec<Object>)]
    users: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct DeadDeliveries {
    #[schema(value_type = Vec<Object>)]
    dead_deliveries: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    user: SessionUser,
    /// For cookie sessions: send it as `X-CSRF-Token` on unsafe requests.
    csrf_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionUser {
    user_id: String,
    name: String,
    role: String,
    organisation: String,
    organisation_name: String,
    permissions: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignedIn {
    user: SessionUser,
    csrf_token: String,
    expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: String,
    /// `sqlite` or `postgres`.
    database: String,
}

/// RFC 6749 §5.1.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    access_token: String,
    /// `bearer`.
    token_type: String,
    expires_in: u64,
}

/// RFC 6749 §5.2.
#[derive(Serialize, ToSchema)]
pub struct TokenError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unsupported_grant_type`, …
    error: String,
    error_description: Option<String>,
}

/// RFC 7523 client credentials with a signed JWT assertion.
#[derive(Serialize, ToSchema)]
pub struct TokenRequest {
    /// `client_credentials`.
    grant_type: String,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    client_assertion_type: String,
    /// A JWT signed RS512 with the client's registered key.
    client_assertion: String,
}

/// What any authenticated operation may answer besides its own outcomes (problem details).
#[derive(IntoResponses)]
enum Refusals {
    /// No or bad credentials (`WWW-Authenticate: Bearer`).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// The identity may not do this (or, for an unsafe request with the session cookie, the
    /// CSRF token is missing or wrong).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// Too many failed authentications from this client (`Retry-After`).
    #[response(status = 429, content_type = "application/problem+json")]
    Throttled(Problem),
    /// The database is unavailable: try again (`Retry-After`).
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// A bad parameter, body or cursor.
#[derive(IntoResponses)]
#[response(status = 400, content_type = "application/problem+json")]
struct BadRequest(Problem);

/// Not one of this LA's (another LA's looks the same).
#[derive(IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
struct NotFound(Problem);

// ---------------------------------------------------------------------------------------------
// The operations. Each answers the errors listed with it as problem details.

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process answers", content_type = "text/plain", body = String)))]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = Readiness),
        (status = 503, description = "The database does not answer", body = Readiness)))]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics: OpenMetrics, or the Prometheus text format when `Accept: text/plain; version=0.0.4` asks for it",
        content((String = "application/openmetrics-text"), (String = "text/plain")))))]
fn metrics() {}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", body = Object)))]
fn openapi_json() {}

#[utoipa::path(post, path = "/auth/login", tag = "sessions",
    request_body(content = LoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in; the `cpis_session` cookie is set", body = SignedIn),
        (status = 400, description = "The body is not the JSON asked for", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong username or password, or the account cannot sign in now", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentications", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable", body = Problem, content_type = "application/problem+json")))]
fn login() {}

#[utoipa::path(post, path = "/auth/logout", tag = "sessions",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Signed out; the cookie is cleared"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Missing or wrong CSRF token", body = Problem, content_type = "application/problem+json")))]
fn logout() {}

#[utoipa::path(get, path = "/auth/session", tag = "sessions",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Who is signed in", body = Me),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentications", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable", body = Problem, content_type = "application/problem+json")))]
fn session() {}

#[utoipa::path(post, path = "/oauth2/token", tag = "sessions",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "An access token for the registered client", body = TokenResponse),
        (status = 400, description = "Refused (RFC 6749 §5.2)", body = TokenError),
        (status = 401, description = "Client authentication failed (RFC 6749 §5.2)", body = TokenError),
        (status = 503, description = "Temporarily unavailable", body = TokenError)))]
fn token() {}

#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications",
    security(("bearer" = []), ("session" = [])),
    params(
        ("after" = Option<String>, Query, description = "A cursor from an earlier page (default: from the start)"),
        ("limit" = Option<u32>, Query, description = "1 to 1000 (default 100)", minimum = 1, maximum = 1000),
        ("unacknowledged" = Option<bool>, Query, description = "Only those not yet acknowledged"),
        ("assigned_to_me" = Option<bool>, Query, description = "Only those assigned to the caller"),
        ("nhs_number" = Option<String>, Query, description = "Only those about this child (or mother)"),
        ("setting" = Option<String>, Query, description = "Only lookups by this care setting (ODS code)"),
        ("kind" = Option<String>, Query, description = "Only this kind (`access`, `escalation`, …)"),
        ("from" = Option<String>, Query, description = "Created at or after (date or RFC 3339 time)"),
        ("to" = Option<String>, Query, description = "Created before (date or RFC 3339 time)")),
    responses(
        (status = 200, description = "The LA's notifications after the cursor that match the filters, oldest first", body = NotificationPage),
        BadRequest,
        Refusals))]
fn notifications() {}

#[utoipa::path(post, path = "/api/v1/notifications/{id}/ack", tag = "notifications",
    security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "The notification's id")),
    request_body(content = AckRequest, content_type = "application/json", description = "Optional: an empty body acknowledges receipt only"),
    responses(
        (status = 200, description = "Acknowledged (or already was: the first acknowledgement's who, outcome and note stand)", body = AckResult),
        BadRequest,
        NotFound,
        Refusals))]
fn ack() {}

#[utoipa::path(post, path = "/api/v1/notifications/ack", tag = "notifications",
    security(("bearer" = []), ("session" = [])),
    request_body(content = BulkAckRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Each id's answer (a wrong body writes nothing: 400)", body = BulkAckResult),
        BadRequest,
        Refusals))]
fn bulk_ack() {}

#[utoipa::path(post, path = "/api/v1/notifications/{id}/assign", tag = "notifications",
    security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "The notification's id")),
    request_body(content = AssignRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Assigned (replacing an earlier assignment)", body = AssignResult),
        BadRequest,
        NotFound,
        Refusals))]
fn assign() {}

#[utoipa::path(get, path = "/api/v1/notifications/stream", tag = "notifications",
    security(("bearer" = []), ("session" = [])),
    params(("after" = Option<u64>, Query, description = "Start after this cursor (or send Last-Event-ID)")),
    responses(
        (status = 200, description = "Server-sent events: one per notification (`id` = cursor, `event` = kind, `data` = the notification)", content_type = "text/event-stream", body = String),
        BadRequest,
        Refusals))]
fn stream() {}

#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads",
    security(("bearer" = []), ("session" = [])),
    params(
        ("mode" = Option<String>, Query, description = "`delta` (default) or `full`"),
        ("file_id" = Option<String>, Query, description = "The LA's id for the file (default: from its content)"),
        ("file_date" = Option<String>, Query, description = "YYYY-MM-DD (default: today)"),
        ("format" = Option<String>, Query, description = "`cpis-upload/1` (default)"),
        ("Prefer" = Option<String>, Header, description = "`respond-async`: answer 202 at once")),
    request_body(content = String, content_type = "text/csv", description = "The cpis-upload/1 CSV (Content-Encoding: gzip accepted)"),
    responses(
        (status = 201, description = "Applied (CPF02 all, CPF03 partly, CPF04 nothing loaded); the report", body = UploadReport),
        (status = 200, description = "A duplicate of an earlier upload: nothing applied", body = UploadReport),
        (status = 202, description = "Accepted for processing (Prefer: respond-async)", body = UploadAccepted),
        (status = 422, description = "Refused whole (CPF01 unreadable, CPF06 unsupported format); the stored report", body = UploadReport),
        BadRequest,
        (status = 413, description = "Larger than the upload limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not text/csv, or an unknown content coding", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an LA identity with la:upload, or a missing CSRF token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed authentications", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable: nothing was applied; send again (the CPF05 report once the file was read, problem details before)",
            content((UploadReport = "application/json"), (Problem = "application/problem+json")))))]
fn create_upload() {}

#[utoipa::path(get, path = "/api/v1/uploads/{id}", tag = "uploads",
    security(("bearer" = []), ("session" = [])),
    params(
        ("id" = String, Path, description = "The upload's id"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`"),
        ("after" = Option<u64>, Query, description = "Report rows after this row number"),
        ("limit" = Option<u32>, Query, description = "How many report rows"),
        ("outcome" = Option<String>, Query, description = "Only rows with this outcome code (CPR01…CPR07)")),
    responses(
        (status = 200, description = "The report (JSON), or every row as CSV with format=csv", body = UploadReport),
        BadRequest,
        NotFound,
        Refusals))]
fn upload_report() {}

#[utoipa::path(post, path = "/api/v1/uploads/{id}/confirm", tag = "uploads",
    security(("bearer" = []), ("session" = [])),
    params(("id" = String, Path, description = "A held full upload's id")),
    responses(
        (status = 200, description = "Applied; the report", body = UploadReport),
        NotFound,
        (status = 409, description = "Not held, or stale (a later upload came first)", body = Problem, content_type = "application/problem+json"),
        Refusals))]
fn confirm_upload() {}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    security(("bearer" = []), ("session" = [])),
    params(
        ("nhs_number" = Option<String>, Query, description = "Entries about this child"),
        ("user" = Option<String>, Query, description = "Entries by this user id"),
        ("organisation" = Option<String>, Query, description = "Entries by this organisation (ODS code)"),
        ("action" = Option<String>, Query, description = "Action prefix, e.g. `lookup.`"),
        ("from" = Option<String>, Query, description = "RFC 3339 time"),
        ("to" = Option<String>, Query, description = "RFC 3339 time"),
        ("before" = Option<u64>, Query, description = "Entries before this sequence number (paging)"),
        ("limit" = Option<u32>, Query, description = "1 to 1000 (default 100)", minimum = 1, maximum = 1000)),
    responses(
        (status = 200, description = "Matching entries, newest first (the search is itself audited)", body = AuditPage),
        BadRequest,
        Refusals))]
fn audit_search() {}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The hash chain checked", body = AuditCheck),
        Refusals))]
fn audit_verify() {}

#[utoipa::path(get, path = "/api/v1/admin/alerts", tag = "admin",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "Security alerts (anomalies), newest first", body = AuditPage),
        Refusals))]
fn alerts() {}

#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "Every user and system", body = UserList),
        Refusals))]
fn users() {}

#[utoipa::path(get, path = "/api/v1/admin/deliveries/dead", tag = "admin",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "Webhook deliveries given up on", body = DeadDeliveries),
        Refusals))]
fn dead_deliveries() {}

#[utoipa::path(post, path = "/api/v1/admin/demographics/changes", tag = "admin",
    security(("bearer" = []), ("session" = [])),
    request_body(content = String, content_type = "text/csv", description = "A demographics change feed (CSV: nhs_number,status,superseded_by,date_of_birth,sensitive[,mother_nhs_number]; docs/LIFECYCLE.md)"),
    responses(
        (status = 200, description = "What the feed changed", body = Object),
        BadRequest,
        (status = 413, description = "Too large for HTTP: use the CLI", body = Problem, content_type = "application/problem+json"),
        Refusals))]
fn demographics_changes() {}

#[utoipa::path(post, path = "/api/v1/admin/purge", tag = "admin",
    security(("bearer" = []), ("session" = [])),
    params(("dry_run" = Option<bool>, Query, description = "Only count what would go (default true)")),
    responses(
        (status = 200, description = "What the retention purge removed (or would)", body = Object),
        BadRequest,
        Refusals))]
fn purge() {}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token, an application token from /oauth2/token, an NHS CIS2 token or a JWT from the configured identity provider"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "cpis_session",
                "The web session cookie (from /auth/login); unsafe requests also send X-CSRF-Token",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cpis API",
        description = "Child Protection – Information Sharing: the LA upload and notification API, sessions and tokens, audit and administration. The FHIR API for health systems is described by /fhir/R4/metadata.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    paths(healthz, readyz, metrics, openapi_json, login, logout, session, token, notifications, ack,
          bulk_ack, assign, stream,
          create_upload, upload_report, confirm_upload, audit_search, audit_verify, alerts, users,
          dead_deliveries, demographics_changes, purge),
    modifiers(&Security),
    tags(
        (name = "uploads", description = "LA files (SPEC 3.2)"),
        (name = "notifications", description = "LA notifications (SPEC 3.3)"),
        (name = "sessions", description = "Sign-in, sessions and application tokens"),
        (name = "audit", description = "The audit trail"),
        (name = "admin", description = "Administration"),
        (name = "operations", description = "Health, readiness and metrics")
    )
)]
struct ApiDoc;

/// The document, with cpis's version.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Response {
    match document().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => crate::error::ApiError::internal(e).into_response(),
    }
}
