//! The local authority web pages (issue #7), driven in-process with a real session cookie:
//! another LA's upload report is a 404, uploads and acknowledgements need the CSRF token (and
//! record nothing without it), a bad upload form gives an error summary and records nothing, and
//! names are escaped in the inbox and the records list.

use crate::common::web::*;
use crate::common::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cpis_domain::{OdsCode, Permission};

const BOUNDARY: &str = "cpis-test-boundary-7d1f";

/// Adds a social worker at `la` and signs them in.
async fn sign_in(app: &TestApp, la: &str, username: &str) -> Browser {
    add_web_user(
        app,
        username,
        &format!("{username} name"),
        la,
        "Social worker",
        &[Permission::LaUpload, Permission::LaNotifications],
    );
    log_in(app, username).await
}

/// Signs in through `/auth/login`, which answers with the session's CSRF token.
async fn log_in(app: &TestApp, username: &str) -> Browser {
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

impl Browser {
    async fn post_upload(&self, app: &TestApp, parts: &[(&str, Option<&str>, &str)]) -> Reply {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/la/uploads")
            .header("cookie", &self.cookie)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(multipart(parts)))
            .unwrap();
        app.send(req).await
    }
}

/// A multipart body: (field name, file name, content).
fn multipart(parts: &[(&str, Option<&str>, &str)]) -> String {
    let mut out = String::new();
    for (name, file, content) in parts {
        out.push_str(&format!("--{BOUNDARY}\r\n"));
        match file {
            Some(f) => out.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: text/csv\r\n\r\n"
            )),
            None => out.push_str(&format!(
                "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"
            )),
        }
        out.push_str(content);
        out.push_str("\r\n");
    }
    out.push_str(&format!("--{BOUNDARY}--\r\n"));
    out
}

/// The upload form's fields, with this CSRF token (none: no field) and file.
fn upload_parts<'a>(
    csrf: Option<&'a str>,
    day: &'a str,
    file: Option<&'a str>,
) -> Vec<(&'a str, Option<&'a str>, &'a str)> {
    let mut parts = Vec::new();
    if let Some(t) = csrf {
        parts.push(("csrf_token", None, t));
    }
    parts.extend([
        ("mode", None, "delta"),
        ("file_date-day", None, day),
        ("file_date-month", None, "11"),
        ("file_date-year", None, "2026"),
    ]);
    match file {
        Some(content) => parts.push(("file", Some("errors.csv"), content)),
        None => parts.push(("file", Some(""), "")),
    }
    parts
}

#[tokio::test]
async fn another_las_upload_report_is_not_found() {
    let app = spawn_app();
    let coventry = sign_in(&app, COVENTRY, "coventry.web").await;
    let theirs = app
        .upload(
            "?file_id=wes-1",
            WESTMINSTER_TOKEN,
            demo_file("E09000033.csv"),
        )
        .await;
    // The demo already holds this file: the duplicate report is Westminster's own.
    assert!(theirs.status.is_success(), "{}", theirs.text());
    assert_eq!(theirs.json()["la"], WESTMINSTER);
    let theirs = theirs.json()["id"].as_str().unwrap().to_owned();
    let ours = app
        .upload(
            "?file_id=cov-errors",
            COVENTRY_TOKEN,
            demo_file("errors-E08000026.csv"),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let own = coventry.get(&app, &format!("/la/uploads/{ours}")).await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(own.text().contains("CPF03"), "{}", own.text());

    let other = coventry.get(&app, &format!("/la/uploads/{theirs}")).await;
    let missing = coventry
        .get(&app, "/la/uploads/00000000-0000-4000-8000-000000000000")
        .await;
    let garbage = coventry.get(&app, "/la/uploads/not-an-id").await;
    for r in [&other, &missing, &garbage] {
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(r.text().contains("Page not found"));
    }
    assert_eq!(
        other.text(),
        missing.text(),
        "no hint that the upload exists"
    );
    let csv = coventry
        .get(&app, &format!("/api/v1/uploads/{theirs}?format=csv"))
        .await;
    assert_eq!(csv.status, StatusCode::NOT_FOUND);
    let confirm = coventry
        .submit(&app, &format!("/la/uploads/{theirs}/confirm"), &[])
        .await;
    assert_eq!(confirm.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn uploads_need_the_csrf_token_and_record_nothing_without_it() {
    let app = spawn_app();
    let s = sign_in(&app, COVENTRY, "coventry.web").await;
    let file = demo_file("errors-E08000026.csv");
    let before = app.uploads_stored();
    for token in [None, Some("wrong-token")] {
        let r = s
            .post_upload(&app, &upload_parts(token, "20", Some(&file)))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{token:?}");
        assert_eq!(app.uploads_stored(), before, "{token:?}: nothing recorded");
    }
    // The token after the file does not count: the file is refused before it is read.
    let mut late = upload_parts(None, "20", Some(&file));
    late.push(("csrf_token", None, &s.csrf));
    assert_eq!(
        s.post_upload(&app, &late).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.uploads_stored(), before);

    let r = s
        .post_upload(&app, &upload_parts(Some(&s.csrf), "20", Some(&file)))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let report = location(&r);
    assert!(report.starts_with("/la/uploads/"), "{report}");
    assert_eq!(app.uploads_stored(), before + 1);
    let page = s.get(&app, report).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(
        html.contains("CPF03") && html.contains("Web page"),
        "{html}"
    );
    let id = report.trim_start_matches("/la/uploads/");
    let api = app
        .get(&format!("/api/v1/uploads/{id}"), Some(COVENTRY_TOKEN))
        .await;
    assert_eq!(api.json()["channel"], "web");
    assert_eq!(api.json()["counts"]["by_outcome"]["CPR04"], 2);
}

#[tokio::test]
async fn a_bad_upload_form_shows_the_error_summary_and_records_nothing() {
    let app = spawn_app();
    let s = sign_in(&app, COVENTRY, "coventry.web").await;
    let before = app.uploads_stored();

    let r = s
        .post_upload(&app, &upload_parts(Some(&s.csrf), "20", None))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let html = r.text();
    assert!(html.contains("nhsuk-error-summary"), "{html}");
    assert!(
        html.contains("<a href=\"#file\">Select a CSV file to upload</a>"),
        "{html}"
    );
    assert!(html.contains("<title>Error: Upload a file"), "{html}");

    let file = demo_file("errors-E08000026.csv");
    let r = s
        .post_upload(&app, &upload_parts(Some(&s.csrf), "31", Some(&file)))
        .await;
    // 31 November does not exist.
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let html = r.text();
    assert!(
        html.contains("<a href=\"#file-date-day\">File date must be a real date"),
        "{html}"
    );
    assert!(html.contains("value=\"31\""), "the answer is kept: {html}");

    let mut no_mode: Vec<_> = upload_parts(Some(&s.csrf), "20", Some(&file))
        .into_iter()
        .filter(|(n, _, _)| *n != "mode")
        .collect();
    no_mode.push(("mode", None, "sideways"));
    let r = s.post_upload(&app, &no_mode).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("<a href=\"#mode\">"));
    assert_eq!(app.uploads_stored(), before, "nothing recorded");
}

#[tokio::test]
async fn the_script_gets_the_upload_id_at_once() {
    let app = spawn_app();
    let s = sign_in(&app, COVENTRY, "coventry.web").await;
    let file = demo_file("errors-E08000026.csv");
    let req = Request::builder()
        .method(Method::POST)
        .uri("/la/uploads")
        .header("cookie", &s.cookie)
        .header("accept", "application/json")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(multipart(&upload_parts(
            Some(&s.csrf),
            "20",
            Some(&file),
        ))))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["report"], format!("/la/uploads/{id}"));
    // The session cookie reads the API report while and after it runs.
    for _ in 0..200 {
        let status = s.get(&app, &format!("/api/v1/uploads/{id}")).await.json()["status"].clone();
        if status != "processing" {
            assert_eq!(status, "completed");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the upload did not finish");
}

#[tokio::test]
async fn acknowledging_needs_the_csrf_token_and_is_idempotent() {
    let app = spawn_app();
    let s = sign_in(&app, COVENTRY, "coventry.web").await;
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    let [n] = app
        .access_notifications(COVENTRY_TOKEN, SHARED_CHILD)
        .await
        .try_into()
        .expect("one notification");
    let id = n["id"].as_str().unwrap();

    for fields in [vec![("ack", id)], vec![("csrf_token", "wrong"), ("id", id)]] {
        let r = s.post_form(&app, "/la/notifications/ack", &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{fields:?}");
    }
    let still = &app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await[0];
    assert!(still["acknowledged_at"].is_null(), "nothing acknowledged");

    for _ in 0..2 {
        let r = s
            .submit(&app, "/la/notifications/ack", &[("ack", id)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/la/notifications?acknowledged=1");
    }
    let acked = &app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await[0];
    assert!(acked["acknowledged_at"].is_string());
    let inbox = s.get(&app, "/la/notifications?acknowledged=1").await.text();
    assert!(inbox.contains("1 notification acknowledged"), "{inbox}");

    // Westminster's web user cannot acknowledge Coventry's notification (it is not found).
    let w = sign_in(&app, WESTMINSTER, "westminster.web").await;
    let r = w
        .submit(&app, "/la/notifications/ack", &[("ack", id)])
        .await;
    assert_eq!(location(&r), "/la/notifications?acknowledged=0");
}

#[tokio::test]
async fn names_are_escaped_in_the_inbox_and_the_records() {
    let app = spawn_app();
    let s = sign_in(&app, COVENTRY, "coventry.web").await;
    let p = &spare_people()[0];
    let row = format!(
        "upsert,{},\"<b>L1</b>\",\"<script>alert(1)</script>\",\"O'Neil & \"\"Sons\"\"\",{},CPP,2026-01-05,,,{}",
        p.nhs, p.dob, p.sensitive
    );
    app.upload_rows(COVENTRY_TOKEN, &[row]).await;
    app.notifying_lookup(&p.nhs, ED_TOKEN).await;

    let inbox = s.get(&app, "/la/notifications").await;
    assert_eq!(inbox.status, StatusCode::OK);
    let records = s.get(&app, "/la/records?q=o%27neil").await;
    assert_eq!(records.status, StatusCode::OK);
    let rows = s.get(&app, "/la/notifications/rows?after=0").await;
    for (page, html) in [
        ("inbox", inbox.text()),
        ("records", records.text()),
        ("rows", rows.text()),
    ] {
        let at = html.find("alert(1)").map_or(0, |i| i.saturating_sub(60));
        let near = &html[at..(at + 140).min(html.len())];
        assert!(!html.contains("<script>alert"), "{page}: {near}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{page}: {near}"
        );
        assert!(!html.contains("\"Sons\""), "{page}: quotes escaped");
    }
    assert!(records.text().contains("&#60;b&#62;L1&#60;/b&#62;"));
}

#[tokio::test]
async fn the_pages_are_for_local_authorities_only() {
    let app = spawn_app();
    let req = |uri: &str| {
        Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {COVENTRY_TOKEN}"))
            .body(Body::empty())
            .unwrap()
    };
    // Bearer tokens do not open pages: the browser is sent to sign in.
    let r = app.send(req("/la/records")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/sign-in?return_to=/la/records");

    add_web_user(
        &app,
        "ed.web",
        "ED web",
        ED_SETTING,
        "Clinician",
        &[Permission::ViewNotify],
    );
    let clinician = log_in(&app, "ed.web").await;
    for uri in ["/la/records", "/la/notifications", "/la/uploads"] {
        let r = clinician.get(&app, uri).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
    }
}

#[tokio::test]
async fn a_held_full_upload_is_confirmed_from_its_report() {
    let app = spawn_app();
    let s = sign_in(&app, COVENTRY, "coventry.web").await;
    let p = &spare_people()[0];
    // A "complete list" of one child would end nearly all of Coventry's open plans: held.
    let file = format!(
        "{HEADER}\nupsert,{},COV-X1,Ann,Held,{},CPP,2026-01-05,,,{}\n",
        p.nhs, p.dob, p.sensitive
    );
    let mut parts = upload_parts(Some(&s.csrf), "20", Some(&file));
    for part in parts.iter_mut() {
        if part.0 == "mode" {
            part.2 = "full";
        }
    }
    let r = s.post_upload(&app, &parts).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let report = location(&r);
    let held = s.get(&app, report).await.text();
    assert!(held.contains("nhsuk-warning-callout"), "{held}");
    assert!(held.contains("Confirm and apply"), "{held}");
    let records_before = app
        .store
        .la_record_count(&OdsCode::parse(COVENTRY).unwrap())
        .unwrap();

    let confirm = format!("{report}/confirm");
    let r = s.post_form(&app, &confirm, &[]).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "no CSRF token, no confirmation"
    );
    let r = s.submit(&app, &confirm, &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(location(&r), report);
    let done = s.get(&app, report).await.text();
    assert!(
        done.contains("CPF02") && !done.contains("Confirm and apply"),
        "{done}"
    );
    assert!(
        done.contains("Plans ended (not in the full list)"),
        "{done}"
    );
    assert_eq!(
        app.store
            .la_record_count(&OdsCode::parse(COVENTRY).unwrap())
            .unwrap(),
        records_before + 1,
        "plans ended, records kept, the new child added"
    );
    // Confirming again is refused: nothing is held any more.
    let again = s.submit(&app, &confirm, &[]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_upload_page_lists_the_las_own_recent_uploads_newest_first() {
    let app = spawn_app();
    let coventry = sign_in(&app, COVENTRY, "coventry.recent").await;
    let upload = |token: &'static str, file_id: &'static str, file: &'static str| {
        let app = &app;
        async move {
            let r = app
                .upload(&format!("?file_id={file_id}"), token, demo_file(file))
                .await;
            assert!(r.status.is_success(), "{}", r.text());
            r.json()["id"].as_str().unwrap().to_owned()
        }
    };
    let errors = upload(COVENTRY_TOKEN, "cov-errors", "errors-E08000026.csv").await;
    let theirs = upload(WESTMINSTER_TOKEN, "wes-errors", "errors-E08000026.csv").await;

    let page = coventry.get(&app, "/la/uploads").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    let table = &html[html
        .find(r#"data-testid="recent-uploads""#)
        .expect("the table")..];
    // Newest first: the errors file, then the demo's own file for Coventry.
    let newest = table
        .find(&format!("/la/uploads/{errors}"))
        .expect("ours listed");
    let demo = table.find("demo-E08000026").expect("the demo file listed");
    assert!(newest < demo, "newest first");
    assert!(table.contains("CPF03") && table.contains("4 accepted"));
    assert!(table.contains("cov-errors"));
    assert!(
        !table.contains(&theirs),
        "another LA's upload is not listed"
    );
    assert!(!table.contains("wes-errors"));
}

#[tokio::test]
async fn la_users_see_only_the_pages_their_permissions_open() {
    let app = spawn_app();
    // (username, permissions, home page, links shown, links hidden)
    type Case<'a> = (
        &'a str,
        &'a [Permission],
        &'a str,
        &'a [&'a str],
        &'a [&'a str],
    );
    let cases: [Case; 2] = [
        (
            "inbox.only",
            &[Permission::LaNotifications],
            "/la/notifications",
            &["/la/notifications"],
            &["/la/uploads", "/la/records", "/la/data-quality"],
        ),
        (
            "upload.only",
            &[Permission::LaUpload],
            "/la/uploads",
            &["/la/uploads", "/la/records", "/la/data-quality"],
            &["/la/notifications"],
        ),
    ];
    for (username, permissions, home, shown, hidden) in cases {
        add_web_user(
            &app,
            username,
            username,
            COVENTRY,
            "Social worker",
            permissions,
        );
        let (signed_in, cookie) = submit_sign_in(&app, username).await;
        assert_eq!(
            location(&signed_in),
            home,
            "{username} lands on a page they may open"
        );
        let page = get_page(&app, home, Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{username}");
        let nav = page.text();
        let nav = &nav[nav.find("nhsuk-header__navigation").expect("nav")..];
        for href in shown {
            assert!(
                nav.contains(&format!(r#"href="{href}""#)),
                "{username}: {href} shown"
            );
            assert_eq!(
                get_page(&app, href, Some(&cookie)).await.status,
                StatusCode::OK
            );
        }
        for href in hidden {
            assert!(
                !nav.contains(&format!(r#"href="{href}""#)),
                "{username}: {href} hidden"
            );
            assert_eq!(
                get_page(&app, href, Some(&cookie)).await.status,
                StatusCode::FORBIDDEN,
                "{username}: {href} refused"
            );
        }
    }
}

/// Issue #18: a web upload's report (page and CSV) is titled by the file's name and file id, not
/// a content hash; its rows say what their numbers count, carry the local id and read as
/// sentences with the detail code in its own column; a lone recent upload is "one file".
#[tokio::test]
async fn the_upload_report_is_titled_by_the_file_and_reads_as_sentences() {
    let app = spawn_app();
    // Hartlepool: no demo uploads, so its list holds only this file.
    let s = sign_in(&app, "E06000001", "hartlepool.web").await;
    let file = demo_file("errors-E08000026.csv");
    let r = s
        .post_upload(&app, &upload_parts(Some(&s.csrf), "20", Some(&file)))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let report = location(&r).to_owned();
    let id = report.trim_start_matches("/la/uploads/").to_owned();
    let api = s.get(&app, &format!("/api/v1/uploads/{id}")).await.json();
    let file_id = api["file_id"].as_str().unwrap().to_owned();
    assert!(
        file_id.starts_with("errors.csv.") && file_id.len() == "errors.csv.".len() + 16,
        "{file_id}"
    );
    let html = s.get(&app, &report).await.text();
    assert!(
        html.contains("<h1 class=\"nhsuk-heading-l\">Upload report: errors.csv</h1>"),
        "{html}"
    );
    assert!(html.contains("<title>Upload report: errors.csv"), "{html}");
    assert!(!html.contains("sha256-"));
    let squeezed: String = html.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(squeezed.contains(
        "<dt class=\"nhsuk-summary-list__key\">File name</dt> <dd class=\"nhsuk-summary-list__value\">errors.csv</dd>"
    ), "{html}");
    assert!(squeezed.contains(&format!(
        "<dt class=\"nhsuk-summary-list__key\">File ID</dt> <dd class=\"nhsuk-summary-list__value\">{file_id}</dd>"
    )));
    // Row numbers say what they count.
    assert!(html.contains(">Row after the header</th>"));
    assert!(html.contains("row 1 is the first line after the header row (line 2 of the file)"));
    // Messages are sentences; codes have their own column.
    assert!(!html.contains("NHS_NUMBER_CHECK_DIGIT:") && !html.contains("BAD_DATE:"));
    assert!(html.contains(">Detail code</th>") && html.contains(">BAD_DATE</td>"));
    assert!(
        html.contains("The same NHS number and plan type appear earlier in this file."),
        "{html}"
    );
    // Every row shows the local id it was sent with: an accepted row, and a rejected one that
    // the LA's records do not hold (the officer finds it in their own system by it).
    assert!(html.contains(">Local ID</th>"));
    for outcome in ["CPR06", "CPR01"] {
        let row = api["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["outcome"] == outcome)
            .unwrap_or_else(|| panic!("a {outcome} row"))["row"]
            .as_u64()
            .unwrap();
        let local_id = file
            .lines()
            .nth(row as usize)
            .unwrap()
            .split(',')
            .nth(2)
            .unwrap();
        assert!(!local_id.is_empty(), "{outcome}");
        assert!(
            html.contains(&format!("cpis-break-anywhere\">{local_id}</td>")),
            "{outcome} {local_id}: {html}"
        );
    }

    // The CSV: named by the file id, messages as sentences, codes in their own column.
    let csv = s
        .get(&app, &format!("/api/v1/uploads/{id}?format=csv"))
        .await;
    assert_eq!(
        csv.headers["content-disposition"],
        format!("attachment; filename=\"cpis-report-{file_id}.csv\"").as_str()
    );
    let text = csv.text();
    assert!(
        text.contains(
            ",CPR07,DUPLICATE_ROW,The same NHS number and plan type appear earlier in this file.,"
        ),
        "{text}"
    );
    assert!(!text.contains("NHS_NUMBER_CHECK_DIGIT:"));

    // The upload page: the file listed by its name, "one file" in the singular.
    let html = s.get(&app, "/la/uploads").await.text();
    assert!(html.contains("The one file received from"), "{html}");
    assert!(!html.contains("The latest 1 files"));
    assert!(
        html.contains(">errors.csv<span class=\"nhsuk-u-visually-hidden\"> report</span></a>"),
        "{html}"
    );
    assert!(html.contains(&format!("File ID {file_id}")));
    // The same file again is a duplicate, titled the same way.
    let r = s
        .post_upload(&app, &upload_parts(Some(&s.csrf), "20", Some(&file)))
        .await;
    let html = s.get(&app, location(&r)).await.text();
    assert!(
        html.contains("Upload report: errors.csv") && html.contains("already received"),
        "{html}"
    );
    let html = s.get(&app, "/la/uploads").await.text();
    assert!(html.contains("The 2 files received from"), "{html}");
}

/// The work queue (docs/WORKFLOW.md): repeat lookups of one child at one setting show as one
/// item with a count and each time; acknowledging the item with an outcome acknowledges all of
/// them; a note too long is refused and acknowledges nothing; acknowledged items leave the
/// default (unacknowledged) view.
#[tokio::test]
async fn repeat_lookups_are_one_item_acknowledged_together_with_an_outcome() {
    let app = spawn_app();
    let s = sign_in(&app, COVENTRY, "coventry.web").await;
    let start = day("2026-11-20");
    for i in 0..3 {
        app.clock.set(start + chrono::Duration::minutes(10 * i));
        app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    }
    app.clock.set(start + chrono::Duration::hours(1));
    let inbox = s.get(&app, "/la/notifications").await.text();
    assert!(inbox.contains("Looked up 3 times"), "{inbox}");
    let seen = app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await;
    assert_eq!(seen.len(), 3, "each lookup still a notification of its own");
    let mut ids: Vec<&str> = seen.iter().map(|n| n["id"].as_str().unwrap()).collect();
    ids.reverse();
    let item = ids.join(",");
    assert!(
        inbox.contains(&format!("value=\"{item}\"")),
        "one checkbox for the item"
    );

    let long = "n".repeat(1001);
    let r = s
        .submit(
            &app,
            "/la/notifications/ack",
            &[
                ("id", &item),
                ("outcome", "contacted-setting"),
                ("note", &long),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text().contains("Note must be at most 1000 characters"),
        "{}",
        r.text()
    );
    let r = s
        .submit(
            &app,
            "/la/notifications/ack",
            &[("id", &item), ("outcome", "shrug")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let untouched = app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await;
    assert!(untouched.iter().all(|n| n["acknowledged_at"].is_null()));

    let r = s
        .submit(
            &app,
            "/la/notifications/ack",
            &[
                ("id", &item),
                ("outcome", "contacted-setting"),
                ("note", "Spoke to the ED nurse in charge"),
                ("back", "filtered=1&unacknowledged=true&page=0"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        location(&r),
        "/la/notifications?filtered=1&unacknowledged=true&page=0&acknowledged=3"
    );
    let acked = app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await;
    for n in &acked {
        assert_eq!(n["outcome"], "contacted-setting");
        assert_eq!(n["note"], "Spoke to the ED nurse in charge");
        assert_eq!(n["acknowledged_by"]["name"], "coventry.web name");
    }
    let inbox = s.get(&app, "/la/notifications").await.text();
    assert!(
        !inbox.contains("Looked up 3 times"),
        "acknowledged: not in the default view"
    );
    let all = s.get(&app, "/la/notifications?filtered=1").await.text();
    assert!(
        all.contains("by coventry.web name: Contacted the setting"),
        "{all}"
    );
}

#[tokio::test]
async fn an_overdue_item_comes_first_and_assign_to_me_filters() {
    let app = spawn_app();
    let start = day("2026-11-20");
    app.clock.set(start);
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    app.clock.set(start + chrono::Duration::hours(25));
    app.notifying_lookup(SHARED_CHILD, ED2_TOKEN).await;
    // Signed in now: a session left idle for a day has ended.
    let s = sign_in(&app, COVENTRY, "coventry.web").await;
    let r = s.get(&app, "/la/notifications").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let inbox = r.text();
    let overdue = inbox.find("cpis-overdue-row").expect("an overdue item");
    let body = inbox.find("<tbody").unwrap();
    let first_row = body + inbox[body..].find("<tr class=\"nhsuk-table__row").unwrap();
    assert!(overdue < first_row + 60, "the overdue item is first");
    assert!(inbox[first_row..].contains("Overdue"));
    let seen = app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await;
    let newest = seen[1]["id"].as_str().unwrap();
    let r = s
        .submit(&app, "/la/notifications/assign", &[("assign_me", newest)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mine = s
        .get(&app, "/la/notifications?filtered=1&assigned_to_me=true")
        .await
        .text();
    assert!(mine.contains("Assigned to coventry.web name"), "{mine}");
    assert_eq!(
        mine.matches("data-inbox-select ").count() + mine.matches("data-inbox-select>").count(),
        1
    );
}

/// A mother on an unborn child protection plan is never called the child in the inbox.
#[tokio::test]
async fn the_mother_on_an_unborn_child_plan_is_not_called_the_child() {
    let app = spawn_app();
    let mother = spare_mothers().remove(0);
    app.upload_rows(
        COVENTRY_TOKEN,
        &[ucpp_row(&mother, "2026-10-01", None, "2027-01-15")],
    )
    .await;
    app.notifying_lookup(&mother.nhs, ED_TOKEN).await;
    let s = sign_in(&app, COVENTRY, "coventry.web").await;
    let inbox = s.get(&app, "/la/notifications").await.text();
    let at = inbox.find("T-").expect("the mother's row");
    let row_start = inbox[..at].rfind("<tr").unwrap();
    let row_end = at + inbox[at..].find("</tr>").unwrap();
    let row = &inbox[row_start..row_end];
    assert!(row.contains("Mother seen"), "{row}");
    assert!(
        row.contains("this is the mother&#39;s record")
            || row.contains("this is the mother's record"),
        "{row}"
    );
    assert!(!row.contains("Child"), "{row}");
}

/// The inbox's live updates start after the LA's newest notification, not after the newest one
/// the (unacknowledged) queue shows: a notification acknowledged a moment ago must not come back
/// as "new" when the page's script fetches what arrived since. A page narrowed to a child,
/// setting, kind, date or assignee has no live updates (what arrives may not match it).
#[tokio::test]
async fn live_updates_start_after_the_newest_notification_whatever_the_filter_hides() {
    let app = spawn_app();
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    let [n] = &app.all_notifications(COVENTRY_TOKEN).await[..] else {
        panic!("one notification")
    };
    let cursor = n["cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        app.ack(n["id"].as_str().unwrap(), Some(COVENTRY_TOKEN))
            .await
            .status,
        StatusCode::OK
    );
    let coventry = sign_in(&app, COVENTRY, "cov.live").await;
    let page = coventry.get(&app, "/la/notifications").await.text();
    assert!(
        page.contains(&format!("data-live-after=\"{cursor}\"")),
        "{page}"
    );
    let rows = coventry
        .get(&app, &format!("/la/notifications/rows?after={cursor}"))
        .await
        .text();
    assert!(!rows.contains("data-seq"), "{rows}");
    let narrowed = coventry
        .get(
            &app,
            &format!("/la/notifications?filtered=1&nhs_number={SHARED_CHILD}"),
        )
        .await
        .text();
    assert!(!narrowed.contains("data-live-after"), "{narrowed}");
}
