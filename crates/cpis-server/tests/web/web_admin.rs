//! The admin, auditor and data-quality web pages (issue #7): role refusals render the 403 page
//! (and are audited), the disable/enable form needs the CSRF token, user-controlled text is
//! escaped, and the data-quality numbers match the upload report they come from.

use crate::common::web::*;
use crate::common::*;
use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use cpis_auth::users;
use cpis_domain::{AuditOutcome, Permission, RecordOutcome};
use cpis_store::AuditQuery;

/// An LA without demo uploads, so its data-quality numbers are exactly the test's upload.
const HARTLEPOOL: &str = "E06000001";
const HARTLEPOOL_TOKEN: &str = "hartlepool-upload-token";

fn add_person(app: &TestApp, username: &str, display: &str, org: &str, perms: &[Permission]) {
    add_web_user(app, username, display, org, "Tester", perms);
}

/// Signs in through the sign-in page; the CSRF token comes from the session API.
async fn sign_in(app: &TestApp, username: &str) -> Browser {
    let (_, cookie) = submit_sign_in(app, username).await;
    let s = app
        .request(
            Method::GET,
            "/auth/session",
            &[("cookie", cookie.as_str())],
            Body::empty(),
        )
        .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    let csrf = s.json()["csrf_token"]
        .as_str()
        .expect("csrf token")
        .to_owned();
    Browser { cookie, csrf }
}

/// Adds `web.admin`, an administrator, and signs them in.
async fn sign_in_admin(app: &TestApp) -> Browser {
    add_person(
        app,
        "web.admin",
        "Web Admin",
        OPERATIONS_ORG,
        &[Permission::Admin],
    );
    sign_in(app, "web.admin").await
}

fn is_disabled(app: &TestApp, username: &str) -> bool {
    app.store
        .user_by_username(username)
        .unwrap()
        .unwrap()
        .disabled
}

fn audit(app: &TestApp, actor: &str, action: &str) -> Vec<cpis_domain::AuditRecord> {
    app.store
        .audit_search(&AuditQuery {
            actor_id: Some(actor.into()),
            action_prefix: Some(action.into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
}

#[tokio::test]
async fn pages_refuse_other_roles_with_the_403_page_and_audit_it() {
    let app = spawn_app();
    add_person(
        &app,
        "web.clinician",
        "Web Clinician",
        ED_SETTING,
        &[Permission::ViewNotify],
    );
    add_person(
        &app,
        "web.auditor",
        "Web Auditor",
        OPERATIONS_ORG,
        &[Permission::Auditor],
    );
    let clinician = sign_in(&app, "web.clinician").await;
    for (uri, action) in [
        ("/admin/users", "admin.users.list"),
        ("/admin/directory", "admin.directory"),
        ("/admin/alerts", "admin.alerts"),
        ("/audit", "audit.search"),
        ("/la/data-quality", "la.data-quality"),
    ] {
        let r = clinician.get(&app, uri).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
        let html = r.text();
        assert!(html.contains("You cannot use this page"), "{uri}: {html}");
        assert!(!html.contains("ops.admin"), "{uri} leaks data");
        let refused = audit(&app, "web.clinician", action);
        assert_eq!(refused.len(), 1, "{uri}: one audited refusal");
        assert_eq!(refused[0].entry.outcome, AuditOutcome::Denied);
    }
    // An auditor is not an administrator, and cannot use the admin forms either.
    let auditor = sign_in(&app, "web.auditor").await;
    assert_eq!(
        auditor.get(&app, "/admin/users").await.status,
        StatusCode::FORBIDDEN
    );
    let r = auditor
        .submit(
            &app,
            "/admin/users/disable",
            &[("username", "ed.clinician")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!is_disabled(&app, "ed.clinician"));
    // Signed out: sent to the sign-in page, not shown anything.
    let r = app.get("/admin/users", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers[header::LOCATION],
        "/sign-in?return_to=/admin/users"
    );
}

#[tokio::test]
async fn disable_and_enable_need_the_csrf_token_and_are_audited() {
    let app = spawn_app();
    let admin = sign_in_admin(&app).await;
    let target = "ed.clinician";

    for fields in [
        vec![("username", target)],
        vec![("csrf_token", "not-the-token"), ("username", target)],
    ] {
        let r = admin.post_form(&app, "/admin/users/disable", &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{fields:?}");
        assert!(!is_disabled(&app, target));
    }
    assert_eq!(audit(&app, "web.admin", "auth.csrf").len(), 2);
    assert!(audit(&app, "web.admin", "admin.user.").is_empty());

    // The row's button asks first: a confirmation page, nothing changed or audited yet.
    let r = admin
        .submit(&app, "/admin/users/disable", &[("username", target)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let html = r.text();
    assert!(html.contains("Disable this account?"), "{html}");
    assert!(html.contains("name=\"confirm\" value=\"yes\""), "{html}");
    assert!(!is_disabled(&app, target));
    assert!(audit(&app, "web.admin", "admin.user.").is_empty());
    // Its confirm button needs the CSRF token too.
    let r = admin
        .post_form(
            &app,
            "/admin/users/disable",
            &[("username", target), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!is_disabled(&app, target));

    let r = admin
        .submit(
            &app,
            "/admin/users/disable",
            &[("username", target), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("is now disabled"));
    assert!(is_disabled(&app, target));
    // Its token stops working (after the authenticator's cache, which this token never entered).
    assert_eq!(
        app.care_team(SHARED_CHILD, ED_TOKEN, Some("true"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let done = audit(&app, "web.admin", "admin.user.disable");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].entry.outcome, AuditOutcome::Success);
    assert_eq!(
        done[0].entry.detail.as_deref(),
        Some("disabled ed.clinician (web)")
    );

    let r = admin
        .submit(&app, "/admin/users/enable", &[("username", target)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!is_disabled(&app, target));
    assert_eq!(audit(&app, "web.admin", "admin.user.enable").len(), 1);

    // Not their own account, and not an unknown one (asked or confirmed).
    for confirm in ["", "yes"] {
        let r = admin
            .submit(
                &app,
                "/admin/users/disable",
                &[("username", "web.admin"), ("confirm", confirm)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.text().contains("You cannot disable your own account"));
        assert!(!is_disabled(&app, "web.admin"));
        let r = admin
            .submit(
                &app,
                "/admin/users/disable",
                &[("username", "nobody.here"), ("confirm", confirm)],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    // Refused changes wrote no entry.
    assert_eq!(audit(&app, "web.admin", "admin.user.").len(), 2);
}

/// The change and its audit entry commit in one transaction: when the entry cannot be written,
/// the account is not disabled either.
#[tokio::test]
async fn disable_is_not_stored_without_its_audit_entry() {
    let app = spawn_app();
    let admin = sign_in_admin(&app).await;
    let target = "ed.clinician";
    let (refuse, allow) = if app.backend() == "postgres" {
        (
            "CREATE FUNCTION refuse_admin_audit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.action LIKE 'admin.user.%' THEN RAISE EXCEPTION 'audit refused'; END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_admin_audit BEFORE INSERT ON audit_log
             FOR EACH ROW EXECUTE FUNCTION refuse_admin_audit();",
            "DROP TRIGGER refuse_admin_audit ON audit_log;",
        )
    } else {
        (
            "CREATE TRIGGER refuse_admin_audit BEFORE INSERT ON audit_log
             WHEN NEW.action LIKE 'admin.user.%'
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END;",
            "DROP TRIGGER refuse_admin_audit;",
        )
    };
    app.execute_sql(refuse);
    let confirmed = [("username", target), ("confirm", "yes")];
    let r = admin.submit(&app, "/admin/users/disable", &confirmed).await;
    assert!(r.status.is_server_error(), "{}: {}", r.status, r.text());
    assert!(
        !is_disabled(&app, target),
        "disabled without an audit entry"
    );
    assert!(audit(&app, "web.admin", "admin.user.").is_empty());

    app.execute_sql(allow);
    let r = admin.submit(&app, "/admin/users/disable", &confirmed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(is_disabled(&app, target));
    assert_eq!(audit(&app, "web.admin", "admin.user.disable").len(), 1);
}

#[tokio::test]
async fn user_controlled_text_is_escaped() {
    let app = spawn_app();
    add_person(
        &app,
        "evil.user",
        "<script>alert('x')</script> & \"quoted\"",
        ED_SETTING,
        &[Permission::ViewNotify],
    );
    let admin = sign_in_admin(&app).await;
    let r = admin.get(&app, "/admin/users").await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(!html.contains("<script>alert"), "unescaped display name");
    assert!(
        html.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; &#34;quoted&#34;"),
        "escaped display name shown: {html}"
    );
    assert!(html.contains("evil.user"));
    // The directory filter echoes the query escaped.
    let r = admin.get(&app, "/admin/directory?q=%3Cb%3Ehi").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("value=\"&#60;b&#62;hi\""), "{}", r.text());
}

#[tokio::test]
async fn directory_filters_and_pages() {
    let app = spawn_app();
    let admin = sign_in_admin(&app).await;
    let html = admin.get(&app, "/admin/directory").await.text();
    assert!(html.contains("Local authorities (152)"), "{html}");
    assert!(html.contains("Showing 1 to 25 of 152"));
    assert!(html.contains("Hartlepool") && html.contains("LA001OT"));
    let html = admin.get(&app, "/admin/directory?q=coventry").await.text();
    assert!(
        html.contains("Showing 1 to 1 of 1") && html.contains("E08000026"),
        "{html}"
    );
    let html = admin
        .get(
            &app,
            "/admin/directory?list=care-settings&q=emergency+department",
        )
        .await
        .text();
    assert!(html.contains("RDEMO01"), "{html}");
    assert!(
        html.contains("<a href=\"tel:+441134960001\" class=\"cpis-nhs-number\">0113 496 0001</a>"),
        "the setting's contact number, as a tel: link: {html}"
    );
    assert!(
        !html.contains(GP_SETTING),
        "a GP is not an emergency department"
    );
}

#[tokio::test]
async fn auditor_searches_without_the_nhs_number_in_a_url_and_verifies_the_chain() {
    let app = spawn_app();
    add_person(
        &app,
        "web.auditor",
        "Web Auditor",
        OPERATIONS_ORG,
        &[Permission::Auditor],
    );
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    let auditor = sign_in(&app, "web.auditor").await;
    // A query string is dropped, never read.
    let r = auditor
        .get(&app, &format!("/audit?nhs_number={SHARED_CHILD}"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/audit");

    let r = auditor
        .submit(
            &app,
            "/audit",
            &[("nhs_number", "999 059 7634"), ("outcome", "success")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let html = r.text();
    assert!(html.contains("lookup.unscheduled"), "{html}");
    assert!(html.contains("ed.clinician"));
    // The search is itself audited, with the child as its subject.
    let searches = audit(&app, "web.auditor", "audit.search");
    assert_eq!(searches.len(), 1);
    assert_eq!(
        searches[0].entry.subject_nhs.unwrap().digits(),
        SHARED_CHILD
    );

    let r = auditor
        .submit(
            &app,
            "/audit",
            &[("nhs_number", "123"), ("to", "not a date")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let html = r.text();
    assert!(html.contains("nhsuk-error-summary") && html.contains("href=\"#nhs-number\""));
    assert!(html.contains("href=\"#to\""));

    let r = auditor.submit(&app, "/audit/verify", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text().contains("The audit chain is intact"),
        "{}",
        r.text()
    );
    let r = auditor.post_form(&app, "/audit/verify", &[]).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "verify needs the CSRF token"
    );
}

/// The number of rows of a report with this outcome (and detail).
fn rows_with(report: &serde_json::Value, code: &str, detail: Option<&str>) -> u64 {
    report["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == code && detail.is_none_or(|d| r["detail"] == d))
        .count() as u64
}

#[tokio::test]
async fn data_quality_numbers_come_from_the_las_own_uploads() {
    let app = spawn_app();
    add_person(
        &app,
        "web.hartlepool",
        "Hartlepool User",
        HARTLEPOOL,
        &[Permission::LaUpload],
    );
    add_person(
        &app,
        "web.coventry",
        "Coventry User",
        COVENTRY,
        &[Permission::LaUpload],
    );
    let user = app
        .store
        .user_by_username("web.hartlepool")
        .unwrap()
        .unwrap();
    users::store_token(
        app.store.as_ref(),
        &user,
        HARTLEPOOL_TOKEN,
        "t",
        None,
        start_time(),
    )
    .unwrap();

    // Nothing uploaded yet: no rate, no judgement.
    let b = sign_in(&app, "web.hartlepool").await;
    let html = b.get(&app, "/la/data-quality").await.text();
    assert!(
        html.contains("No records checked") && html.contains("No data"),
        "{html}"
    );

    let r = app
        .upload(
            "?file_id=dq-1",
            HARTLEPOOL_TOKEN,
            demo_file("errors-E08000026.csv"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let report = r.json();
    // The definition (docs/WEB.md), from the row-level report.
    let matched = rows_with(&report, "CPR06", None);
    let not_matched = ["CPR01", "CPR03", "CPR04", "CPR05"]
        .iter()
        .map(|c| rows_with(&report, c, None))
        .sum::<u64>()
        + rows_with(&report, "CPR07", Some("NHS_NUMBER_INACTIVE"));
    let rejected = report["counts"]["rejected"].as_u64().unwrap();
    assert!(matched > 0 && not_matched > 0);
    let rate = matched * 10_000 / (matched + not_matched);
    let rate_text = format!("{}.{}%", rate / 100, rate % 100 / 10);

    let r = b.get(&app, "/la/data-quality").await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    let cell = |id: &str, v: u64| format!("data-testid=\"{id}\">{v}</dd>");
    assert!(
        html.contains(&cell("matched", matched)),
        "matched {matched}: {html}"
    );
    assert!(html.contains(&cell("not-matched", not_matched)), "{html}");
    assert!(
        html.contains(&cell("other-rejections", rejected - not_matched)),
        "{html}"
    );
    assert!(html.contains(&cell("uploads", 1)));
    assert!(
        html.contains(&format!("<strong>{rate_text}</strong>")),
        "{rate_text}: {html}"
    );
    assert!(html.contains("Below target"));
    // The week's row in the table carries every rejection count, and the chart has its bars.
    let week_row: Vec<u64> = [
        RecordOutcome::NotFound,
        RecordOutcome::Sensitive,
        RecordOutcome::DobMismatch,
        RecordOutcome::MalformedNhsNumber,
        RecordOutcome::Superseded,
        RecordOutcome::Invalid,
    ]
    .iter()
    .map(|o| {
        report["counts"]["by_outcome"][o.code()]
            .as_u64()
            .unwrap_or(0)
    })
    .collect();
    let squeezed: String = html.split_whitespace().collect();
    let cells: String = week_row
        .iter()
        .map(|n| format!("<tdclass=\"nhsuk-table__cellnhsuk-table__cell--numeric\">{n}</td>"))
        .collect();
    assert!(squeezed.contains(&cells), "week row {week_row:?}: {html}");
    assert_eq!(
        html.matches("<rect x=").count(),
        week_row.iter().filter(|n| **n > 0).count(),
        "one bar segment per code with rejections"
    );
    // Issue #18: readable at a glance: axis titles, one pattern per code (not only colour),
    // each bar's total written above it, and the weekly table at full width.
    assert!(html.contains("data-axis=\"x\">Week commencing (Monday)</text>"));
    assert!(html.contains("data-axis=\"y\">Rejected rows</text>"));
    for p in [
        "solid",
        "diagonal",
        "dots",
        "horizontal",
        "crosshatch",
        "vertical",
    ] {
        assert_eq!(
            html.matches(&format!("data-pattern=\"{p}\"")).count(),
            1,
            "{p}"
        );
    }
    assert!(html.contains("fill=\"url(#cpis-fill-CPR01)\""));
    let week_total: u64 = week_row.iter().sum();
    assert!(
        html.contains(&format!("data-bar-total>{week_total}</text>")),
        "{html}"
    );
    assert!(html.contains("cpis-weekly-table"));

    // Coventry sees only its own (demo) upload: every row accepted.
    let cov = sign_in(&app, "web.coventry").await;
    let html = cov.get(&app, "/la/data-quality").await.text();
    assert!(
        html.contains("<strong>100.0%</strong>") && html.contains("Target met"),
        "{html}"
    );
    assert!(html.contains(&cell("not-matched", 0)));
}

/// Issue #18: the users page shows 25 accounts a page with links between pages, finds accounts
/// by a search that is posted (account names never in a URL), and its row buttons are not the
/// red warning button (that one is on the confirmation page only).
#[tokio::test]
async fn users_page_is_paged_and_searchable() {
    let app = spawn_app();
    for i in 0..30 {
        add_person(
            &app,
            &format!("paging.person{i:02}"),
            &format!("Paging Person {i:02}"),
            ED_SETTING,
            &[Permission::ViewNotify],
        );
    }
    let admin = sign_in_admin(&app).await;
    let total = app.store.list_users().unwrap().len();
    assert!(total > 30, "{total}");
    let html = admin.get(&app, "/admin/users").await.text();
    assert!(
        html.contains(&format!("Showing 1 to 25 of {total} accounts")),
        "{html}"
    );
    assert_eq!(
        html.matches("<tr class=\"nhsuk-table__row\" data-username=")
            .count(),
        25
    );
    assert!(html.contains("href=\"/admin/users?page=2\""), "{html}");
    assert!(
        !html.contains("nhsuk-button--warning"),
        "no red buttons on the list"
    );
    let html = admin.get(&app, "/admin/users?page=2").await.text();
    assert!(
        html.contains(&format!(
            "Showing 26 to {} of {total} accounts",
            total.min(50)
        )),
        "{html}"
    );
    assert!(
        html.contains("href=\"/admin/users\""),
        "a link back to page 1"
    );
    // A page past the end shows the last page.
    let html = admin.get(&app, "/admin/users?page=999").await.text();
    assert!(html.contains(&format!("of {total} accounts")), "{html}");
    // Search words in a URL are ignored.
    let html = admin.get(&app, "/admin/users?q=paging").await.text();
    assert!(html.contains(&format!("Showing 1 to 25 of {total} accounts")));

    // The search: every word must match (name, username, organisation, role, state).
    let r = admin
        .submit(&app, "/admin/users", &[("q", "Paging person")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let html = r.text();
    assert!(
        html.contains("Showing 1 to 25 of 30 accounts matching \u{201c}Paging person\u{201d}"),
        "{html}"
    );
    assert!(!html.contains("data-username=\"web.admin\""));
    // Its pages are posted with the words, not linked.
    assert!(!html.contains("/admin/users?page=2"));
    assert!(html.contains("name=\"page\" value=\"2\""));
    let r = admin
        .submit(
            &app,
            "/admin/users",
            &[("q", "Paging person"), ("page", "2")],
        )
        .await;
    let html = r.text();
    assert!(
        html.contains("Showing 26 to 30 of 30 accounts matching"),
        "{html}"
    );
    assert!(html.contains("data-username=\"paging.person29\""));
    let html = admin
        .submit(&app, "/admin/users", &[("q", "person07")])
        .await
        .text();
    assert!(
        html.contains("Showing 1 account matching \u{201c}person07\u{201d}"),
        "{html}"
    );
    let html = admin
        .submit(&app, "/admin/users", &[("q", "no-such-account")])
        .await
        .text();
    assert!(html.contains("No accounts match"), "{html}");
    // The search needs the CSRF token, as every form.
    let r = admin.post_form(&app, "/admin/users", &[("q", "x")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Disabling from a search page asks first, then comes back to the same search and page.
    let html = admin
        .submit(
            &app,
            "/admin/users/disable",
            &[
                ("username", "paging.person27"),
                ("q", "Paging person"),
                ("page", "2"),
            ],
        )
        .await
        .text();
    assert!(html.contains("Disable this account?") && html.contains("Paging Person 27"));
    assert!(
        html.contains("nhsuk-button--warning"),
        "the red button is here"
    );
    assert!(!is_disabled(&app, "paging.person27"));
    let r = admin
        .submit(
            &app,
            "/admin/users/disable",
            &[
                ("username", "paging.person27"),
                ("q", "Paging person"),
                ("page", "2"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let html = r.text();
    assert!(is_disabled(&app, "paging.person27"));
    assert!(html.contains("Paging Person 27 (paging.person27) is now disabled."));
    assert!(
        html.contains("Showing 26 to 30 of 30 accounts matching"),
        "{html}"
    );
    let html = admin
        .submit(&app, "/admin/users", &[("q", "paging disabled")])
        .await
        .text();
    assert!(html.contains("Showing 1 account matching"), "{html}");
    assert!(html.contains("data-username=\"paging.person27\""));
}

/// Issue #18: the audit search's own entries are sentences (no `user=None organisation=None…`
/// debug text), dates are entered and shown as the hint writes them (day/month/year, UK days),
/// and the results come before the search form.
#[tokio::test]
async fn audit_search_reads_as_words_with_uk_dates_and_results_first() {
    let app = spawn_app();
    add_person(
        &app,
        "web.auditor",
        "Web Auditor",
        OPERATIONS_ORG,
        &[Permission::Auditor],
    );
    // 23:30 UTC on 1 July is 00:30 on 2 July in the UK (BST).
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    for (time, detail) in [
        ("2026-07-01T22:59:00Z", "late on 1 July"),
        ("2026-07-01T23:30:00Z", "early on 2 July"),
    ] {
        app.store
            .append_audit(
                &cpis_domain::AuditEntry::new(
                    at(time),
                    cpis_domain::AuditActor {
                        id: "test.actor".into(),
                        name: "Test Actor".into(),
                        organisation: None,
                        role: "test".into(),
                    },
                    "test.bst",
                    None,
                )
                .detail(detail),
            )
            .unwrap();
    }
    let auditor = sign_in(&app, "web.auditor").await;
    let html = auditor.get(&app, "/audit").await.text();
    assert!(html.contains("For example, 20/11/2026"), "{html}");
    assert!(
        !html.contains("type=\"date\""),
        "the browser's own date format is not used"
    );

    let r = auditor
        .submit(
            &app,
            "/audit",
            &[
                ("action", "test.bst"),
                ("from", "2/7/2026"),
                ("to", "2026-07-02"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let html = r.text();
    assert!(
        html.contains("early on 2 July") && !html.contains("late on 1 July"),
        "{html}"
    );
    // The dates come back as the hint writes them, and the results say what was searched.
    assert!(html.contains("value=\"02/07/2026\""), "{html}");
    assert!(
        html.contains(
            "Entries with action starting test.bst, from 02/07/2026, to 02/07/2026, newest first."
        ),
        "{html}"
    );
    let results = html.find("data-testid=\"audit-results\"").unwrap();
    let form = html
        .find("<form action=\"/audit\" method=\"post\"")
        .unwrap();
    assert!(results < form, "results above the search form");
    let html = auditor
        .submit(
            &app,
            "/audit",
            &[("action", "test.bst"), ("to", "01/07/2026")],
        )
        .await
        .text();
    assert!(
        html.contains("late on 1 July") && !html.contains("early on 2 July"),
        "{html}"
    );

    // The search's own entries are sentences, never Rust debug output.
    auditor.submit(&app, "/audit", &[]).await;
    let searches = audit(&app, "web.auditor", "audit.search");
    assert_eq!(searches.len(), 3);
    let details: Vec<&str> = searches
        .iter()
        .map(|s| s.entry.detail.as_deref().unwrap())
        .collect();
    for d in &details {
        assert!(
            !d.contains("None") && !d.contains("Some(") && !d.contains("user="),
            "{d}"
        );
    }
    assert!(details.contains(&"Searched the audit trail on the web page, with no other filters."));
    assert!(
        details.contains(
            &"Searched the audit trail on the web page: action starting test.bst, from 02/07/2026, to 02/07/2026 (UK dates)."
        ),
        "{details:?}"
    );
    // Which is what the page shows of them.
    let html = auditor
        .submit(&app, "/audit", &[("action", "audit.search")])
        .await
        .text();
    assert!(
        html.contains("Searched the audit trail on the web page"),
        "{html}"
    );
    assert!(!html.contains("organisation=None"), "{html}");
    // A date the hint would not write is refused with the hint's example.
    let html = auditor
        .submit(&app, "/audit", &[("from", "31/02/2026")])
        .await
        .text();
    assert!(html.contains("for example 20/11/2026"), "{html}");
}
