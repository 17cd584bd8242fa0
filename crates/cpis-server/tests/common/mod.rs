//! Test harness: the real router over a real SQLite file with the demo data, driven in-process.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{TimeZone, Utc};
use cpis_core::{UploadEngine, UploadSettings};
use cpis_domain::{Accessor, FixedClock, OdsCode};
use cpis_server::{AppState, HealthIdentity, ServerConfig, StaticTokens};
use cpis_store::Store;
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

pub struct TestApp {
    pub router: axum::Router,
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
    _dir: tempfile::TempDir,
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
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(
        cpis_store::sqlite::SqliteStore::open(dir.path().join("cpis.db")).expect("open store"),
    );
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap(),
    ));
    let engine = Arc::new(UploadEngine::new(
        store.clone(),
        clock.clone(),
        UploadSettings::default(),
    ));
    cpis_core::demo::load(&engine).expect("demo data loads");
    let mut tokens = StaticTokens::default();
    tokens.insert_la(COVENTRY_TOKEN, OdsCode::parse(COVENTRY).unwrap());
    tokens.insert_la(WESTMINSTER_TOKEN, OdsCode::parse(WESTMINSTER).unwrap());
    for (token, setting, user, notify) in [
        (ED_TOKEN, "RDEMO01", "ed.clinician", true),
        (ED2_TOKEN, "RDEMO02", "ed2.clinician", true),
        (ED_SILENT_TOKEN, "RDEMO01", "ed.viewer", false),
        (GP_TOKEN, GP_SETTING, "gp.clinician", true),
    ] {
        let s = store
            .care_setting(&OdsCode::parse(setting).unwrap())
            .unwrap()
            .expect("demo care setting");
        tokens.insert_health(
            token,
            HealthIdentity {
                accessor: Accessor {
                    user_id: user.into(),
                    user_name: format!("{user} name"),
                    role: "Clinician".into(),
                    organisation: s.ods_code,
                    organisation_name: s.name,
                    setting_type: Some(s.setting_type),
                },
                may_notify: notify,
            },
        );
    }
    let lookups = cpis_core::LookupService::start(store.clone(), clock.clone(), Default::default());
    let state = AppState::new(engine, lookups, clock.clone(), tokens, config);
    TestApp {
        router: cpis_server::router(state),
        store,
        clock,
        _dir: dir,
    }
}

impl TestApp {
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
