//! The local authority's work queue (docs/WORKFLOW.md, "The LA work queue"): `GET
//! /la/notifications` (filters: unacknowledged by default, assigned to me, child, setting, kind,
//! dates; overdue items first, then frequent attendance, then newest; `?page=N`; repeat lookups
//! of one child at one setting collapsed into one item), `POST /la/notifications/ack` (the
//! checked items, or the one item whose "Acknowledge" button was pressed, with one outcome and
//! note; an item acknowledges all its notifications; the same path as the API, so idempotent and
//! audited), `POST /la/notifications/assign`, and `GET /la/notifications/rows?after=<cursor>`
//! (the rows newer than a cursor, as HTML table rows: `assets/la-inbox.js` inserts them when the
//! server-sent events stream `GET /api/v1/notifications/stream` says something arrived).

use super::forms::SignedInForm;
use super::la_upload::{grouped_text, when};
use super::page::{self, FieldError, Layout};
use super::signed_in::SignedIn;
use crate::error::WebError;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cpis_api::routes::FilterParams;
use cpis_api::ApiError;
use cpis_api::AppState;
use cpis_auth::capability::LaNotifications;
use cpis_auth::Principal;
use cpis_core::inbox::LaInbox;
use cpis_domain::notification::Ack;
use cpis_domain::work_queue::{
    group_repeats, overdue, AckDetails, AckOutcome, Assignee, PayloadKeys, QueueKey,
};
use cpis_domain::{Notification, NotificationKind, PhoneNumber, PlanType, SettingType, Subject};
use cpis_store::{NotificationOrder, NotificationQuery};
use serde::Deserialize;
use serde_json::Value;

/// Notifications per page.
const PAGE: u32 = 25;
/// Most notifications acknowledged by one form post.
const MAX_ACK: usize = 200;

/// One work item as a table row (`templates/partials/la_inbox_rows.html`): one notification, or
/// repeat lookups of one child at one setting collapsed.
pub struct NotificationRow {
    /// The item's notification ids, comma separated (what its checkbox and button post).
    pub id: String,
    /// The newest notification's id (unique element ids).
    pub key: String,
    pub seq: u64,
    pub kind: &'static str,
    pub kind_class: &'static str,
    /// "Child" or, when the only plan is an unborn child protection plan, "Mother".
    pub person: &'static str,
    pub child: String,
    /// The record is the mother's (an unborn child protection plan): said under her name.
    pub mother: bool,
    pub nhs_number: String,
    pub local_id: Option<String>,
    pub plans: Vec<String>,
    pub place: String,
    /// Who looked: name and role.
    pub looked_by: Option<String>,
    /// Phone numbers as (label, display, tel: target).
    pub phones: Vec<(String, String, String)>,
    pub time: String,
    /// Every lookup time of a collapsed item, newest first (more than one when collapsed).
    pub times: Vec<String>,
    pub overdue: bool,
    pub frequent: bool,
    pub assigned_to: Option<String>,
    pub acknowledged: Option<String>,
    /// "by Sam Worker: Referred to MASH" and the note.
    pub acknowledged_by: Option<String>,
    pub note: Option<String>,
    /// What a screen reader hears when the row arrives live.
    pub announce: String,
}

#[derive(Template)]
#[template(path = "partials/la_inbox_rows.html")]
struct RowsFragment {
    rows: Vec<NotificationRow>,
}

/// The filter form's current values.
#[derive(Default)]
pub struct FilterView {
    pub unacknowledged: bool,
    pub assigned_to_me: bool,
    pub nhs_number: String,
    pub setting: String,
    pub kind: String,
    pub from: String,
    pub to: String,
    /// The query string that repeats these filters (for page links and going back).
    pub query: String,
}

#[derive(Template)]
#[template(path = "la_inbox.html")]
struct InboxPage {
    layout: Layout,
    errors: Vec<FieldError>,
    csrf_token: String,
    rows: Vec<NotificationRow>,
    /// The newest cursor shown: the live stream starts after it (first page only).
    live_after: Option<u64>,
    page: u64,
    acknowledged: Option<u64>,
    assigned: bool,
    filters: FilterView,
    kinds: Vec<(&'static str, &'static str)>,
    outcomes: Vec<(&'static str, &'static str)>,
    previous: Option<super::la_pagination::PageLink>,
    next: Option<super::la_pagination::PageLink>,
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn kind_label(kind: NotificationKind) -> (&'static str, &'static str) {
    match kind {
        NotificationKind::Access => ("Child or mother seen", "nhsuk-tag--blue"),
        NotificationKind::InactiveNhsNumber => ("NHS number changed", "nhsuk-tag--orange"),
        NotificationKind::UploadReport => ("Upload report", "nhsuk-tag--grey"),
        NotificationKind::Escalation => ("Escalation", "nhsuk-tag--red"),
        NotificationKind::WasNotBrought => ("Was not brought", "nhsuk-tag--orange"),
        NotificationKind::Birth => ("Baby born", "nhsuk-tag--purple"),
        NotificationKind::BirthReminder => ("No plan for baby", "nhsuk-tag--orange"),
        NotificationKind::AdoptionInvalidation => {
            ("Adoption: number invalidated", "nhsuk-tag--grey")
        }
    }
}

/// A `tel:` target, by the domain's phone number rule (E.164); a payload number that is not a
/// phone number gets no link.
fn tel(number: &str) -> Option<String> {
    PhoneNumber::parse(number).ok().map(|p| p.tel_uri())
}

/// A work item (one or more notifications, newest first) as people read it.
fn item_of(
    group: &[&Notification],
    now: chrono::DateTime<chrono::Utc>,
    deadline: chrono::Duration,
) -> NotificationRow {
    let mut row = row_of(group[0]);
    if group.len() > 1 {
        row.id = group
            .iter()
            .map(|n| n.id.as_str())
            .collect::<Vec<_>>()
            .join(",");
        row.times = group.iter().map(|n| row_of(n).time).collect();
    }
    // An item is overdue as soon as its oldest notification is.
    row.overdue = group.iter().any(|n| {
        overdue(
            n.kind,
            n.created_at,
            n.acknowledged_at.is_some(),
            now,
            deadline,
        )
    });
    row
}

/// A notification as people read it, from its stored payload.
pub fn row_of(n: &Notification) -> NotificationRow {
    let body: Value = serde_json::from_str(&n.payload).unwrap_or(Value::Null);
    let (kind, kind_class) = kind_label(n.kind);
    let name = [
        text(&body, &["child", "given_name"]),
        text(&body, &["child", "family_name"]),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    // A birth is about the baby (its own NHS number; the LA's record is the mother's), a birth
    // reminder about the mother; the other kinds about the child (or the number) they name.
    let nhs = text(&body, &["child", "nhs_number"])
        .or_else(|| text(&body, &["nhs_number"]))
        .or_else(|| text(&body, &["baby", "nhs_number"]))
        .or_else(|| text(&body, &["mother", "nhs_number"]))
        .map(grouped_text)
        .unwrap_or_default();
    let local_id = text(&body, &["child", "local_id"])
        .or_else(|| text(&body, &["local_id"]))
        .or_else(|| text(&body, &["mother", "local_id"]))
        .map(str::to_owned);
    let plan_types: Vec<(PlanType, bool)> = body
        .get("child")
        .and_then(|c| c.get("plans"))
        .and_then(Value::as_array)
        .map(|plans| {
            plans
                .iter()
                .filter_map(|p| {
                    let t = text(p, &["plan_type"])?.parse::<PlanType>().ok()?;
                    Some((t, text(p, &["state"]) == Some("ended")))
                })
                .collect()
        })
        .unwrap_or_default();
    // The mother of an unborn child is never called "the child" (one rule: `Subject::of`).
    let mother = Subject::of(plan_types.iter().map(|(t, _)| *t)) == Subject::Mother;
    let person = match n.kind {
        NotificationKind::Birth => "Baby",
        NotificationKind::BirthReminder => "Mother",
        _ if mother => "Mother",
        _ => "Child",
    };
    let kind = match (n.kind, mother) {
        (NotificationKind::Access, true) => "Mother seen",
        (NotificationKind::Access, false) => "Child seen",
        _ => kind,
    };
    let plans = plan_types
        .iter()
        .map(|(t, ended)| {
            let what = if *t == PlanType::Ucpp {
                "Unborn child protection plan (this is the mother's record)"
            } else {
                t.description()
            };
            if *ended {
                format!("{what} (ended)")
            } else {
                what.to_owned()
            }
        })
        .collect();
    let child = match n.kind {
        NotificationKind::Birth => text(&body, &["mother", "local_id"]).map_or_else(
            || "Baby of a mother on an unborn child protection plan".into(),
            |l| format!("Baby of the mother with local ID {l}"),
        ),
        _ if name.is_empty() => local_id
            .as_ref()
            .map_or_else(|| "Name not given".into(), |l| format!("Local ID {l}")),
        _ => name,
    };
    let place = match n.kind {
        NotificationKind::Access | NotificationKind::Escalation => {
            let org = text(&body, &["access", "organisation", "name"]).unwrap_or("Unknown setting");
            match text(&body, &["access", "setting_type"])
                .and_then(|t| t.parse::<SettingType>().ok())
            {
                Some(t) => format!("{org} ({})", super::format::setting(t)),
                None => org.to_owned(),
            }
        }
        NotificationKind::InactiveNhsNumber => match text(&body, &["replacement_nhs_number"]) {
            Some(new) => format!("Replaced by {}", grouped_text(new)),
            None => format!(
                "Number is now {}",
                text(&body, &["status"]).unwrap_or("inactive")
            ),
        },
        NotificationKind::WasNotBrought => {
            let org = text(&body, &["setting", "name"]).unwrap_or("Unknown setting");
            let setting = text(&body, &["setting", "setting_type"])
                .and_then(|t| t.parse::<SettingType>().ok())
                .map_or_else(String::new, |t| format!(" ({})", super::format::setting(t)));
            let appointment = text(&body, &["appointment", "start"])
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or_else(String::new, |t| {
                    format!(
                        ": appointment {}",
                        super::format::uk_time(t.with_timezone(&chrono::Utc))
                    )
                });
            format!("{org}{setting}{appointment}")
        }
        NotificationKind::Birth => text(&body, &["baby", "date_of_birth"])
            .map_or_else(String::new, |d| {
                format!("Born {d}; upload the baby's own plan")
            }),
        NotificationKind::BirthReminder => {
            let edd = text(&body, &["plan", "expected_delivery_date"]).unwrap_or("unknown");
            let babies = body
                .get("babies")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            match babies {
                0 => format!("Expected delivery {edd}; no baby registered to the mother"),
                n => format!("Expected delivery {edd}; {n} registered, no plan for the baby"),
            }
        }
        _ => String::new(),
    };
    let looked_by =
        text(&body, &["access", "user_name"]).map(|name| match text(&body, &["access", "role"]) {
            Some(role) => format!("{name}, {role}"),
            None => name.to_owned(),
        });
    let phones = [
        ("Setting", &["access", "organisation", "phone"][..]),
        ("Clinician", &["access", "contact", "phone"][..]),
    ]
    .into_iter()
    .filter_map(|(label, path)| {
        let number = text(&body, path)?;
        Some((label.to_owned(), number.to_owned(), tel(number)?))
    })
    .collect();
    let time = text(&body, &["access", "time"])
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(n.created_at, |t| t.with_timezone(&chrono::Utc));
    let time = when(time);
    let announce = match n.kind {
        NotificationKind::Access if mother => format!(
            "New notification: {child} (mother, unborn child protection plan) was seen at {place}, {time}"
        ),
        NotificationKind::Access => {
            format!("New notification: {child} was seen at {place}, {time}")
        }
        _ => format!("New notification: {kind}, {child}"),
    };
    let acknowledged_by = n.acknowledged_at.map(|_| {
        let who = n
            .acknowledged_by_name
            .as_deref()
            .or(n.acknowledged_by.as_deref())
            .unwrap_or("unknown");
        match n.outcome {
            Some(o) => format!("by {who}: {}", o.label()),
            None => format!("by {who}"),
        }
    });
    NotificationRow {
        id: n.id.clone(),
        key: n.id.clone(),
        seq: n.seq,
        kind,
        kind_class,
        person,
        child,
        mother,
        nhs_number: nhs,
        local_id,
        plans,
        place,
        looked_by,
        phones,
        time,
        times: Vec::new(),
        overdue: false,
        frequent: text(&body, &["pattern"]) == Some("frequent-attendance"),
        assigned_to: n.assigned_to.clone(),
        acknowledged: n.acknowledged_at.map(when),
        acknowledged_by,
        note: n.note.clone(),
        announce,
    }
}

async fn inbox_capability(
    state: &AppState,
    user: &SignedIn,
    action: &str,
) -> Result<LaNotifications, WebError> {
    Ok(user
        .caller()
        .grant(state, action, Principal::la_notifications)
        .await?)
}

#[derive(Deserialize, Default)]
pub struct InboxQuery {
    page: Option<String>,
    acknowledged: Option<String>,
    assigned: Option<String>,
    /// Present when the filter form was submitted (an unticked "unacknowledged" then means all).
    filtered: Option<String>,
}

fn page_number(v: Option<&str>) -> Result<u64, ApiError> {
    match v.map(str::trim) {
        None | Some("") => Ok(0),
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|p| *p < 100_000)
            .ok_or_else(|| {
                ApiError::BadRequest("That page of notifications does not exist.".into())
            }),
    }
}

fn cursor(v: Option<&str>) -> Result<Option<u64>, ApiError> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(c) => c
            .parse::<u64>()
            .ok()
            .and_then(|c| cpis_api::extract::cursor(c, "after").ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest("That page of notifications does not exist.".into())
            }),
    }
}

/// A query-string value, percent-encoded (everything but letters, digits and `-_.`).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The filters as the page shows and repeats them; the web inbox shows unacknowledged items
/// unless the filter form says otherwise.
fn filter_view(f: &FilterParams, filtered: bool) -> (FilterParams, FilterView) {
    let mut f = f.clone();
    if !filtered && f.unacknowledged.is_none() {
        f.unacknowledged = Some("true".into());
    }
    let on = |v: &Option<String>| matches!(v.as_deref(), Some("true" | "1" | "on"));
    let val = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_owned();
    let mut q = vec![("filtered", "1".to_owned())];
    if on(&f.unacknowledged) {
        q.push(("unacknowledged", "true".into()));
    }
    if on(&f.assigned_to_me) {
        q.push(("assigned_to_me", "true".into()));
    }
    for (k, v) in [
        ("nhs_number", &f.nhs_number),
        ("setting", &f.setting),
        ("kind", &f.kind),
        ("from", &f.from),
        ("to", &f.to),
    ] {
        if !val(v).is_empty() {
            q.push((k, val(v)));
        }
    }
    let query = q
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let view = FilterView {
        unacknowledged: on(&f.unacknowledged),
        assigned_to_me: on(&f.assigned_to_me),
        nhs_number: val(&f.nhs_number),
        setting: val(&f.setting),
        kind: val(&f.kind),
        from: val(&f.from),
        to: val(&f.to),
        query,
    };
    (f, view)
}

async fn inbox_page(
    state: &AppState,
    user: &SignedIn,
    cap: &LaNotifications,
    params: &FilterParams,
    filtered: bool,
    page: u64,
) -> Result<InboxPage, WebError> {
    let (params, filters) = filter_view(params, filtered);
    let filter = params.filter(&cap.actor().id)?;
    let now = state.clock.now();
    let policy = state.config.work_queue;
    let query = NotificationQuery {
        filter,
        order: NotificationOrder::Queue {
            overdue_before: now - policy.deadline(),
            offset: page * u64::from(PAGE),
        },
        limit: PAGE + 1,
    };
    // Live updates add what arrives after the LA's newest notification (whatever the filter
    // hides: an item acknowledged a moment ago must not come back as "new"), and only to a first
    // page no narrower than "unacknowledged", since anything that arrives is unacknowledged and
    // unassigned but may be any child, setting or kind.
    let live = page == 0
        && !filters.assigned_to_me
        && [
            &filters.nhs_number,
            &filters.setting,
            &filters.kind,
            &filters.from,
            &filters.to,
        ]
        .iter()
        .all(|v| v.is_empty());
    let (store, cap) = (state.store.clone(), cap.clone());
    let (mut items, newest) = tokio::task::spawn_blocking(move || {
        let inbox = LaInbox::new(store.as_ref(), &cap);
        let newest = match live {
            true => Some(inbox.newest(None, 1)?.first().map_or(0, |n| n.seq)),
            false => None,
        };
        inbox.query(&query).map(|items| (items, newest))
    })
    .await??;
    let more = items.len() > PAGE as usize;
    items.truncate(PAGE as usize);
    let link = |p: u64, label: &str| super::la_pagination::PageLink {
        href: format!("/la/notifications?{}&page={p}", filters.query),
        label: label.into(),
    };
    let next = more.then(|| link(page + 1, "Older notifications"));
    let previous = (page > 0).then(|| link(page - 1, "Newer notifications"));
    let rows = work_items(&items, now, policy);
    Ok(InboxPage {
        layout: Layout::signed_in(user, "Notifications", "/la/notifications").wide(),
        errors: Vec::new(),
        csrf_token: user.csrf.clone(),
        rows,
        live_after: newest,
        page,
        acknowledged: None,
        assigned: false,
        filters,
        kinds: NotificationKind::ALL
            .into_iter()
            .map(|k| (k.code(), kind_label(k).0))
            .collect(),
        outcomes: AckOutcome::ALL
            .into_iter()
            .map(|o| (o.code(), o.label()))
            .collect(),
        previous,
        next,
    })
}

/// A page of notifications as work items, in the queue's order: overdue items first, then
/// frequent attendance, then newest; repeats collapsed (cpis_domain::work_queue::group_repeats).
fn work_items(
    items: &[Notification],
    now: chrono::DateTime<chrono::Utc>,
    policy: cpis_domain::work_queue::WorkQueuePolicy,
) -> Vec<NotificationRow> {
    let keys: Vec<QueueKey> = items
        .iter()
        .map(|n| {
            let k = PayloadKeys::of(&n.payload);
            let time = serde_json::from_str::<Value>(&n.payload)
                .ok()
                .and_then(|b| text(&b, &["access", "time"]).map(str::to_owned))
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map_or(n.created_at, |t| t.with_timezone(&chrono::Utc));
            QueueKey {
                kind: n.kind,
                nhs_number: k.nhs_number,
                setting: k.setting,
                time,
                acknowledged: n.acknowledged_at.is_some(),
            }
        })
        .collect();
    let groups = if policy.repeat_window_minutes == 0 {
        (0..items.len()).map(|i| vec![i]).collect()
    } else {
        group_repeats(&keys, policy.repeat_window())
    };
    let mut rows: Vec<(usize, NotificationRow)> = groups
        .iter()
        .map(|g| {
            let members: Vec<&Notification> = g.iter().map(|&i| &items[i]).collect();
            // The item keeps the queue position of its first notification in the page.
            let position = g.iter().copied().min().unwrap_or(0);
            (position, item_of(&members, now, policy.deadline()))
        })
        .collect();
    rows.sort_by_key(|(p, r)| (!r.overdue, *p));
    rows.into_iter().map(|(_, r)| r).collect()
}

/// `GET /la/notifications`.
pub async fn inbox(
    State(state): State<AppState>,
    user: SignedIn,
    Query(q): Query<InboxQuery>,
    Query(filters): Query<FilterParams>,
) -> Result<Response, WebError> {
    let cap = inbox_capability(&state, &user, "notification.list").await?;
    let page = page_number(q.page.as_deref())?;
    let mut p = inbox_page(&state, &user, &cap, &filters, q.filtered.is_some(), page).await?;
    p.acknowledged = q.acknowledged.as_deref().and_then(|a| a.parse().ok());
    p.assigned = q.assigned.is_some();
    Ok(page::html(StatusCode::OK, &p))
}

#[derive(Deserialize)]
pub struct RowsQuery {
    after: Option<String>,
}

/// `GET /la/notifications/rows?after=<cursor>`: newer rows, newest first, as `<tr>` elements.
pub async fn rows(
    State(state): State<AppState>,
    user: SignedIn,
    Query(q): Query<RowsQuery>,
) -> Result<Response, WebError> {
    let cap = inbox_capability(&state, &user, "notification.list").await?;
    let after = cursor(q.after.as_deref())?.unwrap_or(0);
    let store = state.store.clone();
    let items =
        tokio::task::spawn_blocking(move || LaInbox::new(store.as_ref(), &cap).after(after, PAGE))
            .await??;
    let fragment = RowsFragment {
        rows: items.iter().rev().map(row_of).collect(),
    };
    let mut resp = page::html(StatusCode::OK, &fragment);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(resp.into_response())
}

/// The form's fields named `k`.
fn fields<'a>(form: &'a [(String, String)], k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    form.iter()
        .filter(move |(n, _)| n == k)
        .map(|(_, v)| v.as_str())
}

/// The notification ids of the posted items (each item posts its ids comma separated).
fn posted_ids<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .take(MAX_ACK)
        .map(str::to_owned)
        .collect()
}

/// Where a form post goes back to: the page and filters it came from.
fn back_to(form: &[(String, String)], extra: &str) -> String {
    let back = fields(form, "back").next().unwrap_or("");
    // Only a query string of this page (never another address).
    let back: String = back
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "=&_-%.+:".contains(*c))
        .collect();
    if back.is_empty() {
        format!("/la/notifications?{extra}")
    } else {
        format!("/la/notifications?{back}&{extra}")
    }
}

/// The page again with one error, for a form that cannot be applied (nothing is written).
async fn refuse(
    state: &AppState,
    user: &SignedIn,
    cap: &LaNotifications,
    field: &'static str,
    message: String,
) -> Result<Response, WebError> {
    let mut p = inbox_page(state, user, cap, &FilterParams::default(), false, 0).await?;
    p.layout = p.layout.with_errors(true);
    p.errors.push(FieldError { field, message });
    Ok(page::html(StatusCode::BAD_REQUEST, &p))
}

/// `POST /la/notifications/ack`: fields `ack` (one item's button) or `id` (checked items), each
/// the item's notification ids; `outcome`, `note`; `back` (the filters and page to go back to).
pub async fn ack(
    State(state): State<AppState>,
    SignedInForm { user, form }: SignedInForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let cap = inbox_capability(&state, &user, "notification.ack").await?;
    let one = posted_ids(fields(&form, "ack").take(1));
    let ids = if one.is_empty() {
        posted_ids(fields(&form, "id"))
    } else {
        one
    };
    if ids.is_empty() {
        return refuse(
            &state,
            &user,
            &cap,
            "notifications",
            "Select the notifications to acknowledge".into(),
        )
        .await;
    }
    let details = match AckDetails::parse(
        fields(&form, "outcome").next(),
        fields(&form, "note").next(),
    ) {
        Ok(d) => d,
        Err(e) => {
            let field = if matches!(e, cpis_domain::work_queue::QueueInputError::NoteTooLong(_)) {
                "note"
            } else {
                "outcome"
            };
            return refuse(&state, &user, &cap, field, capitalised(&e.to_string())).await;
        }
    };
    let (store, now, trace) = (
        state.store.clone(),
        state.clock.now(),
        Some(user.trace_id.clone()),
    );
    let acks = tokio::task::spawn_blocking(move || {
        let inbox = LaInbox::new(store.as_ref(), &cap);
        ids.iter()
            .map(|id| inbox.acknowledge(id, &details, now, trace.clone()))
            .collect::<Result<Vec<Ack>, _>>()
    })
    .await??;
    let done = acks
        .iter()
        .filter(|a| matches!(a, Ack::Acknowledged(_) | Ack::AlreadyAcknowledged(_)))
        .count() as u64;
    Ok(page::see_other(&back_to(
        &form,
        &format!("acknowledged={done}"),
    )))
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `POST /la/notifications/assign`: `assign_me` (one item's "Assign to me" button, its ids), or
/// `id` (checked items) with `assign_to` (a team or worker).
pub async fn assign(
    State(state): State<AppState>,
    SignedInForm { user, form }: SignedInForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let cap = inbox_capability(&state, &user, "notification.assign").await?;
    let me = posted_ids(fields(&form, "assign_me").take(1));
    let (ids, to) = if me.is_empty() {
        let to = match Assignee::parse(fields(&form, "assign_to").next().unwrap_or("")) {
            Ok(to) => to,
            Err(e) => {
                return refuse(
                    &state,
                    &user,
                    &cap,
                    "assign_to",
                    capitalised(&e.to_string()),
                )
                .await
            }
        };
        (posted_ids(fields(&form, "id")), Some(to))
    } else {
        (me, None)
    };
    if ids.is_empty() {
        return refuse(
            &state,
            &user,
            &cap,
            "notifications",
            "Select the notifications to assign".into(),
        )
        .await;
    }
    let (store, now, trace) = (
        state.store.clone(),
        state.clock.now(),
        Some(user.trace_id.clone()),
    );
    tokio::task::spawn_blocking(move || {
        let inbox = LaInbox::new(store.as_ref(), &cap);
        ids.iter()
            .try_for_each(|id| inbox.assign(id, to.clone(), now, trace.clone()).map(|_| ()))
    })
    .await??;
    Ok(page::see_other(&back_to(&form, "assigned=1")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn notification(payload: serde_json::Value) -> Notification {
        Notification {
            id: "01a00000-0000-7000-8000-000000000001".into(),
            seq: 1,
            la: cpis_domain::OdsCode::parse("E08000026").unwrap(),
            kind: NotificationKind::Access,
            created_at: Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap(),
            payload: payload.to_string(),
            acknowledged_at: None,
            acknowledged_by: None,
            acknowledged_by_name: None,
            outcome: None,
            note: None,
            assigned_to: None,
            assigned_user: None,
            escalated_at: None,
        }
    }

    #[test]
    fn phones_become_tel_links_when_the_payload_has_them() {
        let row = row_of(&notification(serde_json::json!({
            "child": {"nhs_number": "9000000009", "given_name": "Ivy", "local_id": "C-1",
                      "plans": [{"plan_type": "CPP", "state": "active"}]},
            "access": {"user_name": "Dr A", "role": "Registrar",
                       "organisation": {"name": "City ED", "ods_code": "RX1", "phone": "024 7696 4000"},
                       "contact": {"phone": "+44 7700 900123", "email": null}}
        })));
        assert_eq!(
            row.phones,
            vec![
                (
                    "Setting".into(),
                    "024 7696 4000".into(),
                    "tel:+442476964000".into()
                ),
                (
                    "Clinician".into(),
                    "+44 7700 900123".into(),
                    "tel:+447700900123".into()
                ),
            ]
        );
        assert_eq!(row.looked_by.as_deref(), Some("Dr A, Registrar"));
        assert_eq!(row.local_id.as_deref(), Some("C-1"));
        assert_eq!((row.person, row.kind), ("Child", "Child seen"));
        assert_eq!(row.plans, vec!["Child Protection Plan".to_owned()]);
    }

    #[test]
    fn a_birth_is_about_the_baby_and_a_reminder_about_the_mother() {
        let birth = row_of(&Notification {
            kind: NotificationKind::Birth,
            ..notification(serde_json::json!({
                "baby": {"nhs_number": "9434765919", "date_of_birth": "2026-11-19"},
                "mother": {"nhs_number": "9000000009", "local_id": "M-7"},
                "plan": {"plan_type": "UCPP", "expected_delivery_date": "2026-11-25"}
            }))
        });
        assert_eq!((birth.person, birth.kind), ("Baby", "Baby born"));
        assert_eq!(birth.nhs_number, "943 476 5919");
        assert_eq!(birth.child, "Baby of the mother with local ID M-7");
        assert_eq!(birth.place, "Born 2026-11-19; upload the baby's own plan");
        let reminder = row_of(&Notification {
            kind: NotificationKind::BirthReminder,
            ..notification(serde_json::json!({
                "mother": {"nhs_number": "9000000009", "local_id": "M-7"},
                "plan": {"plan_type": "UCPP", "expected_delivery_date": "2026-11-01"},
                "babies": []
            }))
        });
        assert_eq!(reminder.person, "Mother");
        assert_eq!(reminder.nhs_number, "900 000 0009");
        assert_eq!(reminder.local_id.as_deref(), Some("M-7"));
        assert_eq!(
            reminder.place,
            "Expected delivery 2026-11-01; no baby registered to the mother"
        );
    }

    #[test]
    fn a_number_that_is_not_a_phone_number_gets_no_link() {
        let row = row_of(&notification(serde_json::json!({
            "child": {"nhs_number": "9000000009", "plans": [{"plan_type": "CPP", "state": "active"}]},
            "access": {"organisation": {"name": "City ED", "ods_code": "RX1", "phone": "ring 999"}}
        })));
        assert!(row.phones.is_empty());
    }

    #[test]
    fn no_phone_fields_no_links_and_a_ucpp_mother_is_the_mother() {
        let row = row_of(&notification(serde_json::json!({
            "child": {"nhs_number": "9000000009", "plans": [{"plan_type": "UCPP", "state": "active"}]},
            "access": {"organisation": {"name": "City ED", "ods_code": "RX1", "phone": null}}
        })));
        assert!(row.phones.is_empty());
        assert_eq!((row.person, row.kind), ("Mother", "Mother seen"));
    }
}
