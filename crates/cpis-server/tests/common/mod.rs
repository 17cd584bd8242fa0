//! Test harness: the real router over a real database with the demo data, driven in-process.
//!
//! The database is a SQLite file in a temporary directory by default, or a fresh PostgreSQL
//! database per app when `CPIS_TEST_BACKEND=postgres` and `CPIS_TEST_PG_URL` names a server (see
//! [`test_database`]). When a [`TestApp`] is dropped it stops its workers and checks what every
//! test must leave behind: an intact audit chain and no outbox row still leased.
#![allow(dead_code)]

pub mod web;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{TimeZone, Utc};
use cpis_auth::users::{self, NewUser};
use cpis_core::anomaly::AnomalyPolicy;
use cpis_core::{UploadEngine, UploadSettings};
use cpis_domain::{FixedClock, OdsCode, Permission, Permissions};
use cpis_server::{Application, ServerConfig, Settings};
use cpis_store::Store;
use cpis_store::UserKind;
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

pub const COVENTRY: &str = "E08000026";
pub const WESTMINSTER: &str = "E09000033";
pub const COVENTRY_TOKEN: &str = "coventry-secret-token";
pub const WESTMINSTER_TOKEN: &str = "westminster-secret-token";
/// A clinician at an emergency department (RDEMO01) with cpis:view-notify.
pub const ED_TOKEN: &str = "ed-clinician-token";
/// A second emergency department (RDEMO02) clinician.
pub const ED2_TOKEN: &str = "ed2-clinician-token";
/// A clinician at the ED holding only cpis:view-silent.
pub const ED_SILENT_TOKEN: &str = "ed-silent-token";
/// A GP (scheduled setting): always silent.
pub const GP_TOKEN: &str = "gp-clinician-token";
/// A Coventry system holding only `la:upload`.
pub const COVENTRY_UPLOAD_TOKEN: &str = "coventry-upload-only-token";
/// A Coventry social worker holding only `la:notifications`.
pub const COVENTRY_NOTIFICATIONS_TOKEN: &str = "coventry-notifications-only-token";
/// The service's operators (not an LA, not a care setting).
pub const OPERATIONS_ORG: &str = "CPISOPS";
/// `ops.admin`: `admin` only.
pub const ADMIN_TOKEN: &str = "ops-admin-token";
/// `ops.auditor`: `auditor` only.
pub const AUDITOR_TOKEN: &str = "ops-auditor-token";
/// The token of `ed.disabled`, an ED clinician whose account is disabled.
pub const DISABLED_TOKEN: &str = "ed-disabled-token";
pub const DISABLED_USER: &str = "ed.disabled";
/// Another clinician at the ED (RDEMO01) with cpis:view-notify, for tests that need a second,
/// independent identity at the same setting.
pub const ED_OTHER_TOKEN: &str = "ed-colleague-token";

pub struct TestApp {
    pub router: axum::Router,
    /// The app's store. A call made on the test's async thread runs on a thread of its own (the
    /// store does that itself: the PostgreSQL client may not block inside a runtime).
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
    /// Stopped (its workers joined) when the test ends, before the end-of-test checks.
    app: Option<Application>,
    db: TestDatabase,
}

/// The database behind one test app: its URL and what keeps it alive (dropped last).
pub struct TestDatabase {
    pub url: String,
    _guard: DatabaseGuard,
}

enum DatabaseGuard {
    Sqlite(tempfile::TempDir),
    Postgres(cpis_store::postgres::TempDatabase),
}

/// Whether the server tests run on PostgreSQL (`CPIS_TEST_BACKEND=postgres` with
/// `CPIS_TEST_PG_URL` set; with `CPIS_REQUIRE_PG=1` a missing URL fails the test).
pub fn on_postgres() -> bool {
    if std::env::var("CPIS_TEST_BACKEND").as_deref() != Ok("postgres") {
        return false;
    }
    match std::env::var("CPIS_TEST_PG_URL") {
        Ok(url) if !url.trim().is_empty() => true,
        _ if std::env::var("CPIS_REQUIRE_PG").as_deref() == Ok("1") => {
            panic!(
                "CPIS_TEST_BACKEND=postgres and CPIS_REQUIRE_PG=1 but CPIS_TEST_PG_URL is not set"
            )
        }
        _ => {
            println!("CPIS_TEST_BACKEND=postgres but CPIS_TEST_PG_URL is not set: using SQLite");
            false
        }
    }
}

/// A fresh, empty database for one app: a SQLite file in a new temporary directory, or a new
/// PostgreSQL database (dropped with the app) when [`on_postgres`].
pub fn test_database() -> TestDatabase {
    if on_postgres() {
        let admin = std::env::var("CPIS_TEST_PG_URL").unwrap_or_default();
        let db = cpis_store::postgres::TempDatabase::create(&admin)
            .expect("create a test database through CPIS_TEST_PG_URL");
        return TestDatabase {
            url: db.url().to_owned(),
            _guard: DatabaseGuard::Postgres(db),
        };
    }
    let dir = tempfile::tempdir().expect("tempdir");
    TestDatabase {
        url: dir.path().join("cpis.db").to_string_lossy().into_owned(),
        _guard: DatabaseGuard::Sqlite(dir),
    }
}

/// For a test that only means something on SQLite: on PostgreSQL says why it is skipped and
/// returns true (the test then returns).
pub fn skip_on_postgres(why: &str) -> bool {
    if on_postgres() {
        println!("skipped on PostgreSQL: {why}");
        return true;
    }
    false
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(ServerConfig::default())
}

pub fn spawn_app_with(config: ServerConfig) -> TestApp {
    spawn_app_with_options(AppOptions {
        config,
        ..AppOptions::default()
    })
}

/// How to build a test app beyond the defaults (security tests).
#[derive(Default)]
pub struct AppOptions {
    pub config: ServerConfig,
    /// An external identity provider: bearer JWTs are verified against its JWKS.
    pub jwt: Option<cpis_auth::jwt::JwtConfig>,
    /// Lookup anomaly thresholds (default: so loose the detector never fires).
    pub anomaly: Option<AnomalyPolicy>,
    /// Password lockout (default: `LockoutPolicy::default()`, 5 failures, 15 minutes).
    pub lockout: Option<cpis_auth::LockoutPolicy>,
    /// Browser sign-in through the identity provider of `jwt` (or of [`jwt_config`]).
    pub oidc: Option<cpis_auth::oidc::OidcClientConfig>,
    /// Failed-authentication limits (default: so loose every failure is audited on its own and
    /// none is answered 429; requests in tests all come from one unknown address).
    pub auth_failures: Option<cpis_auth::failure_throttle::FailurePolicy>,
}

/// When every test app starts: 2026-11-20 10:00 UTC.
pub fn start_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap()
}

pub fn spawn_app_with_options(options: AppOptions) -> TestApp {
    let AppOptions {
        config,
        jwt,
        anomaly,
        lockout,
        oidc,
        auth_failures,
    } = options;
    let oidc = oidc.map(|client| {
        let provider = jwt.clone().unwrap_or_else(jwt_config);
        cpis_auth::oidc::OidcSignIn::new(client, &provider).expect("test OIDC client")
    });
    let db = test_database();
    let clock = Arc::new(FixedClock::new(start_time()));
    // The PostgreSQL client blocks on a runtime of its own: the store is opened and the demo
    // data loaded on a plain thread, not the test's runtime.
    let (store, engine) = cpis_testkit::off_runtime(|| {
        let store: Arc<dyn Store> = Arc::from(cpis_store::open(&db.url).expect("open store"));
        let engine = UploadEngine::new(store.clone(), clock.clone(), UploadSettings::default());
        cpis_core::demo::load(&engine).expect("demo data loads");
        (store, engine)
    });
    let now = start_time();
    let people: [(&str, &str, &str, &str, &[Permission]); 12] = [
        (
            COVENTRY_TOKEN,
            COVENTRY,
            "coventry.system",
            "LA system",
            &[Permission::LaUpload, Permission::LaNotifications],
        ),
        (
            WESTMINSTER_TOKEN,
            WESTMINSTER,
            "westminster.system",
            "LA system",
            &[Permission::LaUpload, Permission::LaNotifications],
        ),
        (
            ED_TOKEN,
            "RDEMO01",
            "ed.clinician",
            "Clinician",
            &[Permission::ViewNotify],
        ),
        (
            ED2_TOKEN,
            "RDEMO02",
            "ed2.clinician",
            "Clinician",
            &[Permission::ViewNotify],
        ),
        (
            ED_SILENT_TOKEN,
            "RDEMO01",
            "ed.viewer",
            "Clinician",
            &[Permission::ViewSilent],
        ),
        (
            GP_TOKEN,
            GP_SETTING,
            "gp.clinician",
            "Clinician",
            &[Permission::ViewNotify],
        ),
        (
            COVENTRY_UPLOAD_TOKEN,
            COVENTRY,
            "coventry.uploader",
            "LA system",
            &[Permission::LaUpload],
        ),
        (
            COVENTRY_NOTIFICATIONS_TOKEN,
            COVENTRY,
            "coventry.inbox",
            "Social worker",
            &[Permission::LaNotifications],
        ),
        (
            ADMIN_TOKEN,
            OPERATIONS_ORG,
            "ops.admin",
            "Administrator",
            &[Permission::Admin],
        ),
        (
            AUDITOR_TOKEN,
            OPERATIONS_ORG,
            "ops.auditor",
            "Auditor",
            &[Permission::Auditor],
        ),
        (
            DISABLED_TOKEN,
            "RDEMO01",
            "ed.disabled",
            "Clinician",
            &[Permission::ViewNotify],
        ),
        (
            ED_OTHER_TOKEN,
            "RDEMO01",
            "ed.colleague",
            "Clinician",
            &[Permission::ViewNotify],
        ),
    ];
    for (token, org, username, role, perms) in people {
        let user = users::add(
            store.as_ref(),
            NewUser {
                username: username.into(),
                display_name: format!("{username} name"),
                kind: UserKind::User,
                organisation: OdsCode::parse(org).unwrap(),
                role: role.into(),
                permissions: Permissions::new(perms.iter().copied()),
                password: None,
            },
            now,
        )
        .expect("test user");
        users::store_token(store.as_ref(), &user, token, "test", None, now).expect("test token");
    }
    users::set_disabled(store.as_ref(), DISABLED_USER, true, now).expect("disable test user");
    let jwt = jwt.map(|c| cpis_auth::jwt::JwtVerifier::new(c).expect("test JWKS"));
    // Tests look children up far faster than people do: keep the detector out of their way
    // (its own tests set tight limits).
    let anomaly = anomaly.unwrap_or(AnomalyPolicy {
        max_per_minute: 100_000,
        max_distinct_children: 100_000,
        sequential_run: 100_000,
        miss_window: 100_000,
        org_max_lookups: 100_000,
        ..Default::default()
    });
    let loose = cpis_auth::failure_throttle::FailurePolicy {
        audit_per_window: u32::MAX,
        max_per_address: u32::MAX,
        max_per_credential: u32::MAX,
        ..Default::default()
    };
    // The production wiring (cpis_server::startup), with the test's clock and policies.
    let app = Application::build(
        engine,
        clock.clone(),
        Settings {
            anomaly,
            lockout: lockout.unwrap_or_default(),
            auth_failures: auth_failures.unwrap_or(loose),
            identity_provider: jwt,
            sign_in: oidc,
            ..Settings::new(config)
        },
    );
    TestApp {
        router: app.router(),
        store,
        clock,
        app: Some(app),
        db,
    }
}

impl Drop for TestApp {
    /// Stops the app's workers, then (unless the test already failed) checks that the audit
    /// chain verifies and that no outbox row is still leased, and panics naming what is wrong.
    /// Everything is released on a plain thread (closing PostgreSQL connections blocks).
    fn drop(&mut self) {
        let app = self.app.take();
        let router = std::mem::replace(&mut self.router, axum::Router::new());
        let check = !std::thread::panicking();
        let problems = cpis_testkit::off_runtime(|| {
            drop(router);
            drop(app);
            if !check {
                return Vec::new();
            }
            end_of_test_problems(
                self.store.as_ref(),
                &self.db.url,
                cpis_domain::Clock::now(self.clock.as_ref()),
            )
        });
        if !problems.is_empty() {
            panic!(
                "the test left the database in a bad state ({} backend):\n  {}",
                self.db.backend(),
                problems.join("\n  ")
            );
        }
    }
}

pub use cpis_testkit::end_of_test_problems;

impl TestDatabase {
    pub fn backend(&self) -> &'static str {
        match self._guard {
            DatabaseGuard::Sqlite(_) => "sqlite",
            DatabaseGuard::Postgres(_) => "postgres",
        }
    }
}

impl TestApp {
    /// The database URL behind [`TestApp::store`] (a SQLite path or a `postgres://` URL).
    pub fn db_url(&self) -> &str {
        &self.db.url
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.db.backend()
    }

    /// Runs SQL statements on the app's database behind the store's back (one transaction).
    pub fn execute_sql(&self, sql: &str) {
        cpis_testkit::execute_batch(&self.db.url, sql)
            .unwrap_or_else(|e| panic!("test SQL failed: {e}\n{sql}"));
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> Reply {
        let mut b = Request::builder().method(Method::GET).uri(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    pub async fn upload(&self, query: &str, token: &str, body: impl Into<Body>) -> Reply {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/uploads{query}"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "text/csv")
            .body(body.into())
            .unwrap();
        self.send(req).await
    }

    pub fn uploads_stored(&self) -> u64 {
        self.store.counts().unwrap().uploads
    }
}

/// A GP practice in the demo care settings.
pub const GP_SETTING: &str = "RDEMO25";

pub fn demo_file(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../demo/uploads/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("demo file")
}

pub const HEADER: &str = "action,nhs_number,local_id,given_name,family_name,date_of_birth,plan_type,start_date,end_date,expected_delivery_date,sensitive";

// ---------------------------------------------------------------------------------------------
// FHIR, notification and precise-record helpers (api_fhir.rs, api_notifications.rs).

pub const NHS_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// The child both Coventry and Westminster hold (demo/README.md), one open CPP in each.
pub const SHARED_CHILD: &str = "9990597634";
/// The emergency departments behind `ED_TOKEN` / `ED2_TOKEN`.
pub const ED_SETTING: &str = "RDEMO01";
pub const ED2_SETTING: &str = "RDEMO02";

/// `patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}` with the `|` percent-encoded.
pub fn patient_query(nhs: &str) -> String {
    format!("patient:identifier={NHS_SYSTEM}%7C{nhs}")
}

/// `2026-11-20` → that day at 10:00 UTC.
pub fn day(date: &str) -> chrono::DateTime<Utc> {
    cpis_domain::parse_iso_date(date)
        .expect("test date")
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc()
}

/// `date` plus `days`, as `YYYY-MM-DD`.
pub fn plus_days(date: &str, days: u64) -> String {
    cpis_domain::parse_iso_date(date)
        .expect("test date")
        .checked_add_days(chrono::Days::new(days))
        .unwrap()
        .to_string()
}

impl TestApp {
    /// A GET on the FHIR API with an optional bearer token and extra headers.
    pub async fn fhir_get(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut b = Request::builder().method(Method::GET).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    /// `GET /fhir/R4/CareTeam` for one NHS number; `unscheduled` is the `IsUnscheduledAccessEvent`
    /// header value (`None`: header absent).
    pub async fn care_team(&self, nhs: &str, token: &str, unscheduled: Option<&str>) -> Reply {
        let path = format!("/fhir/R4/CareTeam?{}", patient_query(nhs));
        match unscheduled {
            Some(v) => {
                self.fhir_get(&path, Some(token), &[("IsUnscheduledAccessEvent", v)])
                    .await
            }
            None => self.fhir_get(&path, Some(token), &[]).await,
        }
    }

    /// A notifying CareTeam lookup that must succeed; returns the Bundle.
    pub async fn notifying_lookup(&self, nhs: &str, token: &str) -> serde_json::Value {
        let r = self.care_team(nhs, token, Some("true")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()
    }

    /// `GET /fhir/R4/AuditEvent` for one NHS number.
    pub async fn audit_events(&self, nhs: &str, token: &str) -> Reply {
        self.fhir_get(
            &format!("/fhir/R4/AuditEvent?{}", patient_query(nhs)),
            Some(token),
            &[],
        )
        .await
    }

    /// One page of `GET /api/v1/notifications{query}`; must answer 200.
    pub async fn notifications_page(&self, token: &str, query: &str) -> serde_json::Value {
        let r = self
            .get(&format!("/api/v1/notifications{query}"), Some(token))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text());
        r.json()
    }

    /// Every notification the LA behind `token` can see, oldest first (walks all pages).
    pub async fn all_notifications(&self, token: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .notifications_page(token, &format!("?limit=1000&after={after}"))
                .await;
            let items = page["notifications"].as_array().unwrap().clone();
            let done = items.is_empty() || page["more"] == false;
            out.extend(items);
            after = page["next_cursor"].as_str().unwrap().to_owned();
            if done {
                return out;
            }
        }
    }

    /// The LA's `access` notifications about one NHS number, oldest first.
    pub async fn access_notifications(&self, token: &str, nhs: &str) -> Vec<serde_json::Value> {
        self.all_notifications(token)
            .await
            .into_iter()
            .filter(|n| n["kind"] == "access" && n["child"]["nhs_number"] == nhs)
            .collect()
    }

    /// One escalation run of the server's housekeeping, by the app's clock.
    pub fn escalate(&self) -> usize {
        let state = self.app.as_ref().expect("running app").state().clone();
        cpis_server::escalate(&state).expect("escalation run")
    }

    /// `POST {uri}` with a JSON body as the holder of `token`.
    pub async fn post_json(&self, uri: &str, token: &str, body: &serde_json::Value) -> Reply {
        self.request(
            Method::POST,
            uri,
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
        .await
    }

    /// `POST /api/v1/notifications/{id}/ack` with an optional token.
    pub async fn ack(&self, id: &str, token: Option<&str>) -> Reply {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/notifications/{id}/ack"));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    /// Uploads `rows` (cpis-upload/1 data lines) as a delta for the LA behind `token` and
    /// insists every row was accepted (`CPF02`).
    pub async fn upload_rows(&self, token: &str, rows: &[String]) -> serde_json::Value {
        let body = format!("{HEADER}\n{}\n", rows.join("\n"));
        let r = self
            .upload(
                &format!("?file_id=t-{}", uuid::Uuid::new_v4().simple()),
                token,
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let j = r.json();
        assert_eq!(j["file_outcome"], "CPF02", "{j:#}");
        j
    }

    /// The running application's state (for what the housekeeping task runs).
    pub fn state(&self) -> &cpis_server::AppState {
        self.app
            .as_ref()
            .expect("the app runs until the test ends")
            .state()
    }

    pub fn accesses_stored(&self) -> u64 {
        self.store.counts().unwrap().accesses
    }

    pub fn notifications_stored(&self) -> u64 {
        self.store.counts().unwrap().notifications
    }
}

/// A person in demo/demographics.csv.
#[derive(Debug, Clone)]
pub struct Person {
    pub nhs: String,
    pub dob: String,
    pub sensitive: bool,
}

/// Active people in demo/demographics.csv that no demo upload mentions: free for a test to
/// upload with exactly the plans it needs.
pub fn spare_people() -> Vec<Person> {
    let mut used = std::collections::HashSet::new();
    let errors = demo_file("errors-E08000026.csv");
    let uploads = cpis_core::demo::UPLOADS
        .iter()
        .map(|(_, c)| *c)
        .chain([errors.as_str()]);
    for content in uploads {
        let mut rd = csv::Reader::from_reader(content.as_bytes());
        for row in rd.records() {
            let row = row.expect("demo upload row");
            used.insert(row[1].replace(' ', ""));
        }
    }
    let mut rd = csv::Reader::from_reader(cpis_core::demo::DEMOGRAPHICS.as_bytes());
    rd.records()
        .map(|r| r.expect("demographics row"))
        .filter(|r| &r[1] == "active" && !used.contains(&r[0]))
        .map(|r| Person {
            nhs: r[0].to_owned(),
            dob: r[3].to_owned(),
            sensitive: &r[4] == "true",
        })
        .collect()
}

/// Spare children (born 2009 or later) that are not S-flagged.
pub fn spare_children() -> Vec<Person> {
    spare_people()
        .into_iter()
        .filter(|p| !p.sensitive && p.dob.as_str() >= "2009-01-01")
        .collect()
}

/// Spare S-flagged children.
pub fn spare_sensitive_children() -> Vec<Person> {
    spare_people()
        .into_iter()
        .filter(|p| p.sensitive && p.dob.as_str() >= "2009-01-01")
        .collect()
}

/// Spare adults (mothers' NHS numbers for UCPPs), not S-flagged.
pub fn spare_mothers() -> Vec<Person> {
    spare_people()
        .into_iter()
        .filter(|p| !p.sensitive && p.dob.as_str() < "2006-01-01")
        .collect()
}

/// An upsert row for a CPP (or LAC) plan.
pub fn plan_row(p: &Person, plan: &str, start: &str, end: Option<&str>) -> String {
    format!(
        "upsert,{},T-{},Test,Child,{},{plan},{start},{},,{}",
        p.nhs,
        p.nhs,
        p.dob,
        end.unwrap_or(""),
        p.sensitive
    )
}

/// An upsert row for a UCPP on a mother's NHS number.
pub fn ucpp_row(mother: &Person, start: &str, end: Option<&str>, edd: &str) -> String {
    format!(
        "upsert,{},T-{},Test,Mother,{},UCPP,{start},{},{edd},{}",
        mother.nhs,
        mother.nhs,
        mother.dob,
        end.unwrap_or(""),
        mother.sensitive
    )
}

/// A local authority as listed in demo/local_authorities.csv.
#[derive(Debug, Clone)]
pub struct LaEntry {
    pub name: String,
    pub office_hours_phone: String,
    pub edt_phone: String,
}

pub fn la_directory_entry(ods: &str) -> LaEntry {
    let text = std::fs::read_to_string(format!(
        "{}/../../demo/local_authorities.csv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("demo/local_authorities.csv");
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    rd.records()
        .map(|r| r.unwrap())
        .find(|r| &r[0] == ods)
        .map(|r| LaEntry {
            name: r[1].to_owned(),
            office_hours_phone: r[2].to_owned(),
            edt_phone: r[3].to_owned(),
        })
        .unwrap_or_else(|| panic!("{ods} in demo/local_authorities.csv"))
}

/// The name of a demo care setting (demo/care_settings.csv).
pub fn care_setting_name(ods: &str) -> String {
    let mut rd = csv::Reader::from_reader(cpis_core::demo::CARE_SETTINGS.as_bytes());
    rd.records()
        .map(|r| r.unwrap())
        .find(|r| &r[0] == ods)
        .map(|r| r[1].to_owned())
        .unwrap_or_else(|| panic!("{ods} in demo/care_settings.csv"))
}

/// Bundle entries with the given `search.mode`.
pub fn entries(bundle: &serde_json::Value, mode: &str) -> Vec<serde_json::Value> {
    bundle["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["search"]["mode"] == mode)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The resources of the Bundle's `match` entries.
pub fn matches(bundle: &serde_json::Value) -> Vec<serde_json::Value> {
    entries(bundle, "match")
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect()
}

/// Asserts an OperationOutcome reply with the given status and issue code.
pub fn assert_outcome(r: &Reply, status: StatusCode, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json"),
        "{what}: content type {:?}",
        r.headers["content-type"]
    );
    let j = r.json();
    assert_eq!(j["resourceType"], "OperationOutcome", "{what}: {j}");
    assert_eq!(j["issue"][0]["code"], code, "{what}: {j}");
    assert_eq!(j["issue"][0]["severity"], "error", "{what}: {j}");
}

// ---------------------------------------------------------------------------------------------
// Security helpers (security_matrix.rs, auth_*.rs, anomaly_http.rs).

impl TestApp {
    /// Any request: `headers` are added as given (use them for Authorization, Cookie, X-CSRF-Token).
    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Reply {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(body.into()).unwrap()).await
    }

    /// `GET /api/v1/audit{query}` as the auditor; the entries, newest first.
    pub async fn audit_entries(&self, query: &str) -> Vec<serde_json::Value> {
        let r = self
            .get(&format!("/api/v1/audit{query}"), Some(AUDITOR_TOKEN))
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "audit search {query}: {}",
            r.text()
        );
        r.json()["entries"].as_array().cloned().unwrap_or_default()
    }

    /// The newest audit entry whose action starts with `action` (and, if given, by `user`).
    pub async fn last_audit(&self, action: &str, user: Option<&str>) -> Option<serde_json::Value> {
        let mut q = format!("?limit=1&action={}", url_encode(action));
        if let Some(u) = user {
            q.push_str(&format!("&user={}", url_encode(u)));
        }
        self.audit_entries(&q).await.into_iter().next()
    }
}

/// Percent-encodes everything but unreserved characters (query values in tests).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asserts an error body (401/403/404/409…) gives nothing away: no NHS number (any run of 9 or
/// more digits), no child's name, no organisation's code or name, no user's name.
pub fn assert_reveals_nothing(body: &[u8], what: &str) {
    // A problem body names the request it answers (its path and trace id, which the caller chose
    // or was given): only the rest is the answer.
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut j) if j.get("trace_id").is_some() || j.get("instance").is_some() => {
            if let Some(o) = j.as_object_mut() {
                o.remove("trace_id");
                o.remove("instance");
            }
            std::borrow::Cow::Owned(j.to_string())
        }
        _ => String::from_utf8_lossy(body),
    };
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        assert!(run < 9, "{what}: a long digit run in an error body: {text}");
    }
    let forbidden = [
        SHARED_CHILD,
        "999 059 7634",
        "Ivy",
        "Campbell",
        COVENTRY,
        WESTMINSTER,
        "Coventry",
        "Westminster",
        "RDEMO",
        OPERATIONS_ORG,
        "coventry.system",
        "coventry.uploader",
        "coventry.inbox",
        "westminster.system",
        "ed.clinician",
        "ed.viewer",
        "ed.disabled",
        "ed2.clinician",
        "gp.clinician",
        "ops.admin",
        "ops.auditor",
        " name",
        "Demo",
    ];
    for f in forbidden {
        assert!(
            !text.contains(f),
            "{what}: error body mentions {f:?}: {text}"
        );
    }
}

/// `tests/fixtures/{name}` as text.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The test identity provider (tests/fixtures/jwt).
pub const JWT_ISSUER: &str = "https://idp.test.example";
pub const JWT_AUDIENCE: &str = "cpis";
pub const JWT_RSA_KID: &str = "cpis-test-rsa-1";
pub const JWT_EC_KID: &str = "cpis-test-ec-1";

/// An identity provider configuration trusting the keys in tests/fixtures/jwt/jwks.json.
pub fn jwt_config() -> cpis_auth::jwt::JwtConfig {
    cpis_auth::jwt::JwtConfig {
        jwks_json: fixture("jwt/jwks.json"),
        issuer: JWT_ISSUER.into(),
        audience: JWT_AUDIENCE.into(),
        org_claim: "ods".into(),
        permissions_claim: "cpis_permissions".into(),
    }
}

/// A test app that also accepts JWTs from the test identity provider.
pub fn spawn_app_with_jwt() -> TestApp {
    spawn_app_with_options(AppOptions {
        jwt: Some(jwt_config()),
        ..AppOptions::default()
    })
}

/// A problem-details body without what names the request (`instance`, `trace_id`): two answers
/// that must not be told apart compare equal on this.
pub fn problem_of(r: &Reply) -> serde_json::Value {
    let mut j: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON body");
    if let Some(o) = j.as_object_mut() {
        o.remove("instance");
        o.remove("trace_id");
    }
    j
}
