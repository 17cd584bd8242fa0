//! The clinician's result page says how often, and where, the child was seen in unscheduled care
//! in the last 30 days (docs/WORKFLOW.md, "Contact details and attendance patterns"); for a
//! sensitive child the settings are withheld.

use crate::common::web::*;
use crate::common::*;
use axum::http::StatusCode;
use cpis_domain::Permission;

async fn clinician(app: &TestApp) -> Browser {
    add_web_user(
        app,
        "web.clinician",
        "Dr Web",
        ED_SETTING,
        "Clinician",
        &[Permission::ViewNotify],
    );
    let (_, cookie) = submit_sign_in(app, "web.clinician").await;
    let page = get_page(app, "/lookup", Some(&cookie)).await;
    let html = page.text();
    let field = "name=\"csrf_token\" value=\"";
    let at = html.find(field).expect("a CSRF field") + field.len();
    Browser {
        csrf: html[at..at + html[at..].find('"').unwrap()].to_owned(),
        cookie,
    }
}

/// Uploads a CPP for `child`, has ED2 see it, then the web clinician at ED looks it up.
async fn seen_at_two_settings(app: &TestApp, child: &Person) -> String {
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(child, "CPP", "2026-01-01", None)],
    )
    .await;
    app.notifying_lookup(&child.nhs, ED2_TOKEN).await;
    let b = clinician(app).await;
    let r = b
        .submit(app, "/lookup", &[("nhs_number", &child.nhs)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.text()
}

#[tokio::test]
async fn the_clinician_sees_how_often_and_where_the_child_was_seen() {
    let app = spawn_app();
    let child = &spare_children()[0];
    let html = seen_at_two_settings(&app, child).await;
    assert!(
        html.contains("Frequent attendance across settings"),
        "{html}"
    );
    let line = "Seen 2 times at 2 settings in the last 30 days: ";
    let at = html.find(line).unwrap_or_else(|| panic!("{html}")) + line.len();
    let named = &html[at..at + html[at..].find('<').unwrap()];
    for ods in [ED_SETTING, ED2_SETTING] {
        let name = askama_escape(&care_setting_name(ods));
        assert!(named.contains(&name), "{ods} named in {named}");
    }
}

#[tokio::test]
async fn a_sensitive_childs_settings_are_withheld() {
    let app = spawn_app();
    let child = &spare_sensitive_children()[0];
    let html = seen_at_two_settings(&app, child).await;
    assert!(
        html.contains("Frequent attendance across settings"),
        "{html}"
    );
    assert!(
        html.contains(
            "Seen 2 times at 2 settings in the last 30 days (settings withheld: sensitive record)."
        ),
        "{html}"
    );
    let other = askama_escape(&care_setting_name(ED2_SETTING));
    assert!(!html.contains(&other), "{other} is not shown: {html}");
}

#[tokio::test]
async fn a_first_visit_is_counted_without_a_pattern() {
    let app = spawn_app();
    let child = &spare_children()[1];
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(child, "CPP", "2026-01-01", None)],
    )
    .await;
    let b = clinician(&app).await;
    let html = b
        .submit(&app, "/lookup", &[("nhs_number", &child.nhs)])
        .await
        .text();
    assert!(
        html.contains("Seen 1 time at 1 setting in the last 30 days: "),
        "{html}"
    );
    assert!(!html.contains("Frequent attendance"), "{html}");
}

/// The HTML text of a name as askama writes it.
fn askama_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}
