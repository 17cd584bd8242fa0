//! The web UI foundation and clinician pages (issue #7, phase 1), in-process: sign-in and its
//! cookie, redirects to the sign-in page, the CSRF rule for forms, HTML escaping, the NHS number
//! never read from a URL, validation that records nothing, HTML 404s and embedded assets.

use crate::common::web::*;
use crate::common::*;
use axum::http::{header, Method, StatusCode};
use cpis_domain::Permission;

fn add_clinician(app: &TestApp, username: &str, display: &str) {
    add_web_user(
        app,
        username,
        display,
        ED_SETTING,
        "Clinician",
        &[Permission::ViewNotify],
    );
}

/// The value of the first `name="csrf_token"` hidden field in a page.
fn csrf_in(html: &str) -> String {
    let field = "name=\"csrf_token\" value=\"";
    let at = html.find(field).expect("a CSRF field") + field.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// Signs a clinician in through the sign-in page; the CSRF token comes from the page it lands on.
async fn sign_in(app: &TestApp, username: &str) -> Browser {
    let (r, cookie) = submit_sign_in(app, username).await;
    assert_eq!(
        location(&r),
        "/lookup",
        "a clinician lands on the lookup page"
    );
    let set = r.headers[header::SET_COOKIE].to_str().unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "session cookie lacks {attr}: {set}");
    }
    let page = get_page(app, "/lookup", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    Browser {
        csrf: csrf_in(&page.text()),
        cookie,
    }
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_sign_in_with_a_safe_return_path() {
    let app = spawn_app();
    let r = get_page(&app, "/lookup", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/sign-in?return_to=/lookup");
    let r = get_page(&app, "/", None).await;
    assert_eq!(location(&r), "/sign-in");
    let before = app.accesses_stored();
    let r = post_form(&app, "/lookup", None, &[("nhs_number", SHARED_CHILD)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/sign-in"));
    assert_eq!(
        app.accesses_stored(),
        before,
        "a signed-out post records nothing"
    );
    // A forged session cookie is no session.
    let r = get_page(&app, "/lookup", Some("cpis_session=forged")).await;
    assert_eq!(location(&r), "/sign-in?return_to=/lookup");

    // The sign-in page keeps only same-site page paths to return to.
    let page = get_page(&app, "/sign-in?return_to=//evil.example/x", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text().contains("name=\"return_to\" value=\"\""),
        "{}",
        page.text()
    );
    add_clinician(&app, "web.clinician", "Web Clinician");
    let r = post_form(
        &app,
        "/sign-in",
        None,
        &[
            ("username", "web.clinician"),
            ("password", PASSWORD),
            ("return_to", "https://evil.example/"),
        ],
    )
    .await;
    assert_eq!(location(&r), "/lookup", "an unsafe return path is ignored");
}

#[tokio::test]
async fn a_failed_sign_in_says_the_same_whether_or_not_the_user_exists() {
    let app = spawn_app();
    add_clinician(&app, "web.clinician", "Web Clinician");
    let wrong = post_form(
        &app,
        "/sign-in",
        None,
        &[("username", "web.clinician"), ("password", "nope")],
    )
    .await;
    let unknown = post_form(
        &app,
        "/sign-in",
        None,
        &[("username", "nobody.here"), ("password", "nope")],
    )
    .await;
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.headers.get(header::SET_COOKIE).is_none());
        let html = r.text();
        assert!(html.contains("There is a problem"), "{html}");
        assert!(
            html.contains("Enter a correct username and password"),
            "{html}"
        );
        assert!(
            html.contains("<title>Error: Sign in – CP-IS – NHS</title>"),
            "{html}"
        );
    }
    let failed = app
        .last_audit("auth.login", Some("web.clinician"))
        .await
        .expect("audited");
    assert_eq!(failed["outcome"], "denied", "{failed}");
    let empty = post_form(
        &app,
        "/sign-in",
        None,
        &[("username", ""), ("password", "")],
    )
    .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(
        empty.text().contains("Enter your username")
            && empty.text().contains("Enter your password")
    );
}

#[tokio::test]
async fn user_controlled_text_is_escaped() {
    let app = spawn_app();
    add_clinician(&app, "web.clinician", "<script>alert('x')</script> & Co");
    let b = sign_in(&app, "web.clinician").await;
    let html = b.get(&app, "/lookup").await.text();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; Co"),
        "{html}"
    );
    // A posted value echoed back in the form is escaped too.
    let r = b
        .submit(&app, "/lookup", &[("nhs_number", "\"><script>x</script>")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(!r.text().contains("<script>x"), "{}", r.text());
}

#[tokio::test]
async fn form_posts_need_the_sessions_csrf_token() {
    let app = spawn_app();
    add_clinician(&app, "web.clinician", "Web Clinician");
    let b = sign_in(&app, "web.clinician").await;
    let before = (
        app.accesses_stored(),
        app.store.counts().unwrap().notifications,
    );
    for fields in [
        vec![("nhs_number", SHARED_CHILD)],
        vec![("csrf_token", "wrong-token"), ("nhs_number", SHARED_CHILD)],
        vec![("csrf_token", ""), ("nhs_number", SHARED_CHILD)],
    ] {
        let r = b.post_form(&app, "/lookup", &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{fields:?}");
        assert!(r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(
            r.text().contains("You cannot use this page"),
            "{}",
            r.text()
        );
        assert!(!r.text().contains(SHARED_CHILD));
    }
    assert_eq!(
        (
            app.accesses_stored(),
            app.store.counts().unwrap().notifications
        ),
        before,
        "nothing recorded without the token"
    );
    let denied = app
        .last_audit("auth.csrf", Some("web.clinician"))
        .await
        .expect("audited");
    assert_eq!(denied["outcome"], "denied", "{denied}");
    // The header the API uses is not a substitute for the form field, and vice versa.
    let r = app
        .request(
            Method::POST,
            "/lookup",
            &[
                ("cookie", &b.cookie),
                ("x-csrf-token", &b.csrf),
                ("content-type", FORM),
            ],
            format!("nhs_number={SHARED_CHILD}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Sign-out needs it too.
    let r = b.post_form(&app, "/sign-out", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        b.get(&app, "/lookup").await.status,
        StatusCode::OK,
        "still signed in"
    );

    // With the token, the lookup happens and notifies both LAs.
    let r = b
        .submit(&app, "/lookup", &[("nhs_number", "999 059 7634")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let html = r.text();
    assert_eq!(
        html.matches("data-testid=\"flag-panel\"").count(),
        2,
        "{html}"
    );
    let coventry = la_directory_entry(COVENTRY);
    assert!(
        html.contains(&format!(
            "href=\"tel:{}\"",
            coventry.edt_phone.replace(' ', "")
        )),
        "{html}"
    );
    assert!(
        html.contains("This lookup notified the local authority"),
        "{html}"
    );
    assert_eq!(app.accesses_stored(), before.0 + 1);
    assert_eq!(app.store.counts().unwrap().notifications, before.1 + 2);

    let r = b.submit(&app, "/sign-out", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/sign-in?signed_out=1");
    assert!(r.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        b.get(&app, "/lookup").await.status,
        StatusCode::SEE_OTHER,
        "session ended"
    );
}

#[tokio::test]
async fn the_lookup_page_never_takes_the_nhs_number_from_a_url() {
    let app = spawn_app();
    add_clinician(&app, "web.clinician", "Web Clinician");
    let b = sign_in(&app, "web.clinician").await;
    let before = app.accesses_stored();
    let r = b
        .get(&app, &format!("/lookup?nhs_number={SHARED_CHILD}"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/lookup", "the query is dropped");
    assert!(!r.text().contains(SHARED_CHILD));
    // A POST with the number in the query string and not in the body is an empty form.
    let r = b
        .submit(&app, &format!("/lookup?nhs_number={SHARED_CHILD}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text().contains("Enter the child&#39;s NHS number"),
        "{}",
        r.text()
    );
    assert_eq!(app.accesses_stored(), before, "nothing recorded");
}

#[tokio::test]
async fn bad_nhs_numbers_get_a_clear_error_and_record_nothing() {
    let app = spawn_app();
    add_clinician(&app, "web.clinician", "Web Clinician");
    let b = sign_in(&app, "web.clinician").await;
    let before = (
        app.accesses_stored(),
        app.audit_entries("?limit=1000").await.len(),
    );
    for (input, message) in [
        ("", "Enter the child&#39;s NHS number"),
        ("12345", "NHS number must be 10 digits"),
        (
            "943 476 591A",
            "NHS number must only include numbers and spaces",
        ),
        (
            "943 476 5918",
            "This is not a valid NHS number. Check it and enter it again",
        ),
    ] {
        let r = b.submit(&app, "/lookup", &[("nhs_number", input)]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{input:?}");
        let html = r.text();
        assert!(html.contains("nhsuk-error-summary"), "{html}");
        assert!(
            html.contains(&format!("<a href=\"#nhs-number\">{message}</a>")),
            "{input:?}: {html}"
        );
        assert!(html.contains("<title>Error: Look up a child – CP-IS – NHS</title>"));
    }
    assert_eq!(app.accesses_stored(), before.0, "no access recorded");
    // The audit search itself is audited; nothing else was written.
    let after = app.audit_entries("?limit=1000").await;
    assert!(
        after
            .iter()
            .take(after.len() - before.1)
            .all(|e| !e["action"].as_str().unwrap().starts_with("lookup")),
        "no lookup audited"
    );
}

#[tokio::test]
async fn people_without_the_lookup_capability_get_a_403_page() {
    let app = spawn_app();
    add_web_user(
        &app,
        "la.worker",
        "LA Worker",
        COVENTRY,
        "Social worker",
        &[Permission::LaNotifications],
    );
    let (r, cookie) = submit_sign_in(&app, "la.worker").await;
    assert_ne!(
        location(&r),
        "/lookup",
        "an LA user does not land on the lookup page"
    );
    let page = get_page(&app, "/lookup", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.text().contains("You cannot use this page"));
    assert!(!page.text().contains("Look up a child&#39;s NHS number"));
}

#[tokio::test]
async fn browsers_get_html_404s_and_api_clients_json() {
    let app = spawn_app();
    let page = get_page(&app, "/no-such-page", None).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().contains("Page not found"));
    let api = get_page(&app, "/api/v1/no-such-thing", None).await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert_eq!(api.json()["error"], "not_found");
    let plain = app.get("/no-such-page", None).await;
    assert_eq!(
        plain.json()["error"],
        "not_found",
        "no Accept: text/html, the API's answer"
    );
}

#[tokio::test]
async fn pages_are_html_not_cached_and_assets_are_embedded_and_cached() {
    let app = spawn_app();
    let page = get_page(&app, "/sign-in", None).await;
    assert_eq!(
        page.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    let html = page.text();
    assert!(html.contains("<title>Sign in – CP-IS – NHS</title>"));
    assert!(html.contains("Child Protection – Information Sharing"));
    assert!(html.contains("href=\"#maincontent\""), "skip link");
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
    let end = html
        .find("/nhsuk-frontend.min.css\"")
        .expect("the NHS.UK stylesheet link");
    let start = html[..end].rfind('"').unwrap() + 1;
    let css_path = &html[start..end + "/nhsuk-frontend.min.css".len()];
    assert!(css_path.ends_with("/nhsuk-frontend.min.css"), "{css_path}");
    let css = app.get(css_path, None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(css.headers[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("immutable"));
    assert!(
        css.text().contains(".nhsuk-header"),
        "the NHS.UK stylesheet is embedded (run npm ci --prefix web)"
    );
    assert!(
        !css.text().contains("assets.nhs.uk"),
        "no fonts from another origin"
    );
    let prefix = css_path.trim_end_matches("nhsuk-frontend.min.css");
    let js = app.get(&format!("{prefix}app.js"), None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(
        js.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    let svg = app
        .get(&format!("{prefix}images/nhsuk-icon-cross.svg"), None)
        .await;
    assert_eq!(svg.headers[header::CONTENT_TYPE], "image/svg+xml");
    let other_build = app
        .get("/assets/000000000000/nhsuk-frontend.min.css", None)
        .await;
    assert_eq!(other_build.status, StatusCode::NOT_FOUND);
}
