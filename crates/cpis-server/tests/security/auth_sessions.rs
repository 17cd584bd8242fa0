//! Local accounts (docs/SECURITY.md): password login, the session cookie and its attributes, CSRF
//! on unsafe requests, logout, lockout after five failures, and failures that all look alike.

use crate::common::*;
use axum::http::{Method, StatusCode};
use cpis_auth::users::{self, NewUser};
use cpis_domain::{Clock, OdsCode, Permission, Permissions};
use cpis_store::UserKind;
use serde_json::{json, Value};

const USER: &str = "cov.worker";
const PASSWORD: &str = "correct horse battery staple";

/// A Coventry social worker with a password (and no API token).
fn add_password_user(app: &TestApp) {
    users::add(
        app.store.as_ref(),
        NewUser {
            username: USER.into(),
            display_name: "Coventry Social Worker".into(),
            kind: UserKind::User,
            organisation: OdsCode::parse(COVENTRY).unwrap(),
            role: "Social worker".into(),
            permissions: Permissions::new([Permission::LaUpload, Permission::LaNotifications]),
            password: Some(PASSWORD.into()),
        },
        app.clock.now(),
    )
    .expect("password user");
}

async fn login(app: &TestApp, username: &str, password: &str) -> Reply {
    app.request(
        Method::POST,
        "/auth/login",
        &[("content-type", "application/json")],
        json!({"username": username, "password": password}).to_string(),
    )
    .await
}

/// The session cookie's value from a login reply.
fn session_cookie(r: &Reply) -> String {
    let set = r.headers["set-cookie"].to_str().unwrap();
    let first = set.split(';').next().unwrap();
    let (name, value) = first.split_once('=').unwrap();
    assert_eq!(name, "cpis_session", "{set}");
    assert!(!value.is_empty(), "{set}");
    value.to_owned()
}

fn cookie_header(value: &str) -> String {
    format!("cpis_session={value}")
}

async fn with_cookie(
    app: &TestApp,
    method: Method,
    uri: &str,
    cookie: &str,
    csrf: Option<&str>,
) -> Reply {
    let c = cookie_header(cookie);
    let mut headers = vec![("cookie", c.as_str())];
    if let Some(t) = csrf {
        headers.push(("x-csrf-token", t));
    }
    app.request(method, uri, &headers, "").await
}

/// A Coventry access notification to acknowledge.
async fn coventry_notification(app: &TestApp) -> String {
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD)
        .await
        .pop()
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A failed login's reply, reduced to what a caller can compare (the body without the request's
/// own trace id).
fn failure(r: &Reply) -> (StatusCode, Vec<u8>, Option<String>, Option<String>) {
    (
        r.status,
        problem_of(r).to_string().into_bytes(),
        r.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        r.headers
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned()),
    )
}

#[tokio::test]
async fn login_sets_a_secure_http_only_strict_session_cookie() {
    let app = spawn_app();
    add_password_user(&app);
    let r = login(&app, USER, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let set = r.headers["set-cookie"].to_str().unwrap().to_owned();
    let attrs: Vec<String> = set
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for want in ["httponly", "secure", "samesite=strict", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} in {set}");
    }
    assert!(attrs.iter().any(|a| a == "max-age=28800"), "8 hours: {set}");
    let body = r.json();
    assert_eq!(body["user"]["user_id"], USER);
    assert_eq!(body["user"]["organisation"], COVENTRY);
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    assert!(csrf.len() >= 32, "a real secret: {csrf}");
    let cookie = session_cookie(&r);
    assert!(cookie.len() >= 32, "a real secret: {cookie}");
    assert!(
        !r.text().contains(&cookie),
        "the session id is only in the cookie"
    );

    let me = with_cookie(&app, Method::GET, "/auth/session", &cookie, None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    let me = me.json();
    assert_eq!(me["user"]["user_id"], USER);
    assert_eq!(me["user"]["name"], "Coventry Social Worker");
    assert_eq!(me["user"]["organisation_name"], "Coventry");
    assert_eq!(me["csrf_token"], csrf);

    // The session works for the API like a token does (safe methods need no CSRF token).
    let list = with_cookie(&app, Method::GET, "/api/v1/notifications", &cookie, None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());

    // Successful logins are audited under the user.
    let entry = app.last_audit("auth.login", Some(USER)).await.unwrap();
    assert_eq!(entry["outcome"], "success");
}

#[tokio::test]
async fn unsafe_requests_with_the_cookie_need_the_sessions_csrf_token() {
    let app = spawn_app();
    add_password_user(&app);
    let note = coventry_notification(&app).await;
    let r = login(&app, USER, PASSWORD).await;
    let cookie = session_cookie(&r);
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_owned();
    let uri = format!("/api/v1/notifications/{note}/ack");

    let missing = with_cookie(&app, Method::POST, &uri, &cookie, None).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN, "{}", missing.text());
    assert_reveals_nothing(&missing.body, "no CSRF token");
    let wrong = with_cookie(&app, Method::POST, &uri, &cookie, Some("not-the-token")).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.text());
    let almost = format!("{}x", &csrf[..csrf.len() - 1]);
    let almost = with_cookie(&app, Method::POST, &uri, &cookie, Some(&almost)).await;
    assert_eq!(almost.status, StatusCode::FORBIDDEN);
    let empty = with_cookie(&app, Method::POST, &uri, &cookie, Some("")).await;
    assert_eq!(empty.status, StatusCode::FORBIDDEN);
    // Another session's token does not do either.
    let other = login(&app, USER, PASSWORD).await;
    let other_csrf = other.json()["csrf_token"].as_str().unwrap().to_owned();
    assert_ne!(other_csrf, csrf);
    let crossed = with_cookie(&app, Method::POST, &uri, &cookie, Some(&other_csrf)).await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN);
    // Nothing was acknowledged by the refused requests.
    let n = app
        .all_notifications(COVENTRY_TOKEN)
        .await
        .into_iter()
        .find(|n| n["id"] == note.as_str())
        .unwrap();
    assert_eq!(n["acknowledged_at"], Value::Null);

    let ok = with_cookie(&app, Method::POST, &uri, &cookie, Some(&csrf)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json()["already_acknowledged"], false);
    let entry = app
        .last_audit("notification.ack", Some(USER))
        .await
        .unwrap();
    assert_eq!(entry["outcome"], "success");
    assert_eq!(entry["actor"]["organisation"], COVENTRY);

    // An upload with the cookie is an unsafe request too.
    let child = spare_children().remove(0);
    let body = format!(
        "{HEADER}\n{}\n",
        plan_row(&child, "CPP", "2026-02-01", None)
    );
    let c = cookie_header(&cookie);
    let no_csrf = app
        .request(
            Method::POST,
            "/api/v1/uploads",
            &[("cookie", &c), ("content-type", "text/csv")],
            body.clone(),
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let with = app
        .request(
            Method::POST,
            "/api/v1/uploads",
            &[
                ("cookie", &c),
                ("content-type", "text/csv"),
                ("x-csrf-token", &csrf),
            ],
            body,
        )
        .await;
    assert_eq!(with.status, StatusCode::CREATED, "{}", with.text());
}

#[tokio::test]
async fn a_csrf_refusal_is_audited() {
    let app = spawn_app();
    add_password_user(&app);
    let note = coventry_notification(&app).await;
    let cookie = session_cookie(&login(&app, USER, PASSWORD).await);
    let before = app.audit_entries("?limit=1").await[0]["seq"]
        .as_u64()
        .unwrap();
    let r = with_cookie(
        &app,
        Method::POST,
        &format!("/api/v1/notifications/{note}/ack"),
        &cookie,
        Some("forged"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let entries = app.audit_entries("?limit=100").await;
    let new: Vec<&Value> = entries
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > before && e["action"] != "audit.search")
        .collect();
    assert!(
        new.iter().any(|e| e["outcome"] == "denied"),
        "no denied entry for the CSRF refusal: {new:#?}"
    );
}

#[tokio::test]
async fn logout_clears_the_cookie_and_ends_the_session() {
    let app = spawn_app();
    add_password_user(&app);
    let r = login(&app, USER, PASSWORD).await;
    let cookie = session_cookie(&r);
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_owned();

    // Logout is an unsafe request: it needs the CSRF token too (no forced logout).
    let forced = with_cookie(&app, Method::POST, "/auth/logout", &cookie, None).await;
    assert_eq!(forced.status, StatusCode::FORBIDDEN);
    let still = with_cookie(&app, Method::GET, "/auth/session", &cookie, None).await;
    assert_eq!(still.status, StatusCode::OK);

    let out = with_cookie(&app, Method::POST, "/auth/logout", &cookie, Some(&csrf)).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text());
    let cleared = out.headers["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("cpis_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    for (method, uri) in [
        (Method::GET, "/auth/session"),
        (Method::GET, "/api/v1/notifications"),
    ] {
        let r = with_cookie(&app, method, uri, &cookie, Some(&csrf)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri} after logout");
    }
    let again = with_cookie(&app, Method::POST, "/auth/logout", &cookie, Some(&csrf)).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    // Logging in again gives a new session.
    let r = login(&app, USER, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(session_cookie(&r), cookie);
}

#[tokio::test]
async fn a_session_ends_after_eight_hours_and_when_the_account_is_disabled() {
    let app = spawn_app();
    add_password_user(&app);
    let cookie = session_cookie(&login(&app, USER, PASSWORD).await);
    let start = start_time();
    app.clock
        .set(start + chrono::Duration::hours(8) - chrono::Duration::seconds(1));
    let r = with_cookie(&app, Method::GET, "/auth/session", &cookie, None).await;
    assert_eq!(r.status, StatusCode::OK, "just inside 8 hours");
    app.clock
        .set(start + chrono::Duration::hours(8) + chrono::Duration::seconds(1));
    let r = with_cookie(&app, Method::GET, "/auth/session", &cookie, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "expired");

    let cookie = session_cookie(&login(&app, USER, PASSWORD).await);
    users::set_disabled(app.store.as_ref(), USER, true, app.clock.now()).unwrap();
    let r = with_cookie(&app, Method::GET, "/auth/session", &cookie, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "disabled");
    // A disabled account cannot log in; the answer is the usual one.
    let disabled = login(&app, USER, PASSWORD).await;
    let wrong = login(&app, "nobody.here", PASSWORD).await;
    assert_eq!(failure(&disabled), failure(&wrong));
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_account_for_fifteen_minutes() {
    let app = spawn_app();
    add_password_user(&app);
    let start = start_time();
    let first_wrong = login(&app, USER, "wrong password number 0").await;
    assert_eq!(first_wrong.status, StatusCode::UNAUTHORIZED);
    for i in 1..5 {
        let r = login(&app, USER, &format!("wrong password number {i}")).await;
        assert_eq!(failure(&r), failure(&first_wrong), "failure {i}");
    }
    // Locked: the right password is refused exactly like a wrong one.
    let locked = login(&app, USER, PASSWORD).await;
    assert_eq!(failure(&locked), failure(&first_wrong));
    assert!(locked.headers.get("set-cookie").is_none());
    app.clock.set(start + chrono::Duration::minutes(14));
    let still = login(&app, USER, PASSWORD).await;
    assert_eq!(
        failure(&still),
        failure(&first_wrong),
        "still locked at 14 min"
    );

    app.clock.set(start + chrono::Duration::minutes(15));
    let ok = login(&app, USER, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    session_cookie(&ok);

    // A success resets the count: four more failures do not lock.
    for i in 0..4 {
        login(&app, USER, &format!("another wrong one {i}")).await;
    }
    let ok = login(&app, USER, PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "four failures do not lock");
    // The lock shows to admins.
    for i in 0..5 {
        login(&app, USER, &format!("and wrong again {i}")).await;
    }
    let users = app
        .get("/api/v1/admin/users", Some(ADMIN_TOKEN))
        .await
        .json();
    let me = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == USER)
        .unwrap()
        .clone();
    assert!(me["locked_until"].is_string(), "{me}");
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_the_same_answer_and_are_audited() {
    let app = spawn_app();
    add_password_user(&app);
    let wrong = login(&app, USER, "not the password at all").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_reveals_nothing(&wrong.body, "wrong password");
    assert!(!wrong.text().contains(USER));
    let unknown = login(&app, "no.such.user", "not the password at all").await;
    assert_eq!(failure(&unknown), failure(&wrong));
    // An account without a password (a system with an API token) answers the same way.
    let system = login(&app, "coventry.system", "not the password at all").await;
    assert_eq!(failure(&system), failure(&wrong));
    // So does a login with an empty or an absurdly long password.
    let empty = login(&app, USER, "").await;
    assert_eq!(failure(&empty), failure(&wrong));
    let long = login(&app, USER, &"x".repeat(5000)).await;
    assert_eq!(failure(&long), failure(&wrong));

    // Every failure is audited as auth.login, denied; the password is never written down.
    let entries = app.audit_entries("?action=auth.login&limit=100").await;
    let denied: Vec<&Value> = entries
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert!(denied.len() >= 4, "{entries:#?}");
    assert!(
        denied.iter().any(|e| e["actor"]["id"] == "no.such.user"),
        "unknown user audited: {denied:#?}"
    );
    assert!(
        denied
            .iter()
            .any(|e| e["actor"]["name"] == "Coventry Social Worker"
                && e["actor"]["organisation"] == COVENTRY),
        "wrong password audited against the account: {denied:#?}"
    );
    let all = serde_json::to_string(&app.audit_entries("?limit=1000").await).unwrap();
    assert!(
        !all.contains("not the password at all"),
        "password in the audit"
    );
}

#[tokio::test]
async fn failed_logins_are_found_by_the_username_like_everything_else() {
    let app = spawn_app();
    add_password_user(&app);
    login(&app, USER, "not the password at all").await;
    let entry = app
        .last_audit("auth.login", Some(USER))
        .await
        .expect("the failed login is found under the username");
    assert_eq!(entry["outcome"], "denied");
}

/// Malformed login requests are refused, never a 5xx.
#[tokio::test]
async fn malformed_login_requests_are_refused_without_a_server_error() {
    let app = spawn_app();
    for (ct, body) in [
        (None, r#"{"username":"a","password":"b"}"#),
        (Some("application/json"), "{bad"),
        (Some("application/json"), r#"{"username":"a"}"#),
        (
            Some("application/json"),
            r#"{"username":["a"],"password":"b"}"#,
        ),
        (Some("application/json"), ""),
        (Some("text/plain"), r#"{"username":"a","password":"b"}"#),
    ] {
        let mut h = Vec::new();
        if let Some(c) = ct {
            h.push(("content-type", c));
        }
        let r = app.request(Method::POST, "/auth/login", &h, body).await;
        assert!(r.status.is_client_error(), "{ct:?} {body}: {}", r.status);
        assert!(r.headers.get("set-cookie").is_none());
    }
}

#[tokio::test]
async fn malformed_login_bodies_follow_the_json_error_policy() {
    let app = spawn_app();
    for body in [
        "{bad",
        r#"{"username":"a"}"#,
        r#"{"username":"a","password":5}"#,
    ] {
        let r = app
            .request(
                Method::POST,
                "/auth/login",
                &[("content-type", "application/json")],
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        let j: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|_| panic!("{body}: not JSON: {}", r.text()));
        assert_eq!(j["error"], "bad_request", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_still_lock_the_account() {
    let app = spawn_app();
    add_password_user(&app);
    // 30 guesses at once: each read of the account sees no failures yet, but every one counts.
    let guesses = (0..30).map(|i| {
        let app = &app;
        async move { login(app, USER, &format!("parallel guess {i}")).await }
    });
    let replies = futures_util::future::join_all(guesses).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::UNAUTHORIZED));
    let user = app.store.user_by_username(USER).unwrap().unwrap();
    assert!(
        user.locked_until.is_some_and(|t| t > app.clock.now()),
        "30 parallel failures left the account open: {user:?}"
    );
    let right = login(&app, USER, PASSWORD).await;
    assert_eq!(
        right.status,
        StatusCode::UNAUTHORIZED,
        "the right password while locked"
    );
    assert!(right.headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn the_fhir_api_takes_bearer_credentials_only_never_the_session_cookie() {
    let app = spawn_app();
    // A clinician at the demo emergency department with a password (a web user).
    users::add(
        app.store.as_ref(),
        NewUser {
            username: "ed.web.clinician".into(),
            display_name: "ED Clinician".into(),
            kind: UserKind::User,
            organisation: OdsCode::parse("RDEMO01").unwrap(),
            role: "Clinician".into(),
            permissions: Permissions::new([Permission::ViewNotify]),
            password: Some(PASSWORD.into()),
        },
        app.clock.now(),
    )
    .unwrap();
    let ok = login(&app, "ed.web.clinician", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let cookie = session_cookie(&ok);
    let (accesses, notifications) = (app.accesses_stored(), app.notifications_stored());

    // What a cross-site page could make the browser send: a GET carrying only the cookie.
    for extra in [&[][..], &[("sec-fetch-site", "cross-site")][..]] {
        let c = cookie_header(&cookie);
        let mut headers = vec![("cookie", c.as_str()), ("accept", "application/fhir+json")];
        headers.extend_from_slice(extra);
        let uri = format!("/fhir/R4/CareTeam?{}", patient_query(SHARED_CHILD));
        let r = app.request(Method::GET, &uri, &headers, "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        let r = app
            .request(
                Method::GET,
                &format!("/fhir/R4/AuditEvent?{}", patient_query(SHARED_CHILD)),
                &headers,
                "",
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.accesses_stored(), accesses, "no access was recorded");
    assert_eq!(
        app.notifications_stored(),
        notifications,
        "no LA was notified"
    );
    // The same lookup with a bearer token works (the FHIR API itself is unchanged).
    let r = app.care_team(SHARED_CHILD, ED_TOKEN, None).await;
    assert_eq!(r.status, StatusCode::OK);
}

/// A FHIR lookup with `token` from the client at `ip`, as `cpis serve` sees it.
async fn lookup_from(app: &TestApp, ip: &str, token: &str) -> Reply {
    let mut req = axum::http::Request::builder()
        .uri(format!(
            "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{SHARED_CHILD}"
        ))
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    app.send(req).await
}

/// SPEC 4 / docs/SECURITY.md: failed bearer authentication no longer grows the audit chain by a
/// row per request, and a client past the limit is answered 429 with `Retry-After`, while a
/// valid credential from the same address still works.
#[tokio::test]
async fn failed_bearer_authentication_is_throttled_per_address_and_counted_in_one_entry() {
    let app = spawn_app_with_options(AppOptions {
        auth_failures: Some(cpis_auth::failure_throttle::FailurePolicy::default()),
        ..AppOptions::default()
    });
    let start = start_time();
    app.clock.set(start);
    let before = app.audit_entries("?action=auth.&limit=500").await.len();
    let mut statuses = Vec::new();
    for i in 0..100 {
        let r = lookup_from(
            &app,
            "203.0.113.7",
            &format!("guess-{i:04}-{}", "x".repeat(20)),
        )
        .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=300).contains(&retry), "Retry-After {retry}");
            assert_outcome(&r, StatusCode::TOO_MANY_REQUESTS, "throttled", "guess");
        } else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "guess {i}");
        }
        statuses.push(r.status.as_u16());
    }
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[30..].iter().all(|s| *s == 429), "{statuses:?}");
    // Another client is not affected, and a valid token from the throttled address works.
    assert_eq!(
        lookup_from(&app, "203.0.113.8", "wrong-token-of-another-client")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        lookup_from(&app, "203.0.113.7", ED_TOKEN).await.status,
        StatusCode::OK
    );
    // Ten failures written one by one, plus the other client's; the rest wait to be counted.
    let entries = app.audit_entries("?action=auth.&limit=500").await;
    assert_eq!(entries.len() - before, 11, "{:#?}", &entries[..12]);
    // After the throttle ends the window closes: one entry counts the other 90.
    app.clock.set(start + chrono::Duration::seconds(301));
    let r = lookup_from(&app, "203.0.113.7", "one-more-wrong-token-xxxxxxxxxxxx").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let counted = app.audit_entries("?action=auth.failures&limit=10").await;
    assert_eq!(counted.len(), 1, "{counted:#?}");
    let detail = counted[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("90 further failed authentications from 203.0.113.7"),
        "{detail}"
    );
    assert_eq!(counted[0]["outcome"], "denied");
}

/// One stolen credential tried from many addresses is throttled too.
#[tokio::test]
async fn one_credential_tried_from_many_addresses_is_throttled() {
    let app = spawn_app_with_options(AppOptions {
        auth_failures: Some(cpis_auth::failure_throttle::FailurePolicy::default()),
        ..AppOptions::default()
    });
    let mut last = StatusCode::OK;
    for i in 0..12 {
        last = lookup_from(
            &app,
            &format!("198.51.100.{i}"),
            "expired-or-stolen-token-abc",
        )
        .await
        .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}
