//! The evidence export (docs/WORKFLOW.md "Evidence export"): a child's whole unscheduled access
//! history as CSV (formula-safe cells, every page of the store) and as a printable page, linked
//! from the records page; only for a child the LA holds a record for (404 otherwise); audited.

use crate::common::web::*;
use crate::common::*;
use axum::http::StatusCode;
use cpis_auth::users::{self, NewUser};
use cpis_domain::Clock;
use cpis_domain::{
    Access, AccessKind, Accessor, NhsIdentity, NhsNumber, OdsCode, Permission, Permissions,
    SettingType,
};
use cpis_store::UserKind;

async fn sign_in(app: &TestApp, la: &str, username: &str, perms: &[Permission]) -> Browser {
    add_web_user(
        app,
        username,
        &format!("{username} name"),
        la,
        "Social worker",
        perms,
    );
    let (_, cookie) = submit_sign_in(app, username).await;
    Browser {
        cookie,
        csrf: String::new(),
    }
}

const BOTH: &[Permission] = &[Permission::LaUpload, Permission::LaNotifications];

/// A clinician at the ED whose name a spreadsheet would run as a formula.
fn add_formula_clinician(app: &TestApp) -> &'static str {
    const TOKEN: &str = "formula-clinician-token";
    let user = users::add(
        app.store.as_ref(),
        NewUser {
            username: "formula.clinician".into(),
            display_name: "=HYPERLINK(\"http://evil.example\",\"x\")".into(),
            kind: UserKind::User,
            organisation: OdsCode::parse(ED_SETTING).unwrap(),
            role: "+Clinician".into(),
            permissions: Permissions::new([Permission::ViewNotify]),
            password: None,
        },
        start_time(),
    )
    .unwrap();
    users::store_token(app.store.as_ref(), &user, TOKEN, "test", None, start_time()).unwrap();
    TOKEN
}

fn csv_rows(r: &Reply) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut rd = csv::Reader::from_reader(r.body.as_slice());
    let header = rd.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = rd.records().map(Result::unwrap).collect();
    (header, rows)
}

#[tokio::test]
async fn an_la_exports_its_childs_whole_history_as_csv_and_a_printable_page() {
    let app = spawn_app();
    let spare = spare_children();
    let (child, not_held) = (&spare[0], &spare[1]);
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(child, "CPP", "2026-01-01", None)],
    )
    .await;
    let evil = add_formula_clinician(&app);
    app.notifying_lookup(&child.nhs, ED_TOKEN).await;
    app.clock
        .set(app.clock.now() + chrono::Duration::minutes(5));
    app.notifying_lookup(&child.nhs, ED2_TOKEN).await;
    app.clock
        .set(app.clock.now() + chrono::Duration::minutes(5));
    app.notifying_lookup(&child.nhs, evil).await;
    // Silent lookups (a GP; an ED viewer without the notifying permission) are not the history.
    app.care_team(&child.nhs, GP_TOKEN, Some("true")).await;
    app.care_team(&child.nhs, ED_SILENT_TOKEN, Some("true"))
        .await;
    // Another child's access is not this child's history.
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;

    let coventry = sign_in(&app, COVENTRY, "cov.worker", BOTH).await;
    let r = coventry
        .get(&app, &format!("/la/records/{}/history.csv", child.nhs))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        r.headers["content-disposition"],
        format!("attachment; filename=\"access-history-{}.csv\"", child.nhs).as_str()
    );
    assert_eq!(r.headers["cache-control"], "no-store");
    let (header, rows) = csv_rows(&r);
    assert_eq!(header[0], "time_utc");
    assert_eq!(header.len(), 12);
    assert_eq!(rows.len(), 3, "the three notifying lookups: {rows:?}");
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert!(rows
        .iter()
        .all(|r| &r[col("nhs_number")] == child.nhs.as_str()));
    assert_eq!(
        &rows[0][col("time_utc")],
        "2026-11-20T10:00:00Z",
        "oldest first"
    );
    assert_eq!(&rows[0][col("time_uk")], "20 November 2026, 10:00 (GMT)");
    assert_eq!(&rows[0][col("organisation_ods")], ED_SETTING);
    assert_eq!(&rows[1][col("organisation_ods")], ED2_SETTING);
    assert_eq!(&rows[0][col("setting_type")], "emergency-department");
    assert_eq!(&rows[0][col("user_name")], "ed.clinician name");
    assert_eq!(
        &rows[2][col("user_name")],
        "'=HYPERLINK(\"http://evil.example\",\"x\")",
        "a formula is quoted"
    );
    assert_eq!(&rows[2][col("role")], "'+Clinician");
    let entry = app.last_audit("evidence.export", None).await.unwrap();
    assert_eq!(entry["outcome"], "success");
    assert_eq!(entry["subject_nhs"], child.nhs.as_str());
    assert_eq!(entry["actor"]["organisation"], COVENTRY);
    assert_eq!(entry["detail"], "access history as csv");

    let r = coventry
        .get(&app, &format!("/la/records/{}/history", child.nhs))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let page = r.text();
    assert!(page.contains("3 accesses"), "{page}");
    assert!(page.contains(&care_setting_name(ED_SETTING)), "{page}");
    assert!(page.contains(&care_setting_name(ED2_SETTING)), "{page}");
    assert!(
        page.contains("=HYPERLINK(&#34;http://evil.example&#34;"),
        "escaped on the page: {page}"
    );
    assert!(
        !page.contains(&care_setting_name(GP_SETTING)),
        "silent lookups are not listed"
    );
    assert!(page.contains(&format!("/la/records/{}/history.csv", child.nhs)));
    assert!(page.contains("cpis-no-print"));
    assert!(page.contains("Produced"));
    let entry = app.last_audit("evidence.export", None).await.unwrap();
    assert_eq!(entry["detail"], "access history as print");

    // The records page links both.
    let r = coventry
        .get(&app, &format!("/la/records?q={}", child.nhs))
        .await;
    assert!(r
        .text()
        .contains(&format!("href=\"/la/records/{}/history\"", child.nhs)));

    // Another LA's child, nobody's child, and a number that is not one: 404, the first two audited.
    let westminster = sign_in(&app, WESTMINSTER, "wes.worker", BOTH).await;
    for path in ["history", "history.csv"] {
        let r = westminster
            .get(&app, &format!("/la/records/{}/{path}", child.nhs))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!r.text().contains("ed.clinician"), "{path}");
        let entry = app.last_audit("evidence.export", None).await.unwrap();
        assert_eq!(entry["outcome"], "denied", "{entry}");
        assert_eq!(entry["actor"]["organisation"], WESTMINSTER);
        assert_eq!(entry["subject_nhs"], child.nhs.as_str());
        let r = coventry
            .get(&app, &format!("/la/records/{}/{path}", not_held.nhs))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        let entry = app.last_audit("evidence.export", None).await.unwrap();
        assert_eq!(entry["outcome"], "denied", "{entry}");
        let r = coventry.get(&app, &format!("/la/records/123/{path}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }

    // Without la:notifications: no link, and the export is refused (audited).
    let uploader = sign_in(&app, COVENTRY, "cov.uploader", &[Permission::LaUpload]).await;
    let r = uploader
        .get(&app, &format!("/la/records?q={}", child.nhs))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.text().contains("/history"), "no link");
    let r = uploader
        .get(&app, &format!("/la/records/{}/history.csv", child.nhs))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let entry = app.last_audit("evidence.export", None).await.unwrap();
    assert_eq!(entry["outcome"], "denied");
    assert_eq!(entry["actor"]["role"], "Social worker [la:upload]");
}

#[tokio::test]
async fn a_long_history_is_exported_whole_across_store_pages() {
    let app = spawn_app();
    let child = &spare_children()[0];
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(child, "CPP", "2026-01-01", None)],
    )
    .await;
    let nhs = NhsNumber::parse(&child.nhs).unwrap();
    let total = cpis_core::evidence::PAGE as usize * 2 + 7;
    let store = app.store.clone();
    cpis_testkit::off_runtime(move || {
        let mut tx = store.begin_lookups().unwrap();
        for i in 0..total {
            tx.insert_access(&Access {
                id: format!("bulk-{i}"),
                time: start_time() - chrono::Duration::minutes((total - i) as i64),
                nhs_number: nhs,
                accessor: Accessor {
                    user_id: format!("user-{i}"),
                    user_name: format!("User {i}"),
                    role: "Clinician".into(),
                    organisation: OdsCode::parse(ED_SETTING).unwrap(),
                    organisation_name: "Northfield".into(),
                    setting_type: Some(SettingType::EmergencyDepartment),
                    nhs: NhsIdentity::default(),
                    organisation_phone: None,
                    contact: Default::default(),
                },
                kind: AccessKind::Unscheduled,
                trace_id: None,
            })
            .unwrap();
        }
        tx.commit().unwrap();
    });
    let coventry = sign_in(&app, COVENTRY, "cov.worker", BOTH).await;
    let r = coventry
        .get(&app, &format!("/la/records/{}/history.csv", child.nhs))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (header, rows) = csv_rows(&r);
    assert_eq!(header[0], "time_utc");
    assert_eq!(rows.len(), total, "every access, once");
    let ids: Vec<String> = rows.iter().map(|r| r[11].to_owned()).collect();
    let expected: Vec<String> = (0..total).map(|i| format!("bulk-{i}")).collect();
    assert_eq!(ids, expected, "oldest first, in order, across pages");
}
