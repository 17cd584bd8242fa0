//! Domain values to FHIR resources.

use super::resources::*;
use chrono::{DateTime, SecondsFormat, Utc};
use cpis_domain::lookup::VisibleRecord;
use cpis_domain::{Access, LocalAuthority, NhsNumber, Plan, PlanType, PlanVisibility};
use sha2::{Digest, Sha256};

pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// cpis's own code systems and extensions (documented in docs/FHIR.md).
pub const PLAN_TYPE_SYSTEM: &str = "https://cpis.example.org/fhir/CodeSystem/cpis-plan-type";
pub const EDD_EXTENSION: &str =
    "https://cpis.example.org/fhir/StructureDefinition/expected-delivery-date";
pub const SETTING_TYPE_SYSTEM: &str = "https://cpis.example.org/fhir/CodeSystem/care-setting-type";
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A resource id that does not reveal the NHS number it stands for.
fn opaque_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}

pub fn patient_id(nhs: NhsNumber) -> String {
    opaque_id(&["patient", &nhs.digits()])
}

pub fn patient(nhs: NhsNumber, records: &[VisibleRecord]) -> Patient {
    Patient {
        resource_type: "Patient",
        id: patient_id(nhs),
        identifier: vec![Identifier {
            system: NHS_NUMBER_SYSTEM.into(),
            value: nhs.digits(),
        }],
        birth_date: records
            .iter()
            .find_map(|r| r.record.date_of_birth)
            .map(|d| d.to_string()),
    }
}

fn phones(la: &LocalAuthority) -> (ContactPoint, ContactPoint) {
    (
        ContactPoint {
            system: "phone",
            value: la.office_hours_phone.clone(),
            use_: "work",
            rank: 1,
        },
        ContactPoint {
            system: "phone",
            value: la.edt_phone.clone(),
            use_: "work",
            rank: 2,
        },
    )
}

pub fn organization(la: &LocalAuthority) -> Organization {
    let (office, edt) = phones(la);
    Organization {
        resource_type: "Organization",
        id: la.ods_code.to_string(),
        identifier: vec![Identifier {
            system: ODS_SYSTEM.into(),
            value: la.ods_code.to_string(),
        }],
        active: true,
        type_: vec![CodeableConcept::text(
            "Local authority children's social care",
        )],
        name: la.name.clone(),
        telecom: vec![office.clone(), edt.clone()],
        contact: vec![
            OrganizationContact {
                purpose: CodeableConcept::text("Office hours"),
                telecom: vec![office],
            },
            OrganizationContact {
                purpose: CodeableConcept::text("Emergency duty team (out of hours)"),
                telecom: vec![edt],
            },
        ],
    }
}

pub fn care_team(
    nhs: NhsNumber,
    la: &LocalAuthority,
    record: &VisibleRecord,
    plan: &Plan,
    vis: PlanVisibility,
) -> CareTeam {
    let t = plan.plan_type();
    let (office, edt) = phones(la);
    let ended = match vis {
        PlanVisibility::Ended(d) => Some(d),
        _ => None,
    };
    let mut note = Vec::new();
    if let Some(d) = ended {
        note.push(Annotation {
            text: format!("{} ended {d}", t.description()),
        });
    }
    let mut extension = Vec::new();
    if let Some(edd) = plan.expected_delivery() {
        extension.push(Extension {
            url: EDD_EXTENSION.into(),
            value_date: edd.to_string(),
        });
    }
    CareTeam {
        resource_type: "CareTeam",
        id: opaque_id(&["careteam", &nhs.digits(), la.ods_code.as_str(), t.code()]),
        meta: record.record.sensitive.then(|| Meta {
            security: vec![Coding::new(CONFIDENTIALITY, "R", "restricted")],
        }),
        extension,
        status: if ended.is_some() {
            "inactive"
        } else {
            "active"
        },
        category: vec![CodeableConcept {
            coding: vec![Coding::new(PLAN_TYPE_SYSTEM, t.code(), t.description())],
            text: Some(t.description().into()),
        }],
        name: format!("{} – {}", t.description(), la.name),
        subject: Reference {
            reference: Some(format!("Patient/{}", patient_id(nhs))),
            identifier: Some(Identifier {
                system: NHS_NUMBER_SYSTEM.into(),
                value: nhs.digits(),
            }),
            display: None,
        },
        period: Period {
            start: Some(plan.start().to_string()),
            end: plan.end().map(|d| d.to_string()),
        },
        participant: vec![CareTeamParticipant {
            role: vec![CodeableConcept::text("Responsible local authority")],
            member: org_ref(la),
        }],
        managing_organization: vec![org_ref(la)],
        telecom: vec![office, edt],
        note,
    }
}

fn org_ref(la: &LocalAuthority) -> Reference {
    Reference {
        reference: Some(format!("Organization/{}", la.ods_code)),
        identifier: Some(Identifier {
            system: ODS_SYSTEM.into(),
            value: la.ods_code.to_string(),
        }),
        display: Some(la.name.clone()),
    }
}

/// An access in the history. For a sensitive child the organisation, setting and user are withheld.
pub fn audit_event(nhs: NhsNumber, a: &Access, sensitive: bool) -> AuditEvent {
    let acc = &a.accessor;
    let mut agents = vec![AuditEventAgent {
        type_: Some(CodeableConcept {
            coding: vec![Coding::new(
                "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                "humanuser",
                "human user",
            )],
            text: None,
        }),
        role: vec![CodeableConcept::text(&acc.role)],
        who: if sensitive {
            Reference {
                display: Some("Withheld: sensitive record".into()),
                ..Default::default()
            }
        } else {
            Reference {
                identifier: Some(Identifier {
                    system: "https://fhir.nhs.uk/Id/sds-user-id".into(),
                    value: acc.user_id.clone(),
                }),
                display: Some(acc.user_name.clone()),
                ..Default::default()
            }
        },
        requestor: true,
    }];
    if !sensitive {
        agents.push(AuditEventAgent {
            type_: None,
            role: acc
                .setting_type
                .map(|s| CodeableConcept {
                    coding: vec![Coding::new(SETTING_TYPE_SYSTEM, s.code(), s.code())],
                    text: None,
                })
                .into_iter()
                .collect(),
            who: Reference {
                identifier: Some(Identifier {
                    system: ODS_SYSTEM.into(),
                    value: acc.organisation.to_string(),
                }),
                display: Some(acc.organisation_name.clone()),
                ..Default::default()
            },
            requestor: false,
        });
    }
    AuditEvent {
        resource_type: "AuditEvent",
        id: a.id.clone(),
        type_: Coding::new(
            "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "rest",
            "RESTful Operation",
        ),
        subtype: vec![Coding::new(
            "http://hl7.org/fhir/restful-interaction",
            "search-type",
            "search-type",
        )],
        action: "R",
        recorded: instant(a.time),
        outcome: "0",
        agent: agents,
        source: AuditEventSource {
            observer: Reference {
                display: Some("cpis".into()),
                ..Default::default()
            },
            type_: vec![Coding::new(
                "http://terminology.hl7.org/CodeSystem/security-source-type",
                "4",
                "Application Server",
            )],
        },
        entity: vec![AuditEventEntity {
            what: Reference {
                reference: Some(format!("Patient/{}", patient_id(nhs))),
                ..Default::default()
            },
        }],
    }
}

/// Plans in a stable order: CPP, LAC, UCPP.
pub fn sorted_plans(r: &VisibleRecord) -> Vec<(Plan, PlanVisibility)> {
    let mut plans = r.plans.clone();
    plans.sort_by_key(|(p, _)| match p.plan_type() {
        PlanType::Cpp => 0,
        PlanType::Lac => 1,
        PlanType::Ucpp => 2,
    });
    plans
}
