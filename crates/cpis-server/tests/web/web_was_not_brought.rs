//! The clinician's "was not brought" form (docs/WORKFLOW.md): a scheduled setting's clinician
//! reports a child not brought; a form with errors links each error to its field and records
//! nothing; the LA with a plan is told; other settings are refused.

use crate::common::web::*;
use crate::common::*;
use axum::http::{Method, StatusCode};
use cpis_domain::Permission;

async fn sign_in(app: &TestApp, org: &str, username: &str) -> Browser {
    add_web_user(
        app,
        username,
        &format!("{username} name"),
        org,
        "Health visitor",
        &[Permission::ViewNotify],
    );
    let r = app
        .request(
            Method::POST,
            "/auth/login",
            &[("content-type", "application/json")],
            serde_json::json!({"username": username, "password": PASSWORD}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    Browser {
        cookie: session_cookie(&r),
        csrf: r.json()["csrf_token"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test]
async fn a_gp_clinician_reports_a_child_not_brought_through_the_form() {
    let app = spawn_app();
    let spare = spare_children();
    let (child, no_plan) = (&spare[0], &spare[1]);
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(child, "CPP", "2026-01-01", None)],
    )
    .await;
    let gp = sign_in(&app, GP_SETTING, "web.gp").await;

    let r = gp.get(&app, "/was-not-brought").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let page = r.text();
    assert!(
        page.contains("href=\"/was-not-brought\""),
        "in the navigation"
    );
    for id in [
        "nhs-number",
        "appointment-day",
        "appointment-time",
        "description",
    ] {
        assert!(page.contains(&format!("for=\"{id}\"")), "{id} has a label");
    }

    // Errors: each linked from the summary to its field; nothing sent.
    let before = app.notifications_stored();
    let r = gp
        .submit(
            &app,
            "/was-not-brought",
            &[
                ("nhs_number", "123"),
                ("appointment-day", "31"),
                ("appointment-month", "2"),
                ("appointment-year", "2026"),
                ("time", "25:00"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let page = r.text();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<title>Error: "), "{page}");
    for (field, message) in [
        ("nhs-number", "NHS number must be 10 digits"),
        ("appointment-day", "must be a real date"),
        ("appointment-time", "must be a real time"),
    ] {
        assert!(page.contains(&format!("href=\"#{field}\"")), "{field}");
        assert!(page.contains(message), "{message}");
    }
    assert!(page.contains("value=\"123\""), "what was typed is kept");
    let r = gp
        .submit(
            &app,
            "/was-not-brought",
            &[
                ("nhs_number", &child.nhs),
                ("appointment-day", "21"),
                ("appointment-month", "11"),
                ("appointment-year", "2026"),
                ("time", "09:00"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("must be in the past"));
    assert_eq!(app.notifications_stored(), before, "nothing sent");

    // A good report: 09:00 GMT on the day before; Coventry is told.
    let r = gp
        .submit(
            &app,
            "/was-not-brought",
            &[
                ("nhs_number", &child.nhs),
                ("appointment-day", "20"),
                ("appointment-month", "11"),
                ("appointment-year", "2026"),
                ("time", "9:00"),
                ("description", "Immunisations"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let page = r.text();
    assert!(page.contains("Report sent"), "{page}");
    assert!(page.contains(&la_directory_entry(COVENTRY).name), "{page}");
    let told: Vec<_> = app
        .all_notifications(COVENTRY_TOKEN)
        .await
        .into_iter()
        .filter(|n| n["kind"] == "was-not-brought")
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["appointment"]["start"], "2026-11-20T09:00:00.000Z");
    assert_eq!(told[0]["appointment"]["description"], "Immunisations");
    assert_eq!(told[0]["reported_by"]["user_name"], "web.gp name");
    assert_eq!(told[0]["setting"]["setting_type"], "gp");
    // Coventry's inbox shows where and when.
    add_web_user(
        &app,
        "cov.inbox",
        "Coventry inbox",
        COVENTRY,
        "Social worker",
        &[Permission::LaNotifications],
    );
    let (_, cookie) = submit_sign_in(&app, "cov.inbox").await;
    let inbox = get_page(&app, "/la/notifications", Some(&cookie))
        .await
        .text();
    assert!(inbox.contains("Was not brought"), "{inbox}");
    assert!(
        inbox.contains(&format!(
            "{} (GP): appointment 20 November 2026, 09:00 (GMT)",
            care_setting_name(GP_SETTING)
        )),
        "{inbox}"
    );

    // A child with no plan: told so, nobody else.
    let before = app.notifications_stored();
    let r = gp
        .submit(
            &app,
            "/was-not-brought",
            &[
                ("nhs_number", &no_plan.nhs),
                ("appointment-day", "20"),
                ("appointment-month", "11"),
                ("appointment-year", "2026"),
                ("time", "09:00"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("No local authority was told"));
    assert_eq!(app.notifications_stored(), before);

    // Without the CSRF token: refused, nothing sent.
    let r = gp
        .post_form(&app, "/was-not-brought", &[("nhs_number", &child.nhs)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_emergency_department_clinician_cannot_report() {
    let app = spawn_app();
    let ed = sign_in(&app, ED_SETTING, "web.ed").await;
    let r = ed.get(&app, "/was-not-brought").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let entry = app.last_audit("was-not-brought", None).await.unwrap();
    assert_eq!(entry["outcome"], "denied");
    let r = ed.get(&app, "/lookup").await;
    assert!(!r.text().contains("href=\"/was-not-brought\""), "no link");
}
