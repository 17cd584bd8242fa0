//! The health lookup FHIR R4 API (SPEC 3.1, rules 1–4 and 8): CareTeam and AuditEvent searches,
//! silent vs notifying lookups, visibility windows, sensitive children and bad input.

use crate::common::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cpis_domain::Clock;
use serde_json::Value;
use std::collections::BTreeSet;

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("response header {name}"))
        .to_str()
        .unwrap()
}

fn assert_searchset(r: &Reply) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        header(r, "content-type").starts_with("application/fhir+json"),
        "content type {}",
        header(r, "content-type")
    );
    let b = r.json();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "searchset");
    assert_eq!(
        b["total"].as_u64().unwrap() as usize,
        entries(&b, "match").len(),
        "total counts the match entries: {b:#}"
    );
    b
}

fn assert_empty_searchset(r: &Reply) {
    let b = assert_searchset(r);
    assert_eq!(b["total"], 0, "{b:#}");
    assert!(
        b["entry"].as_array().is_none_or(Vec::is_empty),
        "no entries: {b:#}"
    );
}

fn org_code(reference: &Value) -> String {
    reference["reference"]
        .as_str()
        .unwrap()
        .strip_prefix("Organization/")
        .unwrap()
        .to_owned()
}

fn assert_phones(telecom: &Value, la: &LaEntry, what: &str) {
    let t = telecom
        .as_array()
        .unwrap_or_else(|| panic!("{what}: telecom"));
    // The CP-IS data mapping: office hours `use = work`, emergency duty team `use = mobile`.
    let by_use = |u: &str| {
        let found: Vec<&Value> = t.iter().filter(|c| c["use"] == u).collect();
        assert_eq!(
            found.len(),
            1,
            "{what}: one telecom with use {u}: {telecom}"
        );
        found[0]
    };
    assert_eq!(t.len(), 2, "{what}: {telecom}");
    assert_eq!(by_use("work")["system"], "phone", "{what}");
    assert_eq!(
        by_use("work")["value"],
        la.office_hours_phone.as_str(),
        "{what}"
    );
    assert_eq!(by_use("mobile")["system"], "phone", "{what}");
    assert_eq!(by_use("mobile")["value"], la.edt_phone.as_str(), "{what}");
}

fn recorded(ae: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(ae["recorded"].as_str().unwrap())
        .unwrap()
        .to_utc()
}

/// The viewer of an AuditEvent: the PractitionerRole its `ASSIGNED` agent references, which must
/// be included in the same Bundle (the CP-IS guide's shape).
fn viewer<'a>(bundle: &'a Value, ae: &Value) -> &'a Value {
    let agent = ae["agent"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"]["coding"][0]["code"] == "ASSIGNED")
        .unwrap_or_else(|| panic!("an ASSIGNED agent: {ae:#}"));
    let reference = agent["who"]["reference"].as_str().unwrap();
    assert_eq!(ae["source"]["observer"]["reference"], reference, "{ae:#}");
    let id = reference.strip_prefix("PractitionerRole/").unwrap();
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "PractitionerRole" && r["id"] == id)
        .unwrap_or_else(|| panic!("{reference} is not in the Bundle: {bundle:#}"))
}

/// The organisation of an AuditEvent's viewer: its ODS code and name.
fn audit_org(bundle: &Value, ae: &Value) -> (String, String) {
    let org = &viewer(bundle, ae)["organization"];
    assert_eq!(org["identifier"]["system"], ODS_SYSTEM, "{org:#}");
    (
        org["identifier"]["value"].as_str().unwrap().to_owned(),
        org["display"].as_str().unwrap().to_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// 1. The shared child.

#[tokio::test]
async fn care_team_for_the_shared_child_shows_both_las_and_notifies_each_once() {
    let app = spawn_app();
    let cov_before = app.all_notifications(COVENTRY_TOKEN).await;
    let wes_before = app.all_notifications(WESTMINSTER_TOKEN).await;

    let r = app
        .fhir_get(
            &format!("/fhir/R4/CareTeam?{}", patient_query(SHARED_CHILD)),
            Some(ED_TOKEN),
            &[
                ("TraceID", "trace-1234-abcd"),
                ("IsUnscheduledAccessEvent", "true"),
            ],
        )
        .await;
    let b = assert_searchset(&r);
    assert_eq!(header(&r, "traceid"), "trace-1234-abcd");
    assert_eq!(header(&r, "cpis-notified-las"), "2");

    // One CareTeam per visible plan: one open CPP in each LA (demo/README.md).
    let teams = matches(&b);
    assert_eq!(b["total"], 2, "{b:#}");
    assert_eq!(teams.len(), 2);
    let mut seen = BTreeSet::new();
    for ct in &teams {
        assert_eq!(ct["resourceType"], "CareTeam");
        assert_eq!(ct["status"], "active");
        // SNOMED CT, England-ChildProtectionPlan value set.
        assert_eq!(
            ct["category"][0]["coding"][0]["system"],
            "http://snomed.info/sct"
        );
        assert_eq!(ct["category"][0]["coding"][0]["code"], "342191000000101");
        assert_eq!(
            ct["category"][0]["coding"][0]["display"],
            "Subject to child protection plan"
        );
        assert_eq!(
            ct["name"],
            la_directory_entry(&org_code(&ct["managingOrganization"][0]))
                .name
                .as_str()
        );
        assert_eq!(ct["subject"]["identifier"]["system"], NHS_SYSTEM);
        assert_eq!(ct["subject"]["identifier"]["value"], SHARED_CHILD);
        assert!(ct["period"]["end"].is_null(), "open plan: {ct:#}");
        let la = org_code(&ct["managingOrganization"][0]);
        assert_eq!(org_code(&ct["participant"][0]["member"]), la);
        let want_start = match la.as_str() {
            COVENTRY => "2025-09-07",
            WESTMINSTER => "2026-08-24",
            other => panic!("unexpected LA {other}"),
        };
        assert_eq!(ct["period"]["start"], want_start, "{la}");
        assert_phones(&ct["telecom"], &la_directory_entry(&la), "CareTeam telecom");
        seen.insert(la);
    }
    assert_eq!(
        seen,
        BTreeSet::from([COVENTRY.to_owned(), WESTMINSTER.to_owned()])
    );

    // The LA Organizations and the Patient are included.
    let includes = entries(&b, "include");
    let orgs: Vec<&Value> = includes
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Organization")
        .collect();
    assert_eq!(orgs.len(), 2, "{b:#}");
    for org in orgs {
        let ods = org["id"].as_str().unwrap();
        let want = la_directory_entry(ods);
        assert_eq!(org["name"], want.name.as_str());
        assert_eq!(org["identifier"][0]["system"], ODS_SYSTEM);
        assert_eq!(org["identifier"][0]["value"], ods);
        assert_eq!(org["telecom"].as_array().unwrap().len(), 2);
        assert_phones(&org["telecom"], &want, ods);
    }
    let patients: Vec<&Value> = includes
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Patient")
        .collect();
    assert_eq!(patients.len(), 1, "{b:#}");
    assert_eq!(patients[0]["identifier"][0]["system"], NHS_SYSTEM);
    assert_eq!(patients[0]["identifier"][0]["value"], SHARED_CHILD);
    assert_eq!(includes.len(), 3, "2 Organizations + 1 Patient");
    for e in b["entry"].as_array().unwrap() {
        let res = &e["resource"];
        let tail = format!(
            "/fhir/R4/{}/{}",
            res["resourceType"].as_str().unwrap(),
            res["id"].as_str().unwrap()
        );
        assert!(
            e["fullUrl"].as_str().unwrap().ends_with(&tail),
            "fullUrl {} ends with {tail}",
            e["fullUrl"]
        );
    }

    // Each LA sees exactly one new access notification, about this child, from RDEMO01.
    let cov_after = app.all_notifications(COVENTRY_TOKEN).await;
    let wes_after = app.all_notifications(WESTMINSTER_TOKEN).await;
    let mut new_ids = Vec::new();
    for (la, before, after) in [
        (COVENTRY, &cov_before, &cov_after),
        (WESTMINSTER, &wes_before, &wes_after),
    ] {
        assert!(
            after.iter().all(|n| n["la"] == la),
            "{la} sees only its own"
        );
        let fresh: Vec<&Value> = after.iter().filter(|n| !before.contains(n)).collect();
        assert_eq!(fresh.len(), 1, "{la}: {fresh:#?}");
        let n = fresh[0];
        assert_eq!(n["kind"], "access");
        assert_eq!(n["la"], la);
        assert_eq!(n["child"]["nhs_number"], SHARED_CHILD);
        assert_eq!(n["access"]["organisation"]["ods_code"], ED_SETTING);
        assert_eq!(
            n["access"]["organisation"]["name"],
            care_setting_name(ED_SETTING).as_str()
        );
        assert!(n["acknowledged_at"].is_null());
        new_ids.push(n["id"].as_str().unwrap().to_owned());
    }
    assert_ne!(new_ids[0], new_ids[1], "one notification per LA");

    // Cursor paging never crosses LAs either, even from another LA's cursor.
    let cov_cursor = cov_after[0]["cursor"].as_str().unwrap().to_owned();
    for token in [COVENTRY_TOKEN, WESTMINSTER_TOKEN] {
        let la = if token == COVENTRY_TOKEN {
            COVENTRY
        } else {
            WESTMINSTER
        };
        let mut after = String::from("0");
        let mut walked = 0;
        loop {
            let page = app
                .notifications_page(token, &format!("?limit=1&after={after}"))
                .await;
            let items = page["notifications"].as_array().unwrap();
            if items.is_empty() {
                break;
            }
            assert!(items.iter().all(|n| n["la"] == la));
            walked += items.len();
            after = page["next_cursor"].as_str().unwrap().to_owned();
        }
        assert_eq!(walked, 1, "{la}");
    }
    let page = app
        .notifications_page(WESTMINSTER_TOKEN, &format!("?after={cov_cursor}"))
        .await;
    assert!(page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["la"] == WESTMINSTER && n["id"] != new_ids[0].as_str()));
}

// ---------------------------------------------------------------------------------------------
// 2. Silent vs unscheduled.

/// One notifying lookup from ED2, so the history has something to compare against.
async fn seed_history(app: &TestApp) -> usize {
    app.notifying_lookup(SHARED_CHILD, ED2_TOKEN).await;
    let h = assert_searchset(&app.audit_events(SHARED_CHILD, GP_TOKEN).await);
    let n = h["total"].as_u64().unwrap() as usize;
    assert!(n >= 1, "{h:#}");
    n
}

async fn assert_silent(app: &TestApp, token: &str, header_value: Option<&str>, what: &str) {
    let history_before = seed_history(app).await;
    let cov = app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await;
    let wes = app
        .access_notifications(WESTMINSTER_TOKEN, SHARED_CHILD)
        .await;
    let accesses = app.accesses_stored();
    let notifications = app.notifications_stored();

    let r = app.care_team(SHARED_CHILD, token, header_value).await;
    let b = assert_searchset(&r);
    assert_eq!(
        b["total"], 2,
        "{what}: a silent lookup still shows the plans"
    );
    assert_eq!(header(&r, "cpis-notified-las"), "0", "{what}");
    assert_eq!(
        app.accesses_stored(),
        accesses + 1,
        "{what}: audited as an access"
    );
    assert_eq!(app.notifications_stored(), notifications, "{what}");
    assert_eq!(
        app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await,
        cov,
        "{what}"
    );
    assert_eq!(
        app.access_notifications(WESTMINSTER_TOKEN, SHARED_CHILD)
            .await,
        wes,
        "{what}"
    );
    let h = assert_searchset(&app.audit_events(SHARED_CHILD, GP_TOKEN).await);
    assert_eq!(
        h["total"].as_u64().unwrap() as usize,
        history_before,
        "{what}: not in the history: {h:#}"
    );
    assert!(matches(&h)
        .iter()
        .all(|ae| audit_org(&h, ae).0 == ED2_SETTING));
}

#[tokio::test]
async fn is_unscheduled_false_is_silent_and_not_in_the_history() {
    let app = spawn_app();
    assert_silent(&app, ED_TOKEN, Some("false"), "ED, header false").await;
}

#[tokio::test]
async fn a_view_silent_user_is_silent_even_when_asking_to_notify() {
    let app = spawn_app();
    assert_silent(
        &app,
        ED_SILENT_TOKEN,
        Some("true"),
        "view-silent, header true",
    )
    .await;
}

#[tokio::test]
async fn a_gp_lookup_is_always_silent() {
    let app = spawn_app();
    assert_silent(&app, GP_TOKEN, Some("true"), "GP, header true").await;
    assert_silent(&app, GP_TOKEN, None, "GP, no header").await;
}

#[tokio::test]
async fn without_the_header_an_ed_lookup_notifies_by_default() {
    let app = spawn_app();
    let r = app.care_team(SHARED_CHILD, ED_TOKEN, None).await;
    assert_searchset(&r);
    assert_eq!(header(&r, "cpis-notified-las"), "2");
    for token in [COVENTRY_TOKEN, WESTMINSTER_TOKEN] {
        let n = app.access_notifications(token, SHARED_CHILD).await;
        assert_eq!(n.len(), 1, "{n:#?}");
        assert_eq!(n[0]["access"]["organisation"]["ods_code"], ED_SETTING);
    }
    let h = assert_searchset(&app.audit_events(SHARED_CHILD, ED2_TOKEN).await);
    assert_eq!(h["total"], 1);
}

#[tokio::test]
async fn an_invalid_is_unscheduled_header_is_400_invalid_and_records_nothing() {
    let app = spawn_app();
    let notifications = app.notifications_stored();
    for v in ["yes", "1", "", "truee", "false,true"] {
        let r = app.care_team(SHARED_CHILD, ED_TOKEN, Some(v)).await;
        assert_outcome(&r, StatusCode::BAD_REQUEST, "invalid", v);
    }
    assert_eq!(app.notifications_stored(), notifications);
    let h = assert_searchset(&app.audit_events(SHARED_CHILD, ED_TOKEN).await);
    assert_eq!(h["total"], 0);
}

// ---------------------------------------------------------------------------------------------
// 3. AuditEvent history.

#[tokio::test]
async fn audit_events_list_the_25_most_recent_unscheduled_accesses_newest_first() {
    let app = spawn_app();
    let start = day("2026-11-20");
    let ed = care_setting_name(ED_SETTING);
    let ed2 = care_setting_name(ED2_SETTING);

    // Three lookups first: all of them come back, newest first, with organisation names.
    let mut done = Vec::new();
    for i in 0..3 {
        let at = start + chrono::Duration::minutes(i);
        app.clock.set(at);
        let (token, ods) = if i % 2 == 0 {
            (ED_TOKEN, ED_SETTING)
        } else {
            (ED2_TOKEN, ED2_SETTING)
        };
        app.notifying_lookup(SHARED_CHILD, token).await;
        done.push((at, ods));
    }
    let h = assert_searchset(&app.audit_events(SHARED_CHILD, GP_TOKEN).await);
    let events = matches(&h);
    assert_eq!(events.len(), 3, "{h:#}");
    for (ae, (at, ods)) in events.iter().zip(done.iter().rev()) {
        assert_eq!(ae["resourceType"], "AuditEvent");
        assert_eq!(recorded(ae), *at);
        let (code, name) = audit_org(&h, ae);
        assert_eq!(code, *ods);
        assert_eq!(&name, if *ods == ED_SETTING { &ed } else { &ed2 });
        let user = if *ods == ED_SETTING {
            "ed.clinician name"
        } else {
            "ed2.clinician name"
        };
        assert_eq!(
            viewer(&h, ae)["practitioner"]["display"],
            user,
            "user name shown: {ae:#}"
        );
    }

    // 27 more: 30 in all, only the 25 most recent are shown.
    for i in 3..30 {
        let at = start + chrono::Duration::minutes(i);
        app.clock.set(at);
        let (token, ods) = if i % 2 == 0 {
            (ED_TOKEN, ED_SETTING)
        } else {
            (ED2_TOKEN, ED2_SETTING)
        };
        app.notifying_lookup(SHARED_CHILD, token).await;
        done.push((at, ods));
    }
    let h = assert_searchset(&app.audit_events(SHARED_CHILD, ED_TOKEN).await);
    assert_eq!(h["total"], 25, "{h:#}");
    let events = matches(&h);
    assert_eq!(events.len(), 25);
    let want: Vec<_> = done.iter().rev().take(25).collect();
    for (ae, (at, ods)) in events.iter().zip(want) {
        assert_eq!(recorded(ae), *at, "newest first");
        assert_eq!(audit_org(&h, ae).0, *ods);
    }
    // Each LA got one notification per lookup: all are kept even if the history shows 25.
    assert_eq!(
        app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD)
            .await
            .len(),
        30
    );
}

#[tokio::test]
async fn a_sensitive_childs_history_hides_who_and_where_but_the_flag_shows_la_phones() {
    let app = spawn_app();
    let child = spare_sensitive_children().remove(0);
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(&child, "CPP", "2026-05-01", None)],
    )
    .await;

    for token in [ED_TOKEN, ED2_TOKEN] {
        let b = app.notifying_lookup(&child.nhs, token).await;
        let teams = matches(&b);
        assert_eq!(teams.len(), 1, "{b:#}");
        assert_eq!(
            org_code(&teams[0]["managingOrganization"][0]),
            COVENTRY,
            "the flag shows"
        );
        assert_phones(
            &teams[0]["telecom"],
            &la_directory_entry(COVENTRY),
            "sensitive CareTeam",
        );
        let org = entries(&b, "include")
            .into_iter()
            .find(|e| e["resource"]["resourceType"] == "Organization")
            .expect("LA included");
        assert_phones(
            &org["resource"]["telecom"],
            &la_directory_entry(COVENTRY),
            "sensitive Organization",
        );
    }

    let r = app.audit_events(&child.nhs, GP_TOKEN).await;
    let h = assert_searchset(&r);
    assert_eq!(h["total"], 2, "the accesses are listed: {h:#}");
    for ae in matches(&h) {
        assert_eq!(
            ae["meta"]["security"][0]["code"], "R",
            "labelled restricted: {ae:#}"
        );
        let role = viewer(&h, &ae);
        assert_eq!(
            role["practitioner"]["display"],
            "Withheld: sensitive record"
        );
        assert_eq!(
            role["organization"]["display"],
            "Withheld: sensitive record"
        );
    }
    let raw = r.text();
    for secret in [
        ED_SETTING.to_owned(),
        ED2_SETTING.to_owned(),
        care_setting_name(ED_SETTING),
        care_setting_name(ED2_SETTING),
        "ed.clinician".to_owned(),
        "ed2.clinician".to_owned(),
        "emergency-department".to_owned(),
    ] {
        assert!(
            !raw.contains(&secret),
            "sensitive history leaks {secret:?}: {raw}"
        );
    }
}

#[tokio::test]
async fn an_s_flag_that_arrives_after_the_upload_hides_the_history_at_once() {
    let app = spawn_app();
    let child = spare_children().remove(0);
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(&child, "CPP", "2026-05-01", None)],
    )
    .await;
    let b = app.notifying_lookup(&child.nhs, ED_TOKEN).await;
    assert!(
        matches(&b)[0]["meta"]["security"].is_null(),
        "not sensitive yet: {b:#}"
    );
    // The demographics change feed S-flags the child after the upload.
    let nhs = cpis_domain::NhsNumber::parse(&child.nhs).unwrap();
    let mut person = app.store.demographics(nhs).unwrap().unwrap();
    person.sensitive = true;
    app.store
        .upsert_demographics(&[person], app.clock.now())
        .unwrap();

    let b = app.notifying_lookup(&child.nhs, ED2_TOKEN).await;
    let team = &matches(&b)[0];
    assert_eq!(
        team["meta"]["security"][0]["code"], "R",
        "the CareTeam is labelled restricted: {team:#}"
    );
    let r = app.audit_events(&child.nhs, GP_TOKEN).await;
    assert_eq!(
        assert_searchset(&r)["total"],
        2,
        "the accesses are still counted"
    );
    let raw = r.text();
    for secret in [
        ED_SETTING.to_owned(),
        ED2_SETTING.to_owned(),
        care_setting_name(ED_SETTING),
        "ed.clinician".to_owned(),
        "ed2.clinician".to_owned(),
    ] {
        assert!(!raw.contains(&secret), "history leaks {secret:?}: {raw}");
    }
}

#[tokio::test]
async fn a_child_marked_on_one_plan_row_and_not_another_stays_sensitive() {
    let app = spawn_app();
    let child = spare_children().remove(0);
    let mut marked = child.clone();
    marked.sensitive = true;
    // CPP marked, then LAC unmarked in the same file, then a delta with the column empty.
    app.upload_rows(
        COVENTRY_TOKEN,
        &[
            plan_row(&marked, "CPP", "2026-05-01", None),
            plan_row(&child, "LAC", "2026-06-01", None),
        ],
    )
    .await;
    let unstated = plan_row(&child, "LAC", "2026-06-01", None);
    let unstated = unstated.strip_suffix("false").unwrap().to_owned();
    app.upload_rows(COVENTRY_TOKEN, &[unstated]).await;
    app.notifying_lookup(&child.nhs, ED_TOKEN).await;
    let r = app.audit_events(&child.nhs, ED2_TOKEN).await;
    assert_eq!(assert_searchset(&r)["total"], 1);
    let raw = r.text();
    assert!(!raw.contains(ED_SETTING), "{raw}");
    assert!(!raw.contains("ed.clinician"), "{raw}");
}

#[tokio::test]
async fn one_la_marking_a_child_sensitive_hides_the_history_for_all() {
    let app = spawn_app();
    let child = spare_children().remove(0);
    let mut marked = child.clone();
    marked.sensitive = true;
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(&marked, "CPP", "2026-05-01", None)],
    )
    .await;
    app.upload_rows(
        WESTMINSTER_TOKEN,
        &[plan_row(&child, "LAC", "2026-06-01", None)],
    )
    .await;
    let b = app.notifying_lookup(&child.nhs, ED_TOKEN).await;
    assert_eq!(b["total"], 2);
    let r = app.audit_events(&child.nhs, ED2_TOKEN).await;
    assert_eq!(assert_searchset(&r)["total"], 1);
    let raw = r.text();
    assert!(!raw.contains(ED_SETTING), "{raw}");
    assert!(!raw.contains(&care_setting_name(ED_SETTING)), "{raw}");
    assert!(!raw.contains("ed.clinician"), "{raw}");
}

#[tokio::test]
async fn audit_events_of_a_child_with_nothing_visible_are_an_empty_bundle() {
    let app = spawn_app();
    let child = spare_children().remove(0);
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(&child, "CPP", "2025-01-01", Some("2026-06-30"))],
    )
    .await;
    app.notifying_lookup(&child.nhs, ED_TOKEN).await;
    assert_eq!(
        assert_searchset(&app.audit_events(&child.nhs, ED_TOKEN).await)["total"],
        1
    );
    // Past the window the history is not disclosed.
    app.clock.set(day("2027-07-01"));
    assert_empty_searchset(&app.audit_events(&child.nhs, ED_TOKEN).await);
    // Never known at all.
    assert_empty_searchset(&app.audit_events("9434765919", ED_TOKEN).await);
}

// ---------------------------------------------------------------------------------------------
// 4. Visibility windows (rules 1 and 2).

#[tokio::test]
async fn an_ended_cpp_shows_as_ended_for_365_days_then_disappears() {
    let app = spawn_app();
    let child = spare_children().remove(0);
    let end = "2026-06-30";
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(&child, "CPP", "2025-01-10", Some(end))],
    )
    .await;

    app.clock.set(day(&plus_days(end, 365)));
    let r = app.care_team(&child.nhs, ED_TOKEN, Some("true")).await;
    let b = assert_searchset(&r);
    let teams = matches(&b);
    assert_eq!(teams.len(), 1, "{b:#}");
    assert_eq!(teams[0]["status"], "inactive");
    assert_eq!(teams[0]["period"]["start"], "2025-01-10");
    assert_eq!(teams[0]["period"]["end"], end);
    assert!(
        teams[0]["note"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("ended {end}"))),
        "shown as 'ended <date>': {:#}",
        teams[0]
    );
    assert_eq!(header(&r, "cpis-notified-las"), "1");

    app.clock.set(day(&plus_days(end, 366)));
    let notifications = app.notifications_stored();
    let accesses = app.accesses_stored();
    let r = app.care_team(&child.nhs, ED_TOKEN, Some("true")).await;
    assert_empty_searchset(&r);
    assert_eq!(header(&r, "cpis-notified-las"), "0");
    assert_eq!(
        app.notifications_stored(),
        notifications,
        "a miss notifies nobody"
    );
    assert_eq!(
        app.accesses_stored(),
        accesses + 1,
        "a miss is still audited"
    );
    assert_eq!(
        app.access_notifications(COVENTRY_TOKEN, &child.nhs)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn an_open_ucpp_shows_until_28_days_after_the_edd() {
    let app = spawn_app();
    let mother = spare_mothers().remove(0);
    let edd = "2027-01-15";
    app.upload_rows(
        WESTMINSTER_TOKEN,
        &[ucpp_row(&mother, "2026-10-01", None, edd)],
    )
    .await;

    app.clock.set(day(&plus_days(edd, 28)));
    let b = assert_searchset(&app.care_team(&mother.nhs, ED_TOKEN, Some("true")).await);
    let teams = matches(&b);
    assert_eq!(teams.len(), 1, "{b:#}");
    assert_eq!(
        teams[0]["category"][0]["coding"][0]["code"],
        "818901000000100"
    );
    assert_eq!(teams[0]["status"], "active");
    assert_eq!(
        teams[0]["subject"]["identifier"]["value"],
        mother.nhs.as_str()
    );
    assert!(
        teams[0]["extension"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["valueDate"] == edd),
        "EDD carried: {:#}",
        teams[0]
    );
    assert_eq!(
        app.access_notifications(WESTMINSTER_TOKEN, &mother.nhs)
            .await
            .len(),
        1
    );

    app.clock.set(day(&plus_days(edd, 29)));
    assert_empty_searchset(&app.care_team(&mother.nhs, ED_TOKEN, Some("true")).await);
    assert_eq!(
        app.access_notifications(WESTMINSTER_TOKEN, &mother.nhs)
            .await
            .len(),
        1,
        "nothing visible: no notification"
    );
}

#[tokio::test]
async fn a_ucpp_ended_before_the_edd_shows_until_28_days_after_the_end() {
    let app = spawn_app();
    let mother = spare_mothers().remove(1);
    let end = "2026-11-10";
    let edd = "2027-03-01";
    app.upload_rows(
        COVENTRY_TOKEN,
        &[ucpp_row(&mother, "2026-08-01", Some(end), edd)],
    )
    .await;

    app.clock.set(day(&plus_days(end, 28)));
    let b = assert_searchset(&app.care_team(&mother.nhs, ED_TOKEN, Some("true")).await);
    let teams = matches(&b);
    assert_eq!(teams.len(), 1, "{b:#}");
    assert_eq!(teams[0]["status"], "inactive");
    assert_eq!(teams[0]["period"]["end"], end);

    // Well before EDD + 28, but the window runs from the earlier end date.
    app.clock.set(day(&plus_days(end, 29)));
    assert_empty_searchset(&app.care_team(&mother.nhs, ED_TOKEN, Some("true")).await);
}

// ---------------------------------------------------------------------------------------------
// 5. Several LAs.

#[tokio::test]
async fn only_the_la_with_a_visible_plan_is_returned_and_notified() {
    let app = spawn_app();
    let child = spare_children().remove(0);
    // Coventry's plan ended 2025-06-01: its window closed 2026-06-01, before "today" (2026-11-20).
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(&child, "CPP", "2024-01-01", Some("2025-06-01"))],
    )
    .await;
    app.upload_rows(
        WESTMINSTER_TOKEN,
        &[plan_row(&child, "CPP", "2026-07-01", None)],
    )
    .await;

    let r = app.care_team(&child.nhs, ED_TOKEN, Some("true")).await;
    let b = assert_searchset(&r);
    let teams = matches(&b);
    assert_eq!(teams.len(), 1, "{b:#}");
    assert_eq!(org_code(&teams[0]["managingOrganization"][0]), WESTMINSTER);
    let orgs: Vec<String> = entries(&b, "include")
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Organization")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(orgs, [WESTMINSTER]);
    assert!(!r.text().contains(COVENTRY), "nothing about Coventry shown");
    assert_eq!(header(&r, "cpis-notified-las"), "1");
    assert_eq!(
        app.access_notifications(WESTMINSTER_TOKEN, &child.nhs)
            .await
            .len(),
        1
    );
    assert!(app
        .access_notifications(COVENTRY_TOKEN, &child.nhs)
        .await
        .is_empty());
}

#[tokio::test]
async fn a_child_with_several_plans_gets_one_care_team_per_plan_and_one_notification_per_la() {
    let app = spawn_app();
    let child = spare_children().remove(0);
    app.upload_rows(
        COVENTRY_TOKEN,
        &[
            plan_row(&child, "CPP", "2026-01-01", None),
            plan_row(&child, "LAC", "2026-02-01", Some("2026-10-01")),
        ],
    )
    .await;
    let r = app.care_team(&child.nhs, ED_TOKEN, Some("true")).await;
    let b = assert_searchset(&r);
    let teams = matches(&b);
    assert_eq!(teams.len(), 2, "{b:#}");
    let kinds: Vec<&str> = teams
        .iter()
        .map(|t| t["category"][0]["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["342191000000101", "764841000000100"]);
    assert_eq!(teams[1]["status"], "inactive");
    assert_eq!(
        entries(&b, "include")
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Organization")
            .count(),
        1,
        "the LA is included once"
    );
    assert_eq!(header(&r, "cpis-notified-las"), "1");
    let n = app.access_notifications(COVENTRY_TOKEN, &child.nhs).await;
    assert_eq!(n.len(), 1);
    assert_eq!(n[0]["child"]["plans"].as_array().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input, authentication and permissions.

#[tokio::test]
async fn bad_search_parameters_are_400_operation_outcomes() {
    let app = spawn_app();
    let notifications = app.notifications_stored();
    let cases = [
        ("", "missing parameter"),
        ("?_count=10", "missing patient:identifier"),
        ("?patient:identifier=", "empty identifier"),
        (
            "?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C9434765918",
            "bad check digit",
        ),
        ("?patient:identifier=9434765918", "bad check digit, no system"),
        ("?patient:identifier=943476591", "nine digits"),
        ("?patient:identifier=94347659190", "eleven digits"),
        ("?patient:identifier=94347A5919", "not digits"),
        (
            "?patient:identifier=http://example.org/nhs%7C9434765919",
            "wrong system",
        ),
        (
            "?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C9434765919&patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C9990597634",
            "two identifiers",
        ),
        (
            "?patient:identifier=9990597634&patient:identifier=9990597634",
            "the same identifier twice",
        ),
    ];
    for resource in ["CareTeam", "AuditEvent"] {
        for (query, what) in cases {
            let r = app
                .fhir_get(
                    &format!("/fhir/R4/{resource}{query}"),
                    Some(ED_TOKEN),
                    &[("IsUnscheduledAccessEvent", "true")],
                )
                .await;
            assert_outcome(
                &r,
                StatusCode::BAD_REQUEST,
                "invalid",
                &format!("{resource}: {what}"),
            );
        }
    }
    assert_eq!(app.notifications_stored(), notifications);
}

#[tokio::test]
async fn authentication_and_permission_failures_are_operation_outcomes() {
    let app = spawn_app();
    let path = format!("/fhir/R4/CareTeam?{}", patient_query(SHARED_CHILD));
    let notifications = app.notifications_stored();

    let r = app.fhir_get(&path, None, &[]).await;
    assert_outcome(&r, StatusCode::UNAUTHORIZED, "login", "no Authorization");
    assert_eq!(header(&r, "www-authenticate"), "Bearer");
    let r = app.fhir_get(&path, Some("not-a-token"), &[]).await;
    assert_outcome(&r, StatusCode::UNAUTHORIZED, "login", "unknown token");
    let r = app
        .fhir_get(&path, None, &[("authorization", "Basic ZWQ6cHc=")])
        .await;
    assert_outcome(&r, StatusCode::UNAUTHORIZED, "login", "basic auth");

    for token in [COVENTRY_TOKEN, WESTMINSTER_TOKEN] {
        let r = app.fhir_get(&path, Some(token), &[]).await;
        assert_outcome(&r, StatusCode::FORBIDDEN, "forbidden", "LA on CareTeam");
        let r = app.audit_events(SHARED_CHILD, token).await;
        assert_outcome(&r, StatusCode::FORBIDDEN, "forbidden", "LA on AuditEvent");
    }
    let r = app
        .fhir_get(
            &format!("/fhir/R4/AuditEvent?{}", patient_query(SHARED_CHILD)),
            None,
            &[],
        )
        .await;
    assert_outcome(
        &r,
        StatusCode::UNAUTHORIZED,
        "login",
        "AuditEvent, no token",
    );
    assert_eq!(app.notifications_stored(), notifications);
}

#[tokio::test]
async fn unknown_fhir_resources_are_404_operation_outcomes() {
    let app = spawn_app();
    for path in [
        "/fhir/R4/Patient",
        "/fhir/R4/Patient/123",
        &format!("/fhir/R4/Patient?{}", patient_query(SHARED_CHILD)),
        "/fhir/R4/CareTeam/abc",
    ] {
        let r = app.fhir_get(path, Some(ED_TOKEN), &[]).await;
        assert_outcome(&r, StatusCode::NOT_FOUND, "not-found", path);
    }
}

#[tokio::test]
async fn metadata_is_a_capability_statement_for_fhir_4_0_1() {
    let app = spawn_app();
    let r = app.fhir_get("/fhir/R4/metadata", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(header(&r, "content-type").starts_with("application/fhir+json"));
    let j = r.json();
    assert_eq!(j["resourceType"], "CapabilityStatement");
    assert_eq!(j["fhirVersion"], "4.0.1");
    assert_eq!(j["kind"], "instance");
    let types: BTreeSet<&str> = j["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from([
            "Appointment",
            "AuditEvent",
            "CareTeam",
            "CodeSystem",
            "PractitionerRole",
            "StructureDefinition"
        ])
    );
    let appointment = j["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Appointment")
        .unwrap();
    assert_eq!(
        appointment["interaction"],
        serde_json::json!([{"code": "create"}])
    );
}

#[tokio::test]
async fn a_health_token_cannot_read_or_ack_la_notifications() {
    let app = spawn_app();
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    let id = app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for token in [ED_TOKEN, ED2_TOKEN, ED_SILENT_TOKEN, GP_TOKEN] {
        let r = app.get("/api/v1/notifications", Some(token)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
        assert_eq!(r.json()["error"], "forbidden");
        let r = app.ack(&id, Some(token)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    }
    let still = app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD).await;
    assert!(still[0]["acknowledged_at"].is_null());
}

// ---------------------------------------------------------------------------------------------
// 8. NHS numbers written with spaces.

#[tokio::test]
async fn nhs_numbers_with_spaces_are_accepted() {
    let app = spawn_app();
    // The shared child, as `999 059 7634`: found, and emitted as ten digits.
    for spaced in [
        "999%20059%207634",
        "999+059+7634",
        "https://fhir.nhs.uk/Id/nhs-number%7C999%20059%207634",
    ] {
        let r = app
            .fhir_get(
                &format!("/fhir/R4/CareTeam?patient:identifier={spaced}"),
                Some(ED_TOKEN),
                &[("IsUnscheduledAccessEvent", "false")],
            )
            .await;
        let b = assert_searchset(&r);
        assert_eq!(b["total"], 2, "{spaced}: {b:#}");
        for ct in matches(&b) {
            assert_eq!(ct["subject"]["identifier"]["value"], SHARED_CHILD);
        }
    }
    // `943 476 5919`: a valid number nobody holds: an empty searchset, not an error.
    let r = app
        .fhir_get(
            "/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C943%20476%205919",
            Some(ED_TOKEN),
            &[],
        )
        .await;
    assert_empty_searchset(&r);
    let r = app
        .fhir_get(
            "/fhir/R4/AuditEvent?patient:identifier=999%20059%207634",
            Some(ED_TOKEN),
            &[],
        )
        .await;
    assert_searchset(&r);
}

// ---------------------------------------------------------------------------------------------
// FHIR JSON validity.

#[tokio::test]
async fn an_empty_searchset_has_no_empty_entry_array() {
    // FHIR JSON (R4 §2.6.2): "arrays must not be empty"; the HL7 validator rejects `"entry": []`.
    let app = spawn_app();
    let r = app.care_team("9434765919", ED_TOKEN, Some("true")).await;
    assert_empty_searchset(&r);
    let b = r.json();
    assert!(
        b.get("entry").is_none(),
        "an empty Bundle must leave out `entry`: {b}"
    );
    let r = app.audit_events("9434765919", ED_TOKEN).await;
    let b = r.json();
    assert!(b.get("entry").is_none(), "{b}");
}

#[tokio::test]
async fn a_generated_trace_id_is_the_one_echoed_and_audited() {
    let app = spawn_app();
    let r = app.care_team(SHARED_CHILD, ED_TOKEN, Some("true")).await;
    assert_eq!(r.status, StatusCode::OK);
    let echoed = header(&r, "traceid").to_owned();
    assert!(
        !echoed.is_empty(),
        "a trace id is generated when none is sent"
    );
    let audited = app
        .store
        .audit_search(&cpis_store::AuditQuery {
            subject_nhs: Some(cpis_domain::NhsNumber::parse(SHARED_CHILD).unwrap()),
            action_prefix: Some("lookup.".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(!audited.is_empty());
    assert_eq!(
        audited[0].entry.trace_id.as_deref(),
        Some(echoed.as_str()),
        "the audit entry carries the trace id the response echoed"
    );
}

#[tokio::test]
async fn full_urls_never_follow_the_host_header() {
    let app = spawn_app();
    let req = Request::builder()
        .method(Method::GET)
        .uri(format!("/fhir/R4/CareTeam?{}", patient_query(SHARED_CHILD)))
        .header("authorization", format!("Bearer {ED_TOKEN}"))
        .header("host", "attacker.example")
        .body(Body::empty())
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    assert!(!text.contains("attacker.example"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// NHS England's CP-IS FHIR API conventions (docs/FHIR.md).

const SPINE: &str = "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode";

/// An OperationOutcome with the HTTP status, FHIR issue code and Spine error code expected.
fn assert_spine_error(r: &Reply, status: u16, issue: &str, spine: &str, what: &str) {
    assert_eq!(r.status.as_u16(), status, "{what}: {}", r.text());
    assert!(
        header(r, "content-type").starts_with("application/fhir+json"),
        "{what}"
    );
    let j = r.json();
    assert_eq!(j["resourceType"], "OperationOutcome", "{what}");
    let i = &j["issue"][0];
    assert_eq!(i["severity"], "error", "{what}");
    assert_eq!(i["code"], issue, "{what}: {j:#}");
    let codings = i["details"]["coding"].as_array().expect("details.coding");
    let spine_coding = codings
        .iter()
        .find(|c| c["system"] == SPINE)
        .unwrap_or_else(|| panic!("{what}: no {SPINE} coding: {j:#}"));
    assert_eq!(spine_coding["code"], spine, "{what}: {j:#}");
    assert!(spine_coding["display"].is_string(), "{what}");
    assert!(
        codings.iter().any(|c| c["system"]
            == "https://fhir.nhs.uk/CodeSystem/England-SpineErrorOrWarningCode"
            && c["code"] == spine),
        "{what}: the guide example's system too: {j:#}"
    );
}

#[tokio::test]
async fn errors_carry_the_spine_code_the_cp_is_guide_names() {
    let app = spawn_app();
    let ct = |q: &str| format!("/fhir/R4/CareTeam?{q}");
    let good = patient_query(SHARED_CHILD);
    /// (path, token, headers, status, FHIR issue code, Spine code)
    type Case<'a> = (
        String,
        Option<&'a str>,
        Vec<(&'a str, &'a str)>,
        u16,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            ct(&patient_query("9990597635")),
            Some(ED_TOKEN),
            vec![],
            400,
            "invalid",
            "INVALID_SEARCH_DATA",
        ),
        (
            ct("patient:identifier=https://example.org/id|9990597634"),
            Some(ED_TOKEN),
            vec![],
            400,
            "invalid",
            "INVALID_SEARCH_DATA",
        ),
        (
            ct(""),
            Some(ED_TOKEN),
            vec![],
            400,
            "invalid",
            "PRECONDITION_FAILED",
        ),
        (
            ct(&good),
            Some(ED_TOKEN),
            vec![("IsUnscheduledAccessEvent", "maybe")],
            400,
            "invalid",
            "PRECONDITION_FAILED",
        ),
        (
            ct(&format!("{good}&_sort=date")),
            Some(ED_TOKEN),
            vec![],
            400,
            "invalid",
            "PRECONDITION_FAILED",
        ),
        (ct(&good), None, vec![], 401, "login", "ACCESS_DENIED"),
        (
            ct(&good),
            Some(COVENTRY_TOKEN),
            vec![],
            403,
            "forbidden",
            "ACCESS_DENIED",
        ),
        (
            "/fhir/R4/Patient?x=1".into(),
            Some(ED_TOKEN),
            vec![],
            404,
            "not-found",
            "RESOURCE_NOT_FOUND",
        ),
        (
            ct(&format!("{good}&_format=xml")),
            Some(ED_TOKEN),
            vec![],
            406,
            "not-supported",
            "UNSUPPORTED_VALUE",
        ),
        (
            ct(&good),
            Some(ED_TOKEN),
            vec![("Accept", "application/fhir+xml")],
            406,
            "not-supported",
            "UNSUPPORTED_VALUE",
        ),
        (
            "/fhir/R4/metadata?_format=application/fhir%2Bxml".into(),
            None,
            vec![],
            406,
            "not-supported",
            "UNSUPPORTED_VALUE",
        ),
    ];
    let accesses = app.accesses_stored();
    for (path, token, headers, status, issue, spine) in &cases {
        let trace = format!("refusal-{}", uuid::Uuid::new_v4());
        let mut headers = headers.clone();
        headers.push(("TraceID", &trace));
        let r = app.fhir_get(path, *token, &headers).await;
        assert_spine_error(&r, *status, issue, spine, path);
        assert!(r.headers.get("date").is_some(), "{path}: Date header");
        // Every refusal of an authenticated caller is audited, with its trace id and no values.
        // (An Accept cpis cannot satisfy is refused before anyone is authenticated.)
        let before_auth = headers.iter().any(|(k, _)| *k == "Accept");
        if *token == Some(ED_TOKEN)
            && matches!(*status, 400 | 406)
            && path.contains("CareTeam")
            && !before_auth
        {
            let e = app
                .audit_entries("?user=ed.clinician&limit=1")
                .await
                .into_iter()
                .next()
                .expect("audited");
            assert_eq!(e["trace_id"], trace.as_str(), "{path}: {e}");
            assert_eq!(e["outcome"], "denied", "{path}");
            assert!(!e.to_string().contains("9990597635"), "{path}: {e}");
        }
    }
    assert_eq!(
        app.accesses_stored(),
        accesses,
        "no refused request looked anyone up"
    );

    // 405 names the method that works.
    let r = app
        .request(
            Method::POST,
            &ct(&good),
            &[("authorization", &format!("Bearer {ED_TOKEN}"))],
            Body::empty(),
        )
        .await;
    assert_spine_error(&r, 405, "not-supported", "UNSUPPORTED_SERVICE", "POST");
    assert_eq!(header(&r, "allow"), "GET");
}

/// Every `reference` inside a Bundle names a resource in the same Bundle.
fn assert_references_resolve(b: &Value) {
    let present: BTreeSet<String> = b["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["resource"]["resourceType"].as_str().unwrap(),
                        e["resource"]["id"].as_str().unwrap()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("reference") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(b, &mut refs);
    for r in refs {
        assert!(
            present.contains(&r),
            "{r} does not resolve inside the Bundle: {b:#}"
        );
    }
}

#[tokio::test]
async fn the_nhs_base_path_header_spelling_and_includes_work_as_the_guide_shows() {
    let app = spawn_app();
    // The guide's base path; its other header spelling; its AuditEvent include.
    let r = app
        .fhir_get(
            &format!("/cpis/FHIR/R4/CareTeam?{}", patient_query(SHARED_CHILD)),
            Some(ED_TOKEN),
            &[("IsUnscheduledEvent", "true"), ("TraceID", "guide-trace-1")],
        )
        .await;
    let b = assert_searchset(&r);
    assert_eq!(header(&r, "traceid"), "guide-trace-1");
    assert!(r.headers.get("date").is_some());
    assert!(
        b["link"][0]["url"]
            .as_str()
            .unwrap()
            .contains("/cpis/FHIR/R4/CareTeam?"),
        "{b:#}"
    );
    for e in b["entry"].as_array().unwrap() {
        assert!(
            e["fullUrl"].as_str().unwrap().contains("/cpis/FHIR/R4/"),
            "{e:#}"
        );
    }
    assert_references_resolve(&b);
    // A silent lookup through the alias header is silent.
    let before = app.notifications_stored();
    let r = app
        .fhir_get(
            &format!("/cpis/FHIR/R4/CareTeam?{}", patient_query(SHARED_CHILD)),
            Some(ED_TOKEN),
            &[("IsUnscheduledEvent", "false")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(header(&r, "cpis-notified-las"), "0");
    assert_eq!(app.notifications_stored(), before);

    let include = "_include=AuditEvent:entity-type=http://terminology.hl7.org/CodeSystem/v3-RoleClass%7CASSIGNED";
    let r = app
        .fhir_get(
            &format!(
                "/cpis/FHIR/R4/AuditEvent?{}&{include}",
                patient_query(SHARED_CHILD)
            ),
            Some(GP_TOKEN),
            &[],
        )
        .await;
    let h = assert_searchset(&r);
    assert_references_resolve(&h);
    let events = matches(&h);
    assert!(!events.is_empty(), "{h:#}");
    for ae in &events {
        assert_eq!(
            ae["type"]["system"],
            "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
        );
        assert_eq!(ae["type"]["code"], "access");
        let agents = ae["agent"].as_array().unwrap();
        assert_eq!(agents[0]["type"]["coding"][0]["code"], "PAT");
        assert_eq!(agents[0]["who"]["identifier"]["value"], SHARED_CHILD);
        assert_eq!(agents[0]["requestor"], false);
        assert_eq!(agents[1]["type"]["coding"][0]["code"], "ASSIGNED");
        assert_eq!(agents[1]["requestor"], true);
        let role = viewer(&h, ae);
        assert_eq!(role["practitioner"]["display"], "ed.clinician name");
        assert!(
            role["code"][0]["coding"][0]["display"].is_string(),
            "{role:#}"
        );
        assert_eq!(role["organization"]["identifier"]["value"], ED_SETTING);
    }
    let included: Vec<String> = entries(&h, "include")
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        included.iter().any(|t| t == "PractitionerRole") && included.iter().any(|t| t == "Patient"),
        "{included:?}"
    );

    // _count is honoured up to 25; beyond is refused.
    for _ in 0..3 {
        app.notifying_lookup(SHARED_CHILD, ED2_TOKEN).await;
    }
    let r = app
        .fhir_get(
            &format!(
                "/fhir/R4/AuditEvent?{}&_count=2",
                patient_query(SHARED_CHILD)
            ),
            Some(GP_TOKEN),
            &[],
        )
        .await;
    let h = assert_searchset(&r);
    assert_eq!(h["total"], 2);
    assert_eq!(matches(&h).len(), 2);
    let r = app
        .fhir_get(
            &format!(
                "/fhir/R4/AuditEvent?{}&_count=26",
                patient_query(SHARED_CHILD)
            ),
            Some(GP_TOKEN),
            &[],
        )
        .await;
    assert_spine_error(&r, 400, "invalid", "PRECONDITION_FAILED", "_count=26");
}

#[tokio::test]
async fn no_placeholder_urls_and_cpis_own_definitions_are_served_where_they_point() {
    let app = spawn_app();
    let mother = spare_mothers().remove(0);
    app.upload_rows(
        WESTMINSTER_TOKEN,
        &[ucpp_row(&mother, "2026-10-01", None, "2027-01-15")],
    )
    .await;
    let ucpp = app.care_team(&mother.nhs, ED_TOKEN, Some("true")).await;
    let cpp = app.care_team(SHARED_CHILD, ED_TOKEN, Some("true")).await;
    let history = app.audit_events(SHARED_CHILD, GP_TOKEN).await;
    let meta = app.fhir_get("/fhir/R4/metadata", None, &[]).await;
    for r in [&ucpp, &cpp, &history, &meta] {
        assert_eq!(r.status, StatusCode::OK);
        let text = r.text();
        assert!(!text.contains("example.org"), "placeholder URL: {text}");
    }
    // The EDD extension's URL is served by the server, as a StructureDefinition with that url.
    let b = ucpp.json();
    let ext = &matches(&b)[0]["extension"][0];
    assert_eq!(ext["valueDate"], "2027-01-15");
    let url = ext["url"].as_str().unwrap();
    let path = url
        .split_once("/fhir/R4")
        .map(|(_, p)| format!("/fhir/R4{p}"))
        .unwrap();
    let sd = app.fhir_get(&path, None, &[]).await;
    assert_eq!(sd.status, StatusCode::OK, "{path}");
    assert_eq!(sd.json()["resourceType"], "StructureDefinition");
    assert_eq!(sd.json()["url"], url);
    // The UCPP says whose record this is.
    assert!(
        matches(&b)[0]["note"]
            .to_string()
            .contains("mother's record"),
        "{b:#}"
    );
    // The Patient: verified NHS number, names as the LA sent them.
    let patient = entries(&b, "include")
        .into_iter()
        .map(|e| e["resource"].clone())
        .find(|r| r["resourceType"] == "Patient")
        .unwrap();
    assert_eq!(
        patient["identifier"][0]["extension"][0]["url"],
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
    );
    assert_eq!(
        patient["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
        "01"
    );
    assert_eq!(patient["name"][0]["family"], "Mother");
    assert_eq!(
        patient["identifier"][1]["value"],
        format!("T-{}", mother.nhs)
    );

    // The CapabilityStatement names itself and the guide, and every include it declares works.
    let cs = meta.json();
    assert!(cs["url"]
        .as_str()
        .unwrap()
        .ends_with("/CapabilityStatement/cpis"));
    assert_eq!(cs["name"], "CpisFhirApi");
    assert!(cs["version"].is_string());
    assert_eq!(
        cs["instantiates"][0],
        "https://fhir.nhs.uk/CapabilityStatement/CPIS-FHIR-API-Producer"
    );
    for res in cs["rest"][0]["resource"].as_array().unwrap() {
        let kind = res["type"].as_str().unwrap();
        for inc in res["searchInclude"].as_array().into_iter().flatten() {
            let inc = inc.as_str().unwrap().replace('|', "%7C");
            let r = app
                .fhir_get(
                    &format!(
                        "/fhir/R4/{kind}?{}&_include={inc}",
                        patient_query(SHARED_CHILD)
                    ),
                    Some(GP_TOKEN),
                    &[("IsUnscheduledAccessEvent", "false")],
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{kind} _include={inc}: {}",
                r.text()
            );
        }
    }
    let cs_codes = app
        .fhir_get("/fhir/R4/CodeSystem/care-setting-type", None, &[])
        .await;
    assert_eq!(cs_codes.status, StatusCode::OK);
    assert!(cs_codes.text().contains("emergency-department"));
}
