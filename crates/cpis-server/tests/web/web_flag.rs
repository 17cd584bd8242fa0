//! The clinician's flag (docs/WORKFLOW.md, "The clinician's flag"): each plan stated as its
//! heading, active and ended plans apart, the number to ring now first by the LA's office hours
//! and UK local time (the service clock set by the test), and the mother of an unborn child
//! never called the child.

use crate::common::web::*;
use crate::common::*;
use axum::http::StatusCode;
use chrono::{TimeZone, Utc};
use cpis_domain::{OdsCode, OfficeHours, Permission};

const CLINICIAN: &str = "flag.clinician";

/// A clinician at the demo emergency department.
fn add_clinician(app: &TestApp) {
    add_web_user(
        app,
        CLINICIAN,
        "Flag Clinician",
        ED_SETTING,
        "Clinician",
        &[Permission::ViewNotify],
    );
}

/// The clinician, signed in (at the clock's current time).
async fn clinician(app: &TestApp) -> Browser {
    let (_, cookie) = submit_sign_in(app, CLINICIAN).await;
    let page = get_page(app, "/lookup", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    let field = "name=\"csrf_token\" value=\"";
    let at = html.find(field).expect("a CSRF field") + field.len();
    Browser {
        csrf: html[at..at + html[at..].find('"').unwrap()].to_owned(),
        cookie,
    }
}

async fn look_up(app: &TestApp, b: &Browser, nhs: &str) -> String {
    let r = b.submit(app, "/lookup", &[("nhs_number", nhs)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.text()
}

/// The texts of the elements with this `data-testid`, tags stripped, in page order.
fn texts(html: &str, testid: &str) -> Vec<String> {
    let marker = format!("data-testid=\"{testid}\"");
    html.match_indices(&marker)
        .map(|(at, _)| {
            let open_end = at + html[at..].find('>').unwrap() + 1;
            let tag_start = html[..at].rfind('<').unwrap();
            let tag: String = html[tag_start + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let close = html[open_end..].find(&format!("</{tag}>")).unwrap();
            strip_tags(&html[open_end..open_end + close])
        })
        .collect()
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&#x27;", "'")
        .replace("&#39;", "'")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The numbers of the page's `tel:` links, in page order.
fn tel_links(html: &str) -> Vec<String> {
    html.match_indices("href=\"tel:")
        .map(|(at, m)| {
            let from = at + m.len();
            html[from..from + html[from..].find('"').unwrap()].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_flag_states_each_plan_as_its_heading_and_shows_active_and_ended_apart() {
    let app = spawn_app();
    let children = spare_children();
    let (cpp, lac, ended) = (&children[0], &children[1], &children[2]);
    let sensitive = &spare_sensitive_children()[0];
    let mother = &spare_mothers()[0];
    app.upload_rows(
        COVENTRY_TOKEN,
        &[
            plan_row(cpp, "CPP", "2026-03-01", None),
            plan_row(lac, "LAC", "2026-04-02", None),
            plan_row(ended, "CPP", "2025-01-05", Some("2026-11-10")),
            plan_row(sensitive, "CPP", "2026-05-06", None),
            ucpp_row(mother, "2026-09-01", None, "2027-01-15"),
        ],
    )
    .await;
    add_clinician(&app);
    let b = clinician(&app).await;

    let html = look_up(&app, &b, &cpp.nhs).await;
    assert_eq!(texts(&html, "plan-heading"), ["Child protection plan"]);
    assert_eq!(texts(&html, "plan-state"), ["Active since 1 March 2026"]);
    assert!(html.contains("data-state=\"active\""), "{html}");
    assert!(html.contains(">Active</strong>"), "{html}");
    assert!(html.contains("cpis-flag--active"), "{html}");

    let html = look_up(&app, &b, &lac.nhs).await;
    assert_eq!(texts(&html, "plan-heading"), ["Looked after child"]);

    // Ended: in words (the tag and the state) and in look (another class), not colour alone.
    let html = look_up(&app, &b, &ended.nhs).await;
    assert_eq!(texts(&html, "plan-heading"), ["Child protection plan"]);
    assert_eq!(
        texts(&html, "plan-state"),
        ["Ended on 10 November 2026 (started 5 January 2025)"]
    );
    assert!(html.contains("data-state=\"ended\""), "{html}");
    assert!(html.contains(">Ended</strong>"), "{html}");
    assert!(html.contains("cpis-flag--ended"), "{html}");
    assert!(!html.contains(">Active</strong>"), "{html}");

    // Sensitive: the same heading; where the child was seen stays hidden.
    let html = look_up(&app, &b, &sensitive.nhs).await;
    assert_eq!(texts(&html, "plan-heading"), ["Child protection plan"]);

    // The unborn child's plan: the mother's record, and she is never called the child.
    let html = look_up(&app, &b, &mother.nhs).await;
    assert_eq!(
        texts(&html, "plan-heading"),
        ["Unborn child protection plan \u{2014} this is the mother's record"]
    );
    assert_eq!(
        texts(&html, "plan-state"),
        ["Active since 1 September 2026. Baby expected 15 January 2027"]
    );
    assert_eq!(
        texts(&html, "notification-statement"),
        [format!(
            "Information: This lookup notified the local authority that the mother was seen here: {}.",
            la_directory_entry(COVENTRY).name
        )]
    );
    let lower = html.to_lowercase();
    for wrong in ["the child", "this child"] {
        assert!(
            !lower.contains(wrong),
            "'{wrong}' on the mother's flag: {html}"
        );
    }

    // The notifications say whom they are about.
    let n = app.access_notifications(COVENTRY_TOKEN, &mother.nhs).await;
    assert_eq!(n.len(), 1);
    assert_eq!(n[0]["subject"], "mother", "{:#}", n[0]);
    let n = app.access_notifications(COVENTRY_TOKEN, &cpp.nhs).await;
    assert_eq!(n[0]["subject"], "child", "{:#}", n[0]);
}

#[tokio::test]
async fn the_lookup_form_asks_for_the_mothers_number_for_an_unborn_child() {
    let app = spawn_app();
    add_clinician(&app);
    let b = clinician(&app).await;
    let html = b.get(&app, "/lookup").await.text();
    assert!(
        html.contains("For an unborn child, enter the mother&#x27;s NHS number.")
            || html.contains("For an unborn child, enter the mother&#39;s NHS number.")
            || html.contains("For an unborn child, enter the mother's NHS number."),
        "{html}"
    );
}

#[tokio::test]
async fn the_number_to_ring_now_is_first_by_the_las_office_hours_and_uk_time() {
    let app = spawn_app();
    let child = &spare_children()[0];
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(child, "CPP", "2026-03-01", None)],
    )
    .await;
    add_clinician(&app);
    let coventry = la_directory_entry(COVENTRY);
    let office = coventry.office_hours_phone.replace(' ', "");
    let edt = coventry.edt_phone.replace(' ', "");
    let at = |y, mo, d, h, mi| Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();

    // (UTC time, what the page offers first, what it offers second)
    for (when, first, call, second, what) in [
        // Friday 20 November 2026, GMT: the office is open from 09:00 to 17:00.
        (
            at(2026, 11, 20, 10, 0),
            &office,
            "office",
            &edt,
            "weekday 10:00",
        ),
        (
            at(2026, 11, 20, 9, 0),
            &office,
            "office",
            &edt,
            "weekday 09:00",
        ),
        (
            at(2026, 11, 20, 8, 59),
            &edt,
            "edt",
            &office,
            "weekday 08:59",
        ),
        (
            at(2026, 11, 20, 17, 0),
            &edt,
            "edt",
            &office,
            "weekday 17:00",
        ),
        (
            at(2026, 11, 20, 22, 0),
            &edt,
            "edt",
            &office,
            "weekday 22:00",
        ),
        // Saturday.
        (
            at(2026, 11, 21, 10, 0),
            &edt,
            "edt",
            &office,
            "Saturday 10:00",
        ),
        // Christmas Day, a Friday: a bank holiday.
        (
            at(2026, 12, 25, 10, 0),
            &edt,
            "edt",
            &office,
            "Christmas Day",
        ),
    ] {
        app.clock.set(when);
        let b = clinician(&app).await;
        let html = look_up(&app, &b, &child.nhs).await;
        assert_eq!(tel_links(&html), [first.clone(), second.clone()], "{what}");
        assert!(
            html.contains(&format!("data-call=\"{call}\"")),
            "{what}: {html}"
        );
    }

    // BST: 08:30 UTC on a summer weekday is 09:30 in the UK, so the office.
    app.clock.set(at(2027, 6, 16, 8, 30));
    let b = clinician(&app).await;
    let html = look_up(&app, &b, &child.nhs).await;
    assert_eq!(tel_links(&html)[0], office, "BST 09:30");

    // The LA's own hours are used: closing at 12:00, 12:30 on a weekday is out of hours.
    let mut la = app
        .store
        .local_authority(&OdsCode::parse(COVENTRY).unwrap())
        .unwrap()
        .unwrap();
    la.office_hours = OfficeHours::parse("Mon-Fri 08:00-12:00").unwrap();
    app.store
        .upsert_local_authorities(&[la], start_time())
        .unwrap();
    app.clock.set(at(2027, 1, 13, 12, 30));
    let b = clinician(&app).await;
    let html = look_up(&app, &b, &child.nhs).await;
    assert_eq!(
        tel_links(&html),
        [edt.clone(), office.clone()],
        "closed at 12:00"
    );
    assert!(
        html.contains("The office is closed now (open Mon-Fri 08:00-12:00, UK time"),
        "{html}"
    );
    app.clock.set(at(2027, 1, 13, 8, 0));
    let b = clinician(&app).await;
    let html = look_up(&app, &b, &child.nhs).await;
    assert_eq!(tel_links(&html), [office, edt], "open at 08:00");
}

#[tokio::test]
async fn the_la_inbox_names_a_mothers_record_as_hers() {
    let app = spawn_app();
    let child = &spare_children()[0];
    let mother = &spare_mothers()[0];
    app.upload_rows(
        COVENTRY_TOKEN,
        &[
            plan_row(child, "CPP", "2026-03-01", None),
            ucpp_row(mother, "2026-09-01", None, "2027-01-15"),
        ],
    )
    .await;
    app.notifying_lookup(&mother.nhs, ED_TOKEN).await;
    add_web_user(
        &app,
        "coventry.flag",
        "Coventry Flag",
        COVENTRY,
        "Social worker",
        &[Permission::LaNotifications],
    );
    let (_, cookie) = submit_sign_in(&app, "coventry.flag").await;
    let rows = get_page(&app, "/la/notifications/rows?after=0", Some(&cookie))
        .await
        .text();
    // Named as the mother, and so in what a screen reader hears when the row arrives.
    assert_eq!(
        rows.matches("data-testid=\"mother\">Mother</span>").count(),
        1,
        "{rows}"
    );
    assert!(
        rows.contains("(mother, unborn child protection plan) was seen at"),
        "{rows}"
    );

    // A child's notification says nothing of a mother.
    app.notifying_lookup(&child.nhs, ED_TOKEN).await;
    let rows = get_page(&app, "/la/notifications/rows?after=0", Some(&cookie))
        .await
        .text();
    assert_eq!(
        rows.matches("data-testid=\"mother\"").count(),
        1,
        "only the mother's row: {rows}"
    );
}
