//! Web page helpers (web_admin.rs, web_la.rs, web_pages.rs): people who sign in with a password,
//! and page requests and form posts as a browser sends them, with or without a session cookie.

use super::{start_time, Reply, TestApp};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use cpis_auth::users::{self, NewUser};
use cpis_domain::{OdsCode, Permission, Permissions};
use cpis_store::UserKind;

/// The password of everyone [`add_web_user`] adds.
pub const PASSWORD: &str = "correct horse battery staple";
pub const FORM: &str = "application/x-www-form-urlencoded";

/// A signed-in browser: its session cookie (`cpis_session=…`) and the session's CSRF token.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

/// Adds a person who signs in with [`PASSWORD`].
pub fn add_web_user(
    app: &TestApp,
    username: &str,
    display: &str,
    org: &str,
    role: &str,
    perms: &[Permission],
) {
    users::add(
        app.store.as_ref(),
        NewUser {
            username: username.into(),
            display_name: display.into(),
            kind: UserKind::User,
            organisation: OdsCode::parse(org).unwrap(),
            role: role.into(),
            permissions: Permissions::new(perms.iter().copied()),
            password: Some(PASSWORD.into()),
        },
        start_time(),
    )
    .expect("add web user");
}

/// A page request (`Accept: text/html`), signed in when there is a cookie.
pub async fn get_page(app: &TestApp, uri: &str, cookie: Option<&str>) -> Reply {
    let mut b = Request::builder()
        .uri(uri)
        .header(header::ACCEPT, "text/html");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    app.send(b.body(Body::empty()).unwrap()).await
}

/// A form post of `fields`, signed in when there is a cookie.
pub async fn post_form(
    app: &TestApp,
    uri: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> Reply {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, FORM);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    let body = serde_urlencoded::to_string(fields).unwrap();
    app.send(b.body(Body::from(body)).unwrap()).await
}

/// Posts the sign-in form as `username` with [`PASSWORD`]; it must answer with a redirect (303).
/// The reply (where it leads) and the session cookie it set.
pub async fn submit_sign_in(app: &TestApp, username: &str) -> (Reply, String) {
    let r = post_form(
        app,
        "/sign-in",
        None,
        &[
            ("username", username),
            ("password", PASSWORD),
            ("return_to", ""),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let cookie = session_cookie(&r);
    (r, cookie)
}

/// The cookie a reply sets, without its attributes: what a browser sends back.
pub fn session_cookie(r: &Reply) -> String {
    let set = r.headers[header::SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

pub fn location(r: &Reply) -> &str {
    r.headers[header::LOCATION].to_str().unwrap()
}

impl Browser {
    pub async fn get(&self, app: &TestApp, uri: &str) -> Reply {
        get_page(app, uri, Some(&self.cookie)).await
    }

    pub async fn post_form(&self, app: &TestApp, uri: &str, fields: &[(&str, &str)]) -> Reply {
        post_form(app, uri, Some(&self.cookie), fields).await
    }

    /// A form post with the session's CSRF token first, as the pages' forms send it.
    pub async fn submit(&self, app: &TestApp, uri: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all = vec![("csrf_token", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_form(app, uri, &all).await
    }
}
