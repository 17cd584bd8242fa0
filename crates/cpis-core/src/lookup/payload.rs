//! The body of an Access to Service Notification, as typed structs written straight to JSON.
//!
//! Every struct lists its fields in sorted order, as a `serde_json::Value` object (a sorted map)
//! wrote them when the payload was built as one: the bytes are the same, so payloads stored
//! before and after read alike, and the deflate dictionary the store keeps them against
//! (`cpis_store::deflate`) matches them as well as before. Writing the structs directly saves
//! building and freeing a map per object on the lookup writer (issue #16).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use cpis_domain::attendance::{Attendance, AttendancePattern};
use cpis_domain::contact::{EmailAddress, PhoneNumber};
use cpis_domain::lookup::VisibleRecord;
use cpis_domain::{
    Access, NhsNumber, NotificationKind, OdsCode, PlanType, PlanVisibility, SettingType, Subject,
};
use serde::Serialize;

/// The payload of the notification `id` to the LA of `visible`: the access and the LA's own
/// record, how to reach the setting and the person who looked, and the child's attendance across
/// settings.
#[derive(Serialize)]
pub(crate) struct AccessPayload<'a> {
    access: AccessJson<'a>,
    attendance: AttendanceJson,
    child: ChildJson<'a>,
    created_at: String,
    id: &'a str,
    kind: &'static str,
    la: &'a OdsCode,
    /// A maternity setting looking up a mother on an unborn child protection plan (the birth
    /// may be imminent): docs/WORKFLOW.md, "Births and adoption".
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    maternity: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<&'static str>,
    /// "mother" when every plan is an unborn child protection plan: `child` then holds the
    /// mother's details (docs/WORKFLOW.md, "The clinician's flag").
    subject: &'static str,
}

#[derive(Serialize)]
struct AccessJson<'a> {
    contact: Option<ContactJson<'a>>,
    id: &'a str,
    organisation: OrganisationJson<'a>,
    role: &'a str,
    setting_type: Option<SettingType>,
    time: String,
    user_id: &'a str,
    user_name: &'a str,
}

#[derive(Serialize)]
struct ContactJson<'a> {
    email: &'a Option<EmailAddress>,
    phone: &'a Option<PhoneNumber>,
}

#[derive(Serialize)]
struct OrganisationJson<'a> {
    name: &'a str,
    ods_code: &'a OdsCode,
    phone: &'a Option<PhoneNumber>,
}

#[derive(Serialize)]
struct AttendanceJson {
    organisations_30_days: u32,
    seen_30_days: u32,
    seen_6_months: u32,
}

/// The LA's own record of the child and its visible plans, as every notification about a child
/// carries it.
#[derive(Serialize)]
pub(crate) struct ChildJson<'a> {
    date_of_birth: Option<NaiveDate>,
    family_name: &'a Option<String>,
    given_name: &'a Option<String>,
    local_id: &'a Option<String>,
    nhs_number: NhsNumber,
    plans: Vec<PlanJson>,
    sensitive: bool,
}

#[derive(Serialize)]
struct PlanJson {
    end_date: Option<NaiveDate>,
    expected_delivery_date: Option<NaiveDate>,
    plan_type: PlanType,
    start_date: NaiveDate,
    state: &'static str,
}

/// An instant as every notification payload writes it: RFC 3339, UTC, to the millisecond.
pub(crate) fn payload_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl<'a> AccessPayload<'a> {
    pub(crate) fn new(
        id: &'a str,
        visible: &'a VisibleRecord,
        access: &'a Access,
        attendance: &Attendance,
        pattern: Option<AttendancePattern>,
    ) -> Self {
        let a = &access.accessor;
        let plan_types = || visible.plans.iter().map(|(p, _)| p.plan_type());
        let counts = attendance.counts;
        let time = payload_time(access.time);
        AccessPayload {
            access: AccessJson {
                contact: (!a.contact.is_empty()).then_some(ContactJson {
                    email: &a.contact.email,
                    phone: &a.contact.phone,
                }),
                id: &access.id,
                organisation: OrganisationJson {
                    name: &a.organisation_name,
                    ods_code: &a.organisation,
                    phone: &a.organisation_phone,
                },
                role: &a.role,
                setting_type: a.setting_type,
                time: time.clone(),
                user_id: &a.user_id,
                user_name: &a.user_name,
            },
            attendance: AttendanceJson {
                organisations_30_days: counts.organisations_30_days,
                seen_30_days: counts.seen_30_days,
                seen_6_months: counts.seen_6_months,
            },
            child: ChildJson::of(visible),
            created_at: time,
            id,
            kind: NotificationKind::Access.code(),
            la: &visible.record.la,
            maternity: a.setting_type == Some(SettingType::Maternity)
                && plan_types().any(|t| t == PlanType::Ucpp),
            pattern: pattern.map(AttendancePattern::code),
            subject: Subject::of(plan_types()).code(),
        }
    }
}

impl<'a> ChildJson<'a> {
    pub(crate) fn of(visible: &'a VisibleRecord) -> Self {
        let r = &visible.record;
        ChildJson {
            date_of_birth: r.date_of_birth,
            family_name: &r.family_name,
            given_name: &r.given_name,
            local_id: &r.local_id,
            nhs_number: r.nhs_number,
            plans: (visible.plans.iter())
                .map(|(p, v)| PlanJson {
                    end_date: p.end(),
                    expected_delivery_date: p.expected_delivery(),
                    plan_type: p.plan_type(),
                    start_date: p.start(),
                    state: match v {
                        PlanVisibility::Active => "active",
                        _ => "ended",
                    },
                })
                .collect(),
            sensitive: r.sensitive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpis_domain::attendance::AttendanceCounts;
    use cpis_domain::{AccessKind, Accessor, NhsIdentity, Plan, Record, WorkContact};
    use serde_json::json;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// The payload as cpis built it before the typed structs: a `serde_json::Value` (a sorted
    /// map) made with `json!`. Kept here as the reference the typed payload must equal byte for
    /// byte.
    fn built_as_a_value(
        id: &str,
        visible: &VisibleRecord,
        access: &Access,
        attendance: &Attendance,
        pattern: Option<AttendancePattern>,
    ) -> String {
        let r = &visible.record;
        let a = &access.accessor;
        let contact = (!a.contact.is_empty())
            .then(|| json!({ "phone": a.contact.phone, "email": a.contact.email }));
        let plans: Vec<_> = (visible.plans.iter())
            .map(|(p, v)| {
                json!({
                    "plan_type": p.plan_type(),
                    "start_date": p.start(),
                    "end_date": p.end(),
                    "expected_delivery_date": p.expected_delivery(),
                    "state": match v { PlanVisibility::Active => "active", _ => "ended" },
                })
            })
            .collect();
        let mut payload = json!({
            "id": id,
            "kind": NotificationKind::Access.code(),
            "subject": Subject::of(visible.plans.iter().map(|(p, _)| p.plan_type())).code(),
            "la": r.la,
            "created_at": payload_time(access.time),
            "child": {
                "nhs_number": r.nhs_number,
                "local_id": r.local_id,
                "given_name": r.given_name,
                "family_name": r.family_name,
                "date_of_birth": r.date_of_birth,
                "sensitive": r.sensitive,
                "plans": plans,
            },
            "access": {
                "id": access.id,
                "time": payload_time(access.time),
                "user_id": a.user_id,
                "user_name": a.user_name,
                "role": a.role,
                "organisation": {
                    "ods_code": a.organisation,
                    "name": a.organisation_name,
                    "phone": a.organisation_phone,
                },
                "setting_type": a.setting_type,
                "contact": contact,
            },
            "attendance": attendance.counts,
        });
        if let Some(p) = pattern {
            payload["pattern"] = p.code().into();
        }
        if a.setting_type == Some(SettingType::Maternity)
            && visible
                .plans
                .iter()
                .any(|(p, _)| p.plan_type() == PlanType::Ucpp)
        {
            payload["maternity"] = true.into();
        }
        payload.to_string()
    }

    fn record(plans: Vec<(Plan, PlanVisibility)>, names: bool) -> VisibleRecord {
        VisibleRecord {
            record: Record {
                la: OdsCode::parse("E09000002").unwrap(),
                nhs_number: NhsNumber::parse("9434765919").unwrap(),
                local_id: names.then(|| "LA-\"7\"".to_owned()),
                given_name: names.then(|| "Zoë".to_owned()),
                family_name: names.then(|| "O'Brien \\ Smith".to_owned()),
                date_of_birth: names.then(|| date("2019-03-04")),
                sensitive: !names,
                plans: plans.iter().map(|(p, _)| p.clone()).collect(),
                updated_at: Utc::now(),
            },
            plans,
        }
    }

    fn access(setting: Option<SettingType>, contact: WorkContact, phone: bool) -> Access {
        Access {
            id: "0193a1b2-0000-7000-8000-000000000001".into(),
            time: "2026-12-05T03:04:05.678901Z".parse().unwrap(),
            nhs_number: NhsNumber::parse("9434765919").unwrap(),
            accessor: Accessor {
                user_id: "u-1".into(),
                user_name: "Dr A \"Night\" Shift".into(),
                role: "clinician".into(),
                organisation: OdsCode::parse("RXH01").unwrap(),
                organisation_name: "Royal Sussex ED".into(),
                setting_type: setting,
                nhs: NhsIdentity::default(),
                organisation_phone: phone.then(|| PhoneNumber::parse("01273 696955").unwrap()),
                contact,
            },
            kind: AccessKind::Unscheduled,
            trace_id: None,
        }
    }

    #[test]
    fn the_typed_payload_writes_the_bytes_the_map_wrote() {
        let ucpp = Plan::new(
            PlanType::Ucpp,
            date("2026-06-01"),
            None,
            Some(date("2027-01-10")),
        )
        .unwrap();
        let cpp = Plan::new(
            PlanType::Cpp,
            date("2025-01-01"),
            Some(date("2026-11-30")),
            None,
        )
        .unwrap();
        let contact = WorkContact::from_claims(Some("07700 900123"), Some("a.shift@nhs.net"));
        let attendance = Attendance {
            counts: AttendanceCounts {
                seen_6_months: 7,
                seen_30_days: 3,
                organisations_30_days: 2,
            },
            ..Attendance::default()
        };
        let cases = [
            // A maternity setting, an unborn plan, a pattern, a contact and a phone: every
            // optional key present.
            (
                record(vec![(ucpp.clone(), PlanVisibility::Active)], true),
                access(Some(SettingType::Maternity), contact.clone(), true),
                Some(AttendancePattern::FrequentAttendance),
            ),
            // Two plans, one ended; no names; no contact, no phone, no pattern.
            (
                record(
                    vec![
                        (ucpp, PlanVisibility::Active),
                        (cpp, PlanVisibility::Ended(date("2026-11-30"))),
                    ],
                    false,
                ),
                access(
                    Some(SettingType::EmergencyDepartment),
                    WorkContact::default(),
                    false,
                ),
                None,
            ),
        ];
        for (visible, access, pattern) in &cases {
            let typed = serde_json::to_string(&AccessPayload::new(
                "n-1",
                visible,
                access,
                &attendance,
                *pattern,
            ))
            .unwrap();
            assert_eq!(
                typed,
                built_as_a_value("n-1", visible, access, &attendance, *pattern)
            );
        }
        // The first case carries every optional key (so the comparison covered them).
        let first: serde_json::Value = serde_json::from_str(
            &serde_json::to_string(&AccessPayload::new(
                "n-1",
                &cases[0].0,
                &cases[0].1,
                &attendance,
                cases[0].2,
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(first["maternity"], true);
        assert_eq!(first["pattern"], "frequent-attendance");
        assert_eq!(first["subject"], "mother");
        assert_eq!(first["access"]["contact"]["email"], "a.shift@nhs.net");
        assert_eq!(first["access"]["organisation"]["phone"], "01273 696955");
    }
}
