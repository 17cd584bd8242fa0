//! Was not brought (docs/WORKFLOW.md): `POST /fhir/R4/Appointment` with `status: noshow` from a
//! scheduled care setting notifies each LA with a plan a lookup would show, and only those;
//! other settings are refused (403) and audited; what is not a report is refused with an
//! OperationOutcome and nothing is sent.

use crate::common::*;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

const START: &str = "2026-11-20T09:00:00Z";
const END: &str = "2026-11-20T09:15:00Z";

fn appointment(nhs: &str) -> Value {
    json!({
        "resourceType": "Appointment",
        "status": "noshow",
        "description": "18-month development review",
        "start": START,
        "end": END,
        "participant": [{
            "actor": {"identifier": {"system": NHS_SYSTEM, "value": nhs}},
            "status": "accepted"
        }]
    })
}

impl TestApp {
    async fn report(&self, token: &str, body: &str, content_type: &str) -> Reply {
        self.request(
            Method::POST,
            "/fhir/R4/Appointment",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("content-type", content_type),
                ("traceid", "wnb-trace"),
            ],
            body.to_owned(),
        )
        .await
    }

    async fn was_not_brought(&self, token: &str) -> Vec<Value> {
        self.all_notifications(token)
            .await
            .into_iter()
            .filter(|n| n["kind"] == "was-not-brought")
            .collect()
    }
}

#[tokio::test]
async fn a_scheduled_setting_reports_and_only_the_las_with_a_visible_plan_are_told() {
    let app = spawn_app();
    let spare = spare_children();
    let (both, coventry_only, westminster_only) = (&spare[0], &spare[1], &spare[2]);
    app.upload_rows(
        COVENTRY_TOKEN,
        &[
            plan_row(both, "CPP", "2026-01-01", None),
            plan_row(coventry_only, "LAC", "2026-02-01", None),
        ],
    )
    .await;
    app.upload_rows(
        WESTMINSTER_TOKEN,
        &[
            plan_row(both, "CPP", "2026-03-01", None),
            plan_row(westminster_only, "CPP", "2026-03-01", None),
        ],
    )
    .await;
    let accesses = app.accesses_stored();

    let r = app
        .report(
            GP_TOKEN,
            &appointment(&coventry_only.nhs).to_string(),
            "application/fhir+json",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/fhir+json"));
    assert_eq!(r.headers["traceid"], "wnb-trace");
    assert_eq!(r.headers["cpis-notified-las"], "1");
    let a = r.json();
    assert_eq!(a["resourceType"], "Appointment");
    assert_eq!(a["status"], "noshow");
    assert_eq!(a["start"], "2026-11-20T09:00:00.000Z");
    assert_eq!(a["end"], "2026-11-20T09:15:00.000Z");
    assert_eq!(a["description"], "18-month development review");
    let id = a["id"].as_str().unwrap();
    let location = r.headers["location"].to_str().unwrap();
    assert!(
        location.ends_with(&format!("/fhir/R4/Appointment/{id}")),
        "{location}"
    );
    assert_eq!(
        a["participant"][0]["actor"]["identifier"]["value"],
        coventry_only.nhs.as_str()
    );
    assert_eq!(
        a["participant"][1]["actor"]["identifier"]["value"], GP_SETTING,
        "the reporting setting comes from the caller, not the body"
    );

    let told = app.was_not_brought(COVENTRY_TOKEN).await;
    assert_eq!(told.len(), 1, "{told:#?}");
    let n = &told[0];
    assert_eq!(n["la"], COVENTRY);
    assert_eq!(n["child"]["nhs_number"], coventry_only.nhs.as_str());
    assert_eq!(n["child"]["local_id"], format!("T-{}", coventry_only.nhs));
    assert_eq!(n["child"]["plans"][0]["plan_type"], "LAC");
    assert_eq!(n["appointment"]["id"], id);
    assert_eq!(n["appointment"]["start"], "2026-11-20T09:00:00.000Z");
    assert_eq!(n["appointment"]["end"], "2026-11-20T09:15:00.000Z");
    assert_eq!(
        n["appointment"]["description"],
        "18-month development review"
    );
    assert_eq!(n["setting"]["ods_code"], GP_SETTING);
    assert_eq!(n["setting"]["name"], care_setting_name(GP_SETTING));
    assert_eq!(n["setting"]["setting_type"], "gp");
    assert_eq!(n["reported_by"]["user_name"], "gp.clinician name");
    assert_eq!(n["reported_by"]["role"], "Clinician");
    assert!(
        app.was_not_brought(WESTMINSTER_TOKEN).await.is_empty(),
        "Westminster holds no plan for this child"
    );
    assert_eq!(app.accesses_stored(), accesses, "a report is not a lookup");

    let entry = app.last_audit("was-not-brought", None).await.unwrap();
    assert_eq!(entry["action"], "was-not-brought.report", "{entry}");
    assert_eq!(entry["outcome"], "success");
    assert_eq!(entry["subject_nhs"], coventry_only.nhs.as_str());
    assert_eq!(entry["actor"]["organisation"], GP_SETTING);
    assert_eq!(entry["trace_id"], "wnb-trace");

    // A child on both LAs' plans: each is told once.
    let r = app
        .report(
            GP_TOKEN,
            &appointment(&both.nhs).to_string(),
            "application/json",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.headers["cpis-notified-las"], "2");
    for token in [COVENTRY_TOKEN, WESTMINSTER_TOKEN] {
        let told: Vec<Value> = app
            .was_not_brought(token)
            .await
            .into_iter()
            .filter(|n| n["child"]["nhs_number"] == both.nhs.as_str())
            .collect();
        assert_eq!(told.len(), 1, "{token}: {told:#?}");
    }
}

#[tokio::test]
async fn settings_that_may_not_report_are_refused_and_audited() {
    let app = spawn_app();
    let child = &spare_children()[0];
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(child, "CPP", "2026-01-01", None)],
    )
    .await;
    let before = app.notifications_stored();
    let body = appointment(&child.nhs).to_string();
    for (token, what) in [
        (ED_TOKEN, "an emergency department"),
        (COVENTRY_TOKEN, "a local authority"),
        (ADMIN_TOKEN, "an administrator"),
    ] {
        let r = app.report(token, &body, "application/fhir+json").await;
        assert_outcome(&r, StatusCode::FORBIDDEN, "forbidden", what);
        let entry = app.last_audit("was-not-brought", None).await.unwrap();
        assert_eq!(entry["outcome"], "denied", "{what}: {entry}");
    }
    let entry = app.last_audit("was-not-brought", None).await.unwrap();
    assert_eq!(entry["actor"]["organisation"], OPERATIONS_ORG);
    let r = app
        .request(
            Method::POST,
            "/fhir/R4/Appointment",
            &[("content-type", "application/fhir+json")],
            body.clone(),
        )
        .await;
    assert_outcome(&r, StatusCode::UNAUTHORIZED, "login", "no token");
    assert_eq!(app.notifications_stored(), before, "nobody was told");
}

#[tokio::test]
async fn what_is_not_a_report_is_refused_with_an_outcome_and_nothing_is_sent() {
    let app = spawn_app();
    let child = &spare_children()[0];
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(child, "CPP", "2026-01-01", None)],
    )
    .await;
    let (notifications, accesses) = (app.notifications_stored(), app.accesses_stored());
    let with = |f: &dyn Fn(&mut Value)| {
        let mut a = appointment(&child.nhs);
        f(&mut a);
        a.to_string()
    };
    let cases: Vec<(String, StatusCode, &str, Option<&str>)> = vec![
        (
            "{not json".into(),
            StatusCode::BAD_REQUEST,
            "structure",
            None,
        ),
        (
            json!({"resourceType": "Patient"}).to_string(),
            StatusCode::BAD_REQUEST,
            "structure",
            None,
        ),
        (
            with(&|a| {
                a.as_object_mut().unwrap().remove("status");
            }),
            StatusCode::BAD_REQUEST,
            "required",
            Some("Appointment.status"),
        ),
        (
            with(&|a| a["status"] = json!("booked")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("Appointment.status"),
        ),
        (
            with(&|a| {
                a.as_object_mut().unwrap().remove("end");
            }),
            StatusCode::BAD_REQUEST,
            "required",
            Some("Appointment.end"),
        ),
        (
            with(&|a| a["start"] = json!("2026-11-20")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("Appointment.start"),
        ),
        (
            with(&|a| {
                a["start"] = json!("2026-11-21T09:00:00Z");
                a["end"] = json!("2026-11-21T09:10:00Z");
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("Appointment.start"),
        ),
        (
            with(&|a| a["end"] = json!("2026-11-20T08:00:00Z")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("Appointment.end"),
        ),
        (
            with(&|a| a["participant"][0]["actor"]["identifier"]["value"] = json!("9990597635")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Some("Appointment.participant.actor.identifier.value"),
        ),
        (
            with(&|a| a["participant"] = json!([])),
            StatusCode::BAD_REQUEST,
            "required",
            Some("Appointment.participant"),
        ),
        (
            with(&|a| {
                a["participant"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("status");
            }),
            StatusCode::BAD_REQUEST,
            "required",
            Some("Appointment.participant.status"),
        ),
    ];
    for (body, status, code, expression) in &cases {
        let r = app.report(GP_TOKEN, body, "application/fhir+json").await;
        assert_outcome(&r, *status, code, body);
        let j = r.json();
        let details = &j["issue"][0]["details"]["coding"][0];
        assert_eq!(
            details["system"],
            "https://fhir.nhs.uk/CodeSystem/Spine-ErrorOrWarningCode"
        );
        assert!(details["code"].is_string(), "{j}");
        assert!(j["issue"][0]["diagnostics"].is_string(), "{j}");
        if let Some(e) = expression {
            assert_eq!(j["issue"][0]["expression"][0], *e, "{body}: {j}");
        }
        let entry = app.last_audit("was-not-brought", None).await.unwrap();
        assert_eq!(entry["outcome"], "failure", "{body}: {entry}");
        assert!(
            entry["subject_nhs"].is_null(),
            "values sent are not audited"
        );
    }
    let r = app
        .report(GP_TOKEN, &appointment(&child.nhs).to_string(), "text/plain")
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    assert_eq!(r.json()["resourceType"], "OperationOutcome");
    let r = app
        .fhir_get("/fhir/R4/Appointment", Some(GP_TOKEN), &[])
        .await;
    assert_outcome(&r, StatusCode::METHOD_NOT_ALLOWED, "not-supported", "GET");
    assert_eq!(r.headers["allow"], "POST");
    assert_eq!(app.notifications_stored(), notifications, "nothing sent");
    assert_eq!(app.accesses_stored(), accesses);
}

#[tokio::test]
async fn a_child_with_no_visible_plan_is_told_as_a_lookup_would_and_nobody_is_told() {
    let app = spawn_app();
    let spare = spare_children();
    let (none, ended) = (&spare[0], &spare[1]);
    // A plan that ended long ago is outside every visibility window.
    app.upload_rows(
        COVENTRY_TOKEN,
        &[plan_row(ended, "CPP", "2020-01-01", Some("2021-01-01"))],
    )
    .await;
    let before = app.notifications_stored();
    for child in [none, ended] {
        let r = app
            .report(
                GP_TOKEN,
                &appointment(&child.nhs).to_string(),
                "application/fhir+json",
            )
            .await;
        assert_outcome(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "business-rule",
            &child.nhs,
        );
        let text = r.text();
        assert!(text.contains("no local authority was told"), "{text}");
        assert!(
            !text.contains(COVENTRY),
            "nothing about who held a plan: {text}"
        );
        let entry = app.last_audit("was-not-brought", None).await.unwrap();
        assert_eq!(entry["action"], "was-not-brought.no-plan");
        assert_eq!(entry["subject_nhs"], child.nhs.as_str());
    }
    assert_eq!(app.notifications_stored(), before);
}
