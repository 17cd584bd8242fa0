//! `GET /`: sends each role to its home. Clinicians go to the lookup page; local authority,
//! admin and auditor users get a start page listing their pages (added by later phases).

use super::page::{self, Layout, Role};
use super::signed_in::SignedIn;
use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

pub struct Link {
    pub text: &'static str,
    pub href: &'static str,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    heading: &'static str,
    name: String,
    role: String,
    organisation: String,
    links: Vec<Link>,
}

pub async fn home(user: SignedIn) -> Response {
    let roles = Role::of(&user.principal);
    match roles.first() {
        Some(role) if role.home(&user.principal) != "/" => {
            page::see_other(role.home(&user.principal))
        }
        first => {
            let links = roles
                .iter()
                .flat_map(|r| r.nav(&user.principal))
                .filter(|(_, href)| *href != "/")
                .map(|(text, href)| Link { text, href })
                .collect();
            page::html(
                StatusCode::OK,
                &HomePage {
                    layout: Layout::signed_in(&user, "Home", "/"),
                    heading: first
                        .map_or("Child Protection – Information Sharing", |r| r.heading()),
                    name: user.principal.display_name().to_owned(),
                    role: user.principal.role().to_owned(),
                    organisation: user.principal.organisation_name().to_owned(),
                    links,
                },
            )
        }
    }
}
