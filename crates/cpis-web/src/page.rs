//! What every page shares: the layout data the base template (`templates/base.html`) renders —
//! title, role-aware navigation, the signed-in account with its sign-out form — and turning a
//! template into an HTML response. Error pages are rendered here too, for the one error policy
//! (`crate::error::WebError`).

use super::assets;
use super::signed_in::SignedIn;
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cpis_auth::Principal;

/// The data `base.html` needs. Every page template has a `layout: Layout` field.
pub struct Layout {
    /// The page's own title: the base template renders "<title> – CP-IS – NHS".
    pub title: String,
    /// Prefix "Error: " to the title (a form came back with errors).
    pub has_errors: bool,
    /// `/assets/<id>`.
    pub assets: String,
    /// The embedded nhsuk-frontend version (`missing` if the build could not embed it).
    pub nhsuk_version: &'static str,
    pub nav: Vec<NavItem>,
    pub account: Option<Account>,
    /// The full width of the page rather than two thirds: for pages whose main content is a
    /// wide table. Forms and reading pages keep the two-thirds measure.
    pub wide: bool,
}

pub struct NavItem {
    pub text: &'static str,
    pub href: &'static str,
    pub current: bool,
}

/// The signed-in user, shown in the header with a sign-out form.
pub struct Account {
    pub name: String,
    pub organisation: String,
    pub csrf_token: String,
}

/// What a principal can do in the web UI; decides navigation and the home page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Clinician,
    LocalAuthority,
    Admin,
    Auditor,
}

impl Role {
    /// The roles a principal holds, from its capabilities (never from the role label): those
    /// with at least one page the principal may open.
    pub fn of(p: &Principal) -> Vec<Role> {
        [
            Role::Clinician,
            Role::LocalAuthority,
            Role::Admin,
            Role::Auditor,
        ]
        .into_iter()
        .filter(|r| r.links().iter().any(|(_, _, may_open)| may_open(p)))
        .collect()
    }

    /// This role's navigation links that `p` may open, in order. Each link names the capability
    /// its page asks for, so a user holding only part of a role (an LA user with `la:upload` but
    /// not `la:notifications`) is never shown a link to a page that would refuse them.
    pub fn nav(self, p: &Principal) -> Vec<(&'static str, &'static str)> {
        self.links()
            .iter()
            .filter(|(_, _, may_open)| may_open(p))
            .map(|(text, href, _)| (*text, *href))
            .collect()
    }

    /// (text, href, whether a principal holds the capability the page asks for).
    fn links(self) -> &'static [(&'static str, &'static str, MayOpen)] {
        match self {
            Role::Clinician => &[
                ("Look up a child", "/lookup", may_look_up),
                (
                    "Report not brought",
                    "/was-not-brought",
                    may_report_not_brought,
                ),
            ],
            Role::LocalAuthority => &[
                ("Notifications", "/la/notifications", may_read_notifications),
                ("Upload a file", "/la/uploads", may_upload),
                ("Records", "/la/records", may_upload),
                ("Data quality", "/la/data-quality", may_upload),
            ],
            Role::Admin => &[
                ("Users", "/admin/users", may_administer),
                ("Directory", "/admin/directory", may_administer),
                ("Alerts", "/admin/alerts", may_administer),
            ],
            Role::Auditor => &[("Audit trail", "/audit", may_audit)],
        }
    }

    /// Where this role lands after signing in: its first page `p` may open.
    pub fn home(self, p: &Principal) -> &'static str {
        self.nav(p).first().map_or("/", |(_, href)| href)
    }

    pub fn heading(self) -> &'static str {
        match self {
            Role::Clinician => "Clinical lookup",
            Role::LocalAuthority => "Local authority",
            Role::Admin => "Administration",
            Role::Auditor => "Audit",
        }
    }
}

/// Whether a principal may open a page: the capability its handler asks for.
type MayOpen = fn(&Principal) -> bool;

fn may_look_up(p: &Principal) -> bool {
    p.lookup().is_ok()
}
fn may_report_not_brought(p: &Principal) -> bool {
    p.report_was_not_brought().is_ok()
}
fn may_read_notifications(p: &Principal) -> bool {
    p.la_notifications().is_ok()
}
fn may_upload(p: &Principal) -> bool {
    p.la_upload().is_ok()
}
fn may_administer(p: &Principal) -> bool {
    p.admin().is_ok()
}
fn may_audit(p: &Principal) -> bool {
    p.auditor().is_ok()
}

/// Where a principal lands after signing in: its first role's home.
pub fn home_of(p: &Principal) -> &'static str {
    Role::of(p).first().map_or("/", |r| r.home(p))
}

impl Layout {
    /// A page for a signed-in user; `path` marks the current navigation item.
    pub fn signed_in(user: &SignedIn, title: impl Into<String>, path: &str) -> Self {
        let mut nav: Vec<NavItem> = Vec::new();
        for role in Role::of(&user.principal) {
            for (text, href) in role.nav(&user.principal) {
                if !nav.iter().any(|n| n.href == href) {
                    nav.push(NavItem {
                        text,
                        href,
                        current: href == path,
                    });
                }
            }
        }
        Layout {
            title: title.into(),
            has_errors: false,
            assets: assets::prefix(),
            nhsuk_version: assets::NHSUK_FRONTEND_VERSION,
            nav,
            wide: false,
            account: Some(Account {
                name: user.principal.display_name().to_owned(),
                organisation: user.principal.organisation_name().to_owned(),
                csrf_token: user.csrf.clone(),
            }),
        }
    }

    /// A page for someone not signed in: the only link is "Sign in".
    pub fn signed_out(title: impl Into<String>) -> Self {
        Layout {
            title: title.into(),
            has_errors: false,
            assets: assets::prefix(),
            nhsuk_version: assets::NHSUK_FRONTEND_VERSION,
            nav: vec![NavItem {
                text: "Sign in",
                href: "/sign-in",
                current: false,
            }],
            account: None,
            wide: false,
        }
    }

    pub fn with_errors(mut self, has_errors: bool) -> Self {
        self.has_errors = has_errors;
        self
    }

    /// Uses the full page width (the `wide` field).
    pub fn wide(mut self) -> Self {
        self.wide = true;
        self
    }
}

/// A form field's error, shown in the error summary (linking to the field) and by the field.
pub struct FieldError {
    /// The field's `id`.
    pub field: &'static str,
    pub message: String,
}

/// The message for `field`, if it has one.
pub fn error_for<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| e.message.as_str())
}

/// Renders a page as `text/html; charset=utf-8` with `status`.
pub fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not render a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "internal error",
            )
                .into_response()
        }
    }
}

/// A 303 See Other (after a form post, or to the sign-in page).
pub fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub heading: String,
    pub message: String,
    pub hint: Option<String>,
}

/// An error page (signed-out layout: an error may come before we know who is asking).
pub fn error_page(
    status: StatusCode,
    heading: &str,
    message: &str,
    hint: Option<String>,
) -> Response {
    html(
        status,
        &ErrorPage {
            layout: Layout::signed_out(heading),
            heading: heading.to_owned(),
            message: message.to_owned(),
            hint,
        },
    )
}
