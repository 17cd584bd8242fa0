//! Who may call what (SPEC 4, docs/SECURITY.md): every endpoint × every kind of identity, with
//! the exact status each must get. Refusals are audited, give nothing away, and another LA's
//! upload or notification is indistinguishable from one that does not exist.

use crate::common::*;
use axum::http::{Method, StatusCode};
use serde_json::Value;

/// The identities the matrix runs as (columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// No `Authorization` header, no cookie.
    Nobody,
    /// `Bearer` with a token nobody was issued.
    Garbage,
    /// The token of a disabled account.
    Disabled,
    /// An emergency department clinician (`cpis:view-notify`).
    Ed,
    /// An emergency department viewer holding only `cpis:view-silent`.
    EdSilent,
    /// A GP (scheduled setting, `cpis:view-notify`).
    Gp,
    /// Coventry's LA system (`la:upload la:notifications`): owns the resources below.
    Coventry,
    /// A Coventry system with `la:upload` only.
    CovUpload,
    /// A Coventry social worker with `la:notifications` only.
    CovInbox,
    /// Westminster's LA system: a foreign LA for Coventry's resources.
    Westminster,
    /// `admin` at the operations organisation.
    Admin,
    /// `auditor` at the operations organisation.
    Auditor,
}

const WHO: [Who; 12] = [
    Who::Nobody,
    Who::Garbage,
    Who::Disabled,
    Who::Ed,
    Who::EdSilent,
    Who::Gp,
    Who::Coventry,
    Who::CovUpload,
    Who::CovInbox,
    Who::Westminster,
    Who::Admin,
    Who::Auditor,
];

impl Who {
    fn token(self) -> Option<&'static str> {
        match self {
            Who::Nobody => None,
            Who::Garbage => Some("cpis_not-a-token-anyone-was-ever-issued"),
            Who::Disabled => Some(DISABLED_TOKEN),
            Who::Ed => Some(ED_TOKEN),
            Who::EdSilent => Some(ED_SILENT_TOKEN),
            Who::Gp => Some(GP_TOKEN),
            Who::Coventry => Some(COVENTRY_TOKEN),
            Who::CovUpload => Some(COVENTRY_UPLOAD_TOKEN),
            Who::CovInbox => Some(COVENTRY_NOTIFICATIONS_TOKEN),
            Who::Westminster => Some(WESTMINSTER_TOKEN),
            Who::Admin => Some(ADMIN_TOKEN),
            Who::Auditor => Some(AUDITOR_TOKEN),
        }
    }

    /// The audit's actor id for an authenticated identity.
    fn user(self) -> Option<&'static str> {
        match self {
            Who::Nobody | Who::Garbage | Who::Disabled => None,
            Who::Ed => Some("ed.clinician"),
            Who::EdSilent => Some("ed.viewer"),
            Who::Gp => Some("gp.clinician"),
            Who::Coventry => Some("coventry.system"),
            Who::CovUpload => Some("coventry.uploader"),
            Who::CovInbox => Some("coventry.inbox"),
            Who::Westminster => Some("westminster.system"),
            Who::Admin => Some("ops.admin"),
            Who::Auditor => Some("ops.auditor"),
        }
    }
}

/// The endpoints (rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ep {
    Healthz,
    Readyz,
    UploadCreate,
    UploadReport,
    UploadConfirm,
    NotificationList,
    NotificationAck,
    NotificationAssign,
    NotificationBulkAck,
    CareTeam,
    AuditEvent,
    Metadata,
    AuditSearch,
    AuditVerify,
    AdminAlerts,
    AdminUsers,
    Session,
}

impl Ep {
    /// The audit action a refusal of this endpoint is written under.
    fn action(self) -> Option<&'static str> {
        Some(match self {
            Ep::UploadCreate => "upload.submit",
            Ep::UploadReport => "upload.report",
            Ep::UploadConfirm => "upload.confirm",
            Ep::NotificationList => "notification.list",
            Ep::NotificationAck | Ep::NotificationBulkAck => "notification.ack",
            Ep::NotificationAssign => "notification.assign",
            Ep::CareTeam => "lookup",
            Ep::AuditEvent => "lookup.history",
            Ep::AuditSearch => "audit.search",
            Ep::AuditVerify => "audit.verify",
            Ep::AdminAlerts => "admin.alerts",
            Ep::AdminUsers => "admin.users.list",
            Ep::Healthz | Ep::Readyz | Ep::Metadata | Ep::Session => return None,
        })
    }

    fn takes_an_id(self) -> bool {
        matches!(
            self,
            Ep::UploadReport | Ep::UploadConfirm | Ep::NotificationAck | Ep::NotificationAssign
        )
    }
}

/// The expected status of every endpoint for every identity.
///
/// * Coventry's resources: `UploadReport`/`UploadConfirm` name an upload Coventry has applied
///   (so confirming it is 409 "not held" for an identity allowed to try), `NotificationAck` names
///   a Coventry access notification. Westminster gets 404 for them, byte-identical to the 404
///   for an id that does not exist.
/// * Each successful upload sends a different file (so none is a duplicate).
#[rustfmt::skip]
const MATRIX: [(Ep, &str, [u16; 12]); 17] = [
    //                                                     none garb  dis   ED  sil   GP  COV COVu COVn  WES  ADM  AUD
    (Ep::Healthz,          "GET  /healthz",               [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (Ep::Readyz,           "GET  /readyz",                [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (Ep::UploadCreate,     "POST /api/v1/uploads",        [401, 401, 401, 403, 403, 403, 201, 201, 403, 201, 403, 403]),
    (Ep::UploadReport,     "GET  /api/v1/uploads/{id}",   [401, 401, 401, 403, 403, 403, 200, 200, 403, 404, 403, 403]),
    (Ep::UploadConfirm,    "POST /api/v1/uploads/{id}/confirm",
                                                          [401, 401, 401, 403, 403, 403, 409, 409, 403, 404, 403, 403]),
    (Ep::NotificationList, "GET  /api/v1/notifications",  [401, 401, 401, 403, 403, 403, 200, 403, 200, 200, 403, 403]),
    (Ep::NotificationAck,  "POST /api/v1/notifications/{id}/ack",
                                                          [401, 401, 401, 403, 403, 403, 200, 403, 200, 404, 403, 403]),
    (Ep::NotificationAssign, "POST /api/v1/notifications/{id}/assign",
                                                          [401, 401, 401, 403, 403, 403, 200, 403, 200, 404, 403, 403]),
    // Bulk: each id answered in the body (Westminster's answer: not-found).
    (Ep::NotificationBulkAck, "POST /api/v1/notifications/ack",
                                                          [401, 401, 401, 403, 403, 403, 200, 403, 200, 200, 403, 403]),
    (Ep::CareTeam,         "GET  /fhir/R4/CareTeam",      [401, 401, 401, 200, 200, 200, 403, 403, 403, 403, 403, 403]),
    (Ep::AuditEvent,       "GET  /fhir/R4/AuditEvent",    [401, 401, 401, 200, 200, 200, 403, 403, 403, 403, 403, 403]),
    (Ep::Metadata,         "GET  /fhir/R4/metadata",      [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    (Ep::AuditSearch,      "GET  /api/v1/audit",          [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 200]),
    (Ep::AuditVerify,      "GET  /api/v1/audit/verify",   [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 200]),
    (Ep::AdminAlerts,      "GET  /api/v1/admin/alerts",   [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 200, 403]),
    (Ep::AdminUsers,       "GET  /api/v1/admin/users",    [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 200, 403]),
    (Ep::Session,          "GET  /auth/session",          [401, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
];

/// What the id-taking endpoints point at.
struct Targets {
    coventry_upload: String,
    coventry_notification: String,
}

#[derive(Clone, Copy)]
enum Target {
    /// Coventry's resource.
    Coventry,
    /// An id that exists nowhere.
    Random,
}

const RANDOM_ID: &str = "0b1e6a4c-3f7d-4a8e-9c2b-5d6e7f8a9b0c";

async fn setup(app: &TestApp) -> Targets {
    // An applied Coventry upload.
    let child = spare_children().remove(0);
    let upload = app
        .upload_rows(
            COVENTRY_TOKEN,
            &[plan_row(&child, "CPP", "2026-02-01", None)],
        )
        .await;
    // A Coventry access notification (the shared child is also Westminster's).
    app.notifying_lookup(SHARED_CHILD, ED2_TOKEN).await;
    let note = app
        .access_notifications(COVENTRY_TOKEN, SHARED_CHILD)
        .await
        .pop()
        .expect("Coventry was notified");
    Targets {
        coventry_upload: upload["id"].as_str().unwrap().to_owned(),
        coventry_notification: note["id"].as_str().unwrap().to_owned(),
    }
}

async fn call(
    app: &TestApp,
    ep: Ep,
    who: Who,
    column: usize,
    t: &Targets,
    target: Target,
) -> Reply {
    let auth = who.token().map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    let (upload, note) = match target {
        Target::Coventry => (t.coventry_upload.as_str(), t.coventry_notification.as_str()),
        Target::Random => (RANDOM_ID, RANDOM_ID),
    };
    let lookup = patient_query(SHARED_CHILD);
    let (method, uri, body) = match ep {
        Ep::Healthz => (Method::GET, "/healthz".to_owned(), String::new()),
        Ep::Readyz => (Method::GET, "/readyz".to_owned(), String::new()),
        Ep::UploadCreate => {
            headers.push(("content-type", "text/csv"));
            // A different spare child per column: no two uploads are the same file.
            let child = &spare_children()[10 + column];
            let body = format!("{HEADER}\n{}\n", plan_row(child, "CPP", "2026-01-15", None));
            (
                Method::POST,
                format!("/api/v1/uploads?file_id=matrix-{column}"),
                body,
            )
        }
        Ep::UploadReport => (
            Method::GET,
            format!("/api/v1/uploads/{upload}"),
            String::new(),
        ),
        Ep::UploadConfirm => (
            Method::POST,
            format!("/api/v1/uploads/{upload}/confirm"),
            String::new(),
        ),
        Ep::NotificationList => (
            Method::GET,
            "/api/v1/notifications".to_owned(),
            String::new(),
        ),
        Ep::NotificationAck => (
            Method::POST,
            format!("/api/v1/notifications/{note}/ack"),
            String::new(),
        ),
        Ep::NotificationAssign => (
            Method::POST,
            format!("/api/v1/notifications/{note}/assign"),
            r#"{"to": "MASH team"}"#.to_owned(),
        ),
        Ep::NotificationBulkAck => (
            Method::POST,
            "/api/v1/notifications/ack".to_owned(),
            format!(r#"{{"ids": ["{note}"], "outcome": "known-no-action"}}"#),
        ),
        Ep::CareTeam => (
            Method::GET,
            format!("/fhir/R4/CareTeam?{lookup}"),
            String::new(),
        ),
        Ep::AuditEvent => (
            Method::GET,
            format!("/fhir/R4/AuditEvent?{lookup}"),
            String::new(),
        ),
        Ep::Metadata => (Method::GET, "/fhir/R4/metadata".to_owned(), String::new()),
        Ep::AuditSearch => (
            Method::GET,
            "/api/v1/audit?limit=5".to_owned(),
            String::new(),
        ),
        Ep::AuditVerify => (
            Method::GET,
            "/api/v1/audit/verify".to_owned(),
            String::new(),
        ),
        Ep::AdminAlerts => (
            Method::GET,
            "/api/v1/admin/alerts".to_owned(),
            String::new(),
        ),
        Ep::AdminUsers => (Method::GET, "/api/v1/admin/users".to_owned(), String::new()),
        Ep::Session => (Method::GET, "/auth/session".to_owned(), String::new()),
    };
    app.request(method, &uri, &headers, body).await
}

fn seq(entry: &Option<Value>) -> u64 {
    entry.as_ref().map_or(0, |e| e["seq"].as_u64().unwrap())
}

fn assert_security_headers(r: &Reply, what: &str) {
    for (name, value) in [
        ("x-content-type-options", Some("nosniff")),
        ("x-frame-options", Some("DENY")),
        ("referrer-policy", Some("no-referrer")),
        ("cache-control", Some("no-store")),
        ("content-security-policy", None),
        ("permissions-policy", None),
        ("strict-transport-security", None),
    ] {
        let got = r
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name} header"));
        if let Some(v) = value {
            assert_eq!(got, v, "{what}: {name}");
        }
    }
}

#[tokio::test]
async fn every_endpoint_answers_every_identity_as_the_matrix_says() {
    let app = spawn_app();
    let targets = setup(&app).await;
    let mut failures = Vec::new();
    for (ep, name, row) in MATRIX {
        for (column, (who, expected)) in WHO.into_iter().zip(row).enumerate() {
            let what = format!("{name} as {who:?}");
            let before = match (who.user(), ep.action()) {
                (Some(u), Some(a)) => seq(&app.last_audit(a, Some(u)).await),
                _ => 0,
            };
            let bearer_before = seq(&app.last_audit("auth.bearer", Some("anonymous")).await);
            let r = call(&app, ep, who, column, &targets, Target::Coventry).await;
            if r.status.as_u16() != expected {
                failures.push(format!(
                    "{what}: expected {expected}, got {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
                continue;
            }
            assert_security_headers(&r, &what);
            match r.status {
                StatusCode::UNAUTHORIZED => {
                    assert_reveals_nothing(&r.body, &what);
                    assert_eq!(r.headers["www-authenticate"], "Bearer", "{what}");
                    if who.token().is_some() {
                        let after = app.last_audit("auth.bearer", Some("anonymous")).await;
                        assert!(
                            seq(&after) > bearer_before,
                            "{what}: failed bearer not audited"
                        );
                        assert_eq!(after.unwrap()["outcome"], "denied", "{what}");
                    }
                }
                StatusCode::FORBIDDEN => {
                    assert_reveals_nothing(&r.body, &what);
                    let action = ep.action().expect("a 403 names an action");
                    let user = who.user().expect("a 403 is for someone authenticated");
                    let entry = app.last_audit(action, Some(user)).await;
                    assert!(
                        seq(&entry) > before,
                        "{what}: no audit entry for the refusal"
                    );
                    let entry = entry.unwrap();
                    assert_eq!(entry["action"], action, "{what}: {entry}");
                    assert_eq!(entry["outcome"], "denied", "{what}: {entry}");
                    assert_eq!(entry["actor"]["id"], user, "{what}: {entry}");
                }
                StatusCode::NOT_FOUND | StatusCode::CONFLICT => {
                    assert_reveals_nothing(&r.body, &what);
                }
                _ => {}
            }
            if r.status == StatusCode::NOT_FOUND {
                assert!(ep.takes_an_id(), "{what}: 404 only for ids");
                let random = call(&app, ep, who, column, &targets, Target::Random).await;
                assert_eq!(random.status, StatusCode::NOT_FOUND, "{what}: random id");
                assert_eq!(
                    problem_of(&r),
                    problem_of(&random),
                    "{what}: another LA's resource must look exactly like a missing one"
                );
                assert_eq!(
                    r.headers.get("content-type"),
                    random.headers.get("content-type"),
                    "{what}"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells differ from the matrix:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A 200 from the matrix really is the caller's own data: each LA sees only its notifications,
/// and `/auth/session` names the caller.
#[tokio::test]
async fn successful_answers_carry_only_the_callers_own_data() {
    let app = spawn_app();
    setup(&app).await;
    for (token, la) in [
        (COVENTRY_TOKEN, COVENTRY),
        (COVENTRY_NOTIFICATIONS_TOKEN, COVENTRY),
        (WESTMINSTER_TOKEN, WESTMINSTER),
    ] {
        let all = app.all_notifications(token).await;
        assert!(!all.is_empty(), "{la}: has notifications");
        for n in &all {
            let text = n.to_string();
            let other = if la == COVENTRY {
                WESTMINSTER
            } else {
                COVENTRY
            };
            assert!(
                !text.contains(&format!("\"{other}\"")),
                "{la} sees another LA's notification: {text}"
            );
        }
    }
    let me = app.get("/auth/session", Some(GP_TOKEN)).await.json();
    assert_eq!(me["user"]["user_id"], "gp.clinician");
    assert_eq!(me["user"]["organisation"], GP_SETTING);
    assert_eq!(
        me["csrf_token"],
        Value::Null,
        "bearer callers have no CSRF token"
    );
}

/// A full upload held by the mass-ending guard can be confirmed by its own LA only; another LA
/// gets the same 404 as for an upload that does not exist.
#[tokio::test]
async fn a_held_upload_is_confirmed_by_its_own_la_only() {
    let app = spawn_app();
    let child = spare_children().remove(0);
    let body = format!(
        "{HEADER}\n{}\n",
        plan_row(&child, "CPP", "2026-02-01", None)
    );
    let r = app
        .upload("?mode=full&file_id=held-1", COVENTRY_TOKEN, body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let held = r.json();
    assert_eq!(held["status"], "held-for-confirmation", "{held:#}");
    let id = held["id"].as_str().unwrap();

    let confirm = |token: &'static str, id: String| {
        let app = &app;
        async move {
            app.request(
                Method::POST,
                &format!("/api/v1/uploads/{id}/confirm"),
                &[("authorization", &format!("Bearer {token}"))],
                "",
            )
            .await
        }
    };
    let foreign = confirm(WESTMINSTER_TOKEN, id.to_owned()).await;
    let missing = confirm(WESTMINSTER_TOKEN, RANDOM_ID.to_owned()).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(problem_of(&foreign), problem_of(&missing));
    assert_reveals_nothing(&foreign.body, "foreign confirm");
    let foreign_report = app
        .get(&format!("/api/v1/uploads/{id}"), Some(WESTMINSTER_TOKEN))
        .await;
    assert_eq!(foreign_report.status, StatusCode::NOT_FOUND);
    assert_eq!(problem_of(&foreign_report), problem_of(&missing));

    let inbox = confirm(COVENTRY_NOTIFICATIONS_TOKEN, id.to_owned()).await;
    assert_eq!(inbox.status, StatusCode::FORBIDDEN, "{}", inbox.text());

    let ok = confirm(COVENTRY_UPLOAD_TOKEN, id.to_owned()).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["status"], "completed", "{}", ok.text());
    let again = confirm(COVENTRY_TOKEN, id.to_owned()).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
}

/// A health identity looks up one child per request: nothing lists or exports the register.
#[tokio::test]
async fn a_health_identity_cannot_list_or_export_the_register() {
    let app = spawn_app();
    let both = format!(
        "/fhir/R4/CareTeam?{}&{}",
        patient_query(SHARED_CHILD),
        patient_query("9434765919")
    );
    for token in [ED_TOKEN, ED_SILENT_TOKEN, GP_TOKEN] {
        for (path, status, code) in [
            ("/fhir/R4/CareTeam", 400, "invalid"),
            ("/fhir/R4/CareTeam?_count=1000", 400, "invalid"),
            ("/fhir/R4/CareTeam?patient:identifier=", 400, "invalid"),
            ("/fhir/R4/CareTeam?patient:identifier=*", 400, "invalid"),
            (
                "/fhir/R4/CareTeam?patient:identifier=999%25",
                400,
                "invalid",
            ),
            ("/fhir/R4/CareTeam?patient=Patient%2F1", 400, "invalid"),
            (both.as_str(), 400, "invalid"),
            ("/fhir/R4/AuditEvent", 400, "invalid"),
            ("/fhir/R4/Patient", 404, "not-found"),
            ("/fhir/R4/Patient?identifier=9990597634", 404, "not-found"),
            ("/fhir/R4/CareTeam/1", 404, "not-found"),
            ("/fhir/R4/CareTeam/_search", 404, "not-found"),
            ("/fhir/R4/$export", 404, "not-found"),
            ("/fhir/R4/Patient/$export", 404, "not-found"),
            ("/fhir/R4/Group/all/$export", 404, "not-found"),
            ("/fhir/R4/Organization", 404, "not-found"),
        ] {
            let r = app.fhir_get(path, Some(token), &[]).await;
            assert_outcome(
                &r,
                StatusCode::from_u16(status).unwrap(),
                code,
                &format!("{path} as {token}"),
            );
            assert!(
                !r.text().contains("\"CareTeam\",") && !r.text().contains("searchset"),
                "{path}: no bundle"
            );
        }
        for path in [
            "/api/v1/records",
            "/api/v1/children",
            "/api/v1/export",
            "/api/v1/records.csv",
            "/fhir/R4",
        ] {
            let r = app.get(path, Some(token)).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        }
        let post = app
            .request(
                Method::POST,
                "/fhir/R4/CareTeam/_search",
                &[("authorization", &format!("Bearer {token}"))],
                "",
            )
            .await;
        assert_eq!(post.status, StatusCode::NOT_FOUND, "POST _search");
    }
    // None of that was a lookup: nothing was recorded against any child.
    assert_eq!(app.accesses_stored(), 0);
}

/// API tokens: disabling an account stops its tokens within the 10-second cache time, an expired
/// token is refused, and re-enabling the account brings its tokens back.
#[tokio::test]
async fn disabled_accounts_and_expired_tokens_are_refused() {
    let app = spawn_app();
    let start = start_time();
    let ok = app.get("/api/v1/notifications", Some(COVENTRY_TOKEN)).await;
    assert_eq!(ok.status, StatusCode::OK);
    cpis_auth::users::set_disabled(app.store.as_ref(), "coventry.system", true, start).unwrap();
    app.clock.set(start + chrono::Duration::seconds(10));
    let r = app.get("/api/v1/notifications", Some(COVENTRY_TOKEN)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "disabled within 10 s");
    assert_reveals_nothing(&r.body, "disabled");
    cpis_auth::users::set_disabled(app.store.as_ref(), "coventry.system", false, start).unwrap();
    let r = app.get("/api/v1/notifications", Some(COVENTRY_TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "enabled again");

    let token = cpis_auth::users::issue_token(
        app.store.as_ref(),
        "westminster.system",
        "short-lived",
        Some(chrono::Duration::days(1)),
        start,
    )
    .unwrap();
    assert!(token.starts_with("cpis_"));
    app.clock.set(start + chrono::Duration::hours(23));
    let r = app.get("/api/v1/notifications", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    app.clock
        .set(start + chrono::Duration::days(1) + chrono::Duration::seconds(11));
    let r = app.get("/api/v1/notifications", Some(&token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "expired");
    // The long-lived token of the same account still works.
    let r = app
        .get("/api/v1/notifications", Some(WESTMINSTER_TOKEN))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}
