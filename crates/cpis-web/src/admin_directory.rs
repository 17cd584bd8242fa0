//! `GET /admin/directory`: the directories, read-only — local authorities (name, ODS code,
//! office-hours phone and hours, emergency duty team phone, MESH mailbox) or care settings (name, ODS code,
//! setting type), with a filter box and pages of [`PAGE_SIZE`]. The query string carries only
//! the list, the filter text and the page (organisation names and codes, no personal data).

use super::format;
use super::page::{self, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use cpis_api::AppState;
use cpis_auth::Principal;
use serde::Deserialize;

pub const PAGE_SIZE: usize = 25;

#[derive(Deserialize, Default)]
pub struct DirectoryQuery {
    #[serde(default)]
    list: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    LocalAuthorities,
    CareSettings,
}

impl List {
    fn code(self) -> &'static str {
        match self {
            List::LocalAuthorities => "local-authorities",
            List::CareSettings => "care-settings",
        }
    }
}

struct LaRow {
    name: String,
    ods: String,
    office_hours_phone: String,
    office_hours: String,
    edt_phone: String,
    mesh_mailbox: String,
}

struct SettingRow {
    name: String,
    ods: String,
    setting_type: String,
    /// The contact number and its `tel:` link, when listed.
    phone: Option<(String, String)>,
}

struct PageLink {
    number: usize,
    href: String,
    current: bool,
    /// A gap ("…") instead of a link.
    ellipsis: bool,
}

/// The page numbers to link: the first, the last and two either side of the current one, with
/// a gap marker (`None`) where numbers are left out.
fn page_numbers(current: usize, count: usize) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    for n in 1..=count {
        if n == 1 || n == count || n.abs_diff(current) <= 2 {
            out.push(Some(n));
        } else if out.last().is_some_and(Option::is_some) {
            out.push(None);
        }
    }
    out
}

struct ListLink {
    text: String,
    href: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "admin_directory.html")]
struct DirectoryPage {
    layout: Layout,
    lists: Vec<ListLink>,
    list: &'static str,
    filter: String,
    showing: String,
    local_authorities: Vec<LaRow>,
    care_settings: Vec<SettingRow>,
    pages: Vec<PageLink>,
    previous: Option<String>,
    next: Option<String>,
}

fn href(list: List, q: &str, page: usize) -> String {
    let mut params = vec![("list", list.code().to_owned())];
    if !q.is_empty() {
        params.push(("q", q.to_owned()));
    }
    if page > 1 {
        params.push(("page", page.to_string()));
    }
    format!(
        "/admin/directory?{}",
        serde_urlencoded::to_string(params).unwrap_or_default()
    )
}

/// Whether a row matches the filter: every word of it appears (case-insensitively) in the
/// row's text.
fn matches(filter: &[String], fields: &[&str]) -> bool {
    let text = fields.join(" ").to_lowercase();
    filter.iter().all(|w| text.contains(w.as_str()))
}

pub async fn page(
    State(state): State<AppState>,
    user: SignedIn,
    uri: Uri,
) -> Result<Response, WebError> {
    user.caller()
        .grant(&state, "admin.directory", Principal::admin)
        .await?;
    // A malformed query string shows the first page rather than an error.
    let query = Query::<DirectoryQuery>::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let list = if query.list == List::CareSettings.code() {
        List::CareSettings
    } else {
        List::LocalAuthorities
    };
    let filter_text: String = query.q.trim().chars().take(100).collect();
    let words: Vec<String> = filter_text
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let wanted = query
        .page
        .as_deref()
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);

    let store = state.store.clone();
    let (las, settings) = tokio::task::spawn_blocking(move || {
        Ok::<_, cpis_store::StoreError>((store.local_authorities()?, store.care_settings()?))
    })
    .await??;

    let mut local_authorities = Vec::new();
    let mut care_settings = Vec::new();
    let total = match list {
        List::LocalAuthorities => {
            local_authorities = las
                .iter()
                .filter(|la| {
                    matches(
                        &words,
                        &[
                            &la.name,
                            la.ods_code.as_str(),
                            la.mesh_mailbox.as_deref().unwrap_or(""),
                        ],
                    )
                })
                .map(|la| LaRow {
                    name: la.name.clone(),
                    ods: la.ods_code.to_string(),
                    office_hours_phone: la.office_hours_phone.clone(),
                    office_hours: la.office_hours.to_string(),
                    edt_phone: la.edt_phone.clone(),
                    mesh_mailbox: la.mesh_mailbox.clone().unwrap_or_else(|| "None".into()),
                })
                .collect();
            local_authorities.len()
        }
        List::CareSettings => {
            care_settings = settings
                .iter()
                .map(|cs| SettingRow {
                    name: cs.name.clone(),
                    ods: cs.ods_code.to_string(),
                    setting_type: format::setting(cs.setting_type),
                    phone: cs.phone.as_ref().map(|p| (p.to_string(), p.tel_uri())),
                })
                .filter(|cs| matches(&words, &[&cs.name, &cs.ods, &cs.setting_type]))
                .collect();
            care_settings.len()
        }
    };
    let page_count = total.div_ceil(PAGE_SIZE).max(1);
    let current = wanted.min(page_count);
    let skip = (current - 1) * PAGE_SIZE;
    local_authorities = local_authorities
        .into_iter()
        .skip(skip)
        .take(PAGE_SIZE)
        .collect();
    care_settings = care_settings
        .into_iter()
        .skip(skip)
        .take(PAGE_SIZE)
        .collect();
    let shown = local_authorities.len() + care_settings.len();
    let showing = if total == 0 {
        "No entries match the filter".to_owned()
    } else {
        format!("Showing {} to {} of {total}", skip + 1, skip + shown)
    };
    let lists = [
        (List::LocalAuthorities, "Local authorities", las.len()),
        (List::CareSettings, "Care settings", settings.len()),
    ]
    .into_iter()
    .map(|(l, text, n)| ListLink {
        text: format!("{text} ({n})"),
        href: href(l, "", 1),
        current: l == list,
    })
    .collect();
    let page = DirectoryPage {
        layout: Layout::signed_in(&user, "Directory", "/admin/directory").wide(),
        lists,
        list: list.code(),
        filter: filter_text.clone(),
        showing,
        local_authorities,
        care_settings,
        pages: if page_count > 1 {
            page_numbers(current, page_count)
                .into_iter()
                .map(|n| PageLink {
                    number: n.unwrap_or(0),
                    href: n.map_or_else(String::new, |n| href(list, &filter_text, n)),
                    current: n == Some(current),
                    ellipsis: n.is_none(),
                })
                .collect()
        } else {
            Vec::new()
        },
        previous: (current > 1).then(|| href(list, &filter_text, current - 1)),
        next: (current < page_count).then(|| href(list, &filter_text, current + 1)),
    };
    Ok(page::html(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_leave_gaps() {
        assert_eq!(page_numbers(1, 3), vec![Some(1), Some(2), Some(3)]);
        assert_eq!(
            page_numbers(10, 48),
            vec![
                Some(1),
                None,
                Some(8),
                Some(9),
                Some(10),
                Some(11),
                Some(12),
                None,
                Some(48)
            ]
        );
    }

    #[test]
    fn filter_words_all_match() {
        let w = vec!["cov".to_owned(), "e08".to_owned()];
        assert!(matches(&w, &["Coventry", "E08000026"]));
        assert!(!matches(&w, &["Coventry", "E09000033"]));
        assert!(matches(&[], &["anything"]));
    }

    #[test]
    fn links_keep_the_filter_encoded() {
        assert_eq!(
            href(List::CareSettings, "a&b c", 2),
            "/admin/directory?list=care-settings&q=a%26b+c&page=2"
        );
    }
}
