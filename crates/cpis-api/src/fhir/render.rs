//! Domain values to FHIR resources.

use super::resources::*;
use chrono::{DateTime, SecondsFormat, Utc};
use cpis_domain::lookup::VisibleRecord;
use cpis_domain::{Access, LocalAuthority, NhsNumber, Plan, PlanType, PlanVisibility};
use sha2::{Digest, Sha256};

pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
pub const SDS_USER_SYSTEM: &str = "https://fhir.nhs.uk/Id/sds-user-id";
pub const SDS_ROLE_PROFILE_SYSTEM: &str = "https://fhir.nhs.uk/Id/sds-role-profile-id";
pub const SDS_JOB_ROLE_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode";
pub const SNOMED: &str = "http://snomed.info/sct";
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const ROLE_CLASS: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleClass";
const LIFECYCLE: &str = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle";
pub const NHS_NUMBER_VERIFICATION_EXTENSION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
const NHS_NUMBER_VERIFICATION_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";

/// Where cpis's own definitions live: the CP-IS guide uses no custom code systems or extensions,
/// and cpis adds only the expected date of delivery, the care-setting type and the LA's local id,
/// under a canonical base the deployment configures (default: the server's own FHIR base, where
/// `GET StructureDefinition/…` and `CodeSystem/…` serve them).
#[derive(Debug, Clone)]
pub struct Canonical(pub String);

impl Canonical {
    pub fn edd_extension(&self) -> String {
        format!("{}/StructureDefinition/expected-delivery-date", self.0)
    }
    pub fn setting_type_system(&self) -> String {
        format!("{}/CodeSystem/care-setting-type", self.0)
    }
    pub fn local_id_system(&self, la: &str) -> String {
        format!("{}/Id/local-authority-child-id/{la}", self.0)
    }
}

/// The SNOMED CT concept (England-ChildProtectionPlan value set) for a plan type.
pub fn plan_concept(t: PlanType) -> (&'static str, &'static str) {
    match t {
        PlanType::Cpp => ("342191000000101", "Subject to child protection plan"),
        PlanType::Lac => ("764841000000100", "Looked after child"),
        PlanType::Ucpp => (
            "818901000000100",
            "Unborn child subject to child protection plan",
        ),
    }
}

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

/// "Given FAMILY", as NHS displays a person's name.
fn display_name(given: Option<&str>, family: Option<&str>) -> Option<String> {
    let name = [given.map(str::to_owned), family.map(str::to_uppercase)]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

fn nhs_identifier(nhs: NhsNumber) -> Identifier {
    Identifier {
        system: NHS_NUMBER_SYSTEM.into(),
        value: nhs.digits(),
        extension: Vec::new(),
        assigner: None,
    }
}

/// The child (or, for an unborn child's plan, the mother) as the LAs sent them: the NHS number
/// (verified against the demographics index when the record was accepted), each LA's local id,
/// names and date of birth.
pub fn patient(canon: &Canonical, nhs: NhsNumber, records: &[VisibleRecord]) -> Patient {
    let mut identifier = vec![Identifier {
        extension: vec![Extension::codeable(
            NHS_NUMBER_VERIFICATION_EXTENSION,
            Coding::new(
                NHS_NUMBER_VERIFICATION_SYSTEM,
                "01",
                "Number present and verified",
            ),
        )],
        ..nhs_identifier(nhs)
    }];
    for r in records {
        if let Some(local) = &r.record.local_id {
            identifier.push(Identifier {
                system: canon.local_id_system(r.record.la.as_str()),
                value: local.clone(),
                extension: Vec::new(),
                // A logical reference (the ODS code): the LA's Organization is not in every
                // Bundle the Patient appears in.
                assigner: Some(Box::new(Reference {
                    identifier: Some(Identifier {
                        system: ODS_SYSTEM.into(),
                        value: r.record.la.to_string(),
                        extension: Vec::new(),
                        assigner: None,
                    }),
                    ..Default::default()
                })),
            });
        }
    }
    let mut name: Vec<HumanName> = Vec::new();
    for r in records {
        let given: Vec<String> = r.record.given_name.iter().cloned().collect();
        let family = r.record.family_name.clone();
        if given.is_empty() && family.is_none() {
            continue;
        }
        let n = HumanName {
            use_: "official",
            family,
            given,
        };
        if !name.contains(&n) {
            name.push(n);
        }
    }
    Patient {
        resource_type: "Patient",
        id: patient_id(nhs),
        identifier,
        name,
        birth_date: records
            .iter()
            .find_map(|r| r.record.date_of_birth)
            .map(|d| d.to_string()),
    }
}

/// The LA's two numbers as the CP-IS data mapping names them: office hours `work`, the emergency
/// duty team (out of hours) `mobile`.
fn phones(la: &LocalAuthority) -> (ContactPoint, ContactPoint) {
    (
        ContactPoint {
            system: "phone",
            value: la.office_hours_phone.clone(),
            use_: "work",
        },
        ContactPoint {
            system: "phone",
            value: la.edt_phone.clone(),
            use_: "mobile",
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
            extension: Vec::new(),
            assigner: None,
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

fn restricted(sensitive: bool) -> Option<Meta> {
    sensitive.then(|| Meta {
        security: vec![Coding::new(CONFIDENTIALITY, "R", "restricted")],
    })
}

/// One plan as the CP-IS guide's CareTeam: category from the England-ChildProtectionPlan value
/// set, the responsible LA's name, the child, the plan period and the LA's two numbers; plus
/// status, the LA as manager and member, and the Patient reference, which the guide leaves open.
pub fn care_team(
    canon: &Canonical,
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
    if t == PlanType::Ucpp {
        note.push(Annotation {
            text: "Unborn child protection plan: this is the mother's record".into(),
        });
    }
    let mut extension = Vec::new();
    if let Some(edd) = plan.expected_delivery() {
        extension.push(Extension::date(&canon.edd_extension(), &edd.to_string()));
    }
    let (code, display) = plan_concept(t);
    CareTeam {
        resource_type: "CareTeam",
        id: opaque_id(&["careteam", &nhs.digits(), la.ods_code.as_str(), t.code()]),
        meta: restricted(record.record.sensitive),
        extension,
        status: if ended.is_some() {
            "inactive"
        } else {
            "active"
        },
        category: vec![CodeableConcept {
            coding: vec![Coding::new(SNOMED, code, display)],
            text: Some(t.description().into()),
        }],
        name: la.name.clone(),
        subject: Reference {
            reference: Some(format!("Patient/{}", patient_id(nhs))),
            identifier: Some(nhs_identifier(nhs)),
            display: display_name(
                record.record.given_name.as_deref(),
                record.record.family_name.as_deref(),
            ),
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
            extension: Vec::new(),
            assigner: None,
        }),
        display: Some(la.name.clone()),
    }
}

/// The id of the PractitionerRole standing for whoever made an access (one per person, role and
/// organisation, so repeat viewers share it); one withheld id for a sensitive child.
pub fn practitioner_role_id(a: &Access, sensitive: bool) -> String {
    if sensitive {
        return opaque_id(&["practitionerrole", "withheld"]);
    }
    let acc = &a.accessor;
    // An NHS identity names the person and the role itself, however they signed in (a web
    // session `oidc:<sub>` and a bearer token `jwt:<sub>` are the same PractitionerRole).
    if let (Some(user), Some(role)) = (&acc.nhs.sds_user_id, &acc.nhs.role_profile_id) {
        return opaque_id(&[
            "practitionerrole-nhs",
            user,
            role,
            acc.organisation.as_str(),
        ]);
    }
    opaque_id(&[
        "practitionerrole",
        &acc.user_id,
        &acc.role,
        acc.organisation.as_str(),
    ])
}

/// The viewer of an access as the CP-IS guide maps it: practitioner name, role and organisation
/// (with the SDS role profile, user id and job role code where the identity carries them). For a
/// sensitive child every detail is withheld.
pub fn practitioner_role(a: &Access, sensitive: bool) -> PractitionerRole {
    let withheld = || Reference {
        display: Some("Withheld: sensitive record".into()),
        ..Default::default()
    };
    let id = practitioner_role_id(a, sensitive);
    if sensitive {
        return PractitionerRole {
            resource_type: "PractitionerRole",
            id,
            meta: restricted(true),
            identifier: Vec::new(),
            practitioner: withheld(),
            organization: withheld(),
            code: Vec::new(),
        };
    }
    let acc = &a.accessor;
    let role_coding = Coding {
        system: acc
            .nhs
            .role_code
            .as_ref()
            .map(|_| SDS_JOB_ROLE_SYSTEM.to_owned()),
        code: acc.nhs.role_code.clone(),
        display: Some(acc.role.clone()),
    };
    PractitionerRole {
        resource_type: "PractitionerRole",
        id,
        meta: None,
        identifier: acc
            .nhs
            .role_profile_id
            .iter()
            .map(|v| Identifier {
                system: SDS_ROLE_PROFILE_SYSTEM.into(),
                value: v.clone(),
                extension: Vec::new(),
                assigner: None,
            })
            .collect(),
        practitioner: Reference {
            identifier: acc.nhs.sds_user_id.as_ref().map(|v| Identifier {
                system: SDS_USER_SYSTEM.into(),
                value: v.clone(),
                extension: Vec::new(),
                assigner: None,
            }),
            display: Some(acc.user_name.clone()),
            ..Default::default()
        },
        organization: Reference {
            identifier: Some(Identifier {
                system: ODS_SYSTEM.into(),
                value: acc.organisation.to_string(),
                extension: Vec::new(),
                assigner: None,
            }),
            display: Some(acc.organisation_name.clone()),
            ..Default::default()
        },
        code: vec![CodeableConcept {
            coding: vec![role_coding],
            text: Some(acc.role.clone()),
        }],
    }
}

/// An access in the history, in the CP-IS guide's shape: a lifecycle "access" event with the
/// child (agent `PAT`) and the viewer (agent `ASSIGNED`, the included PractitionerRole, also the
/// observer). The care-setting type rides on the viewer's agent role. For a sensitive child the
/// viewer is withheld and the event labelled restricted.
pub fn audit_event(canon: &Canonical, nhs: NhsNumber, a: &Access, sensitive: bool) -> AuditEvent {
    let viewer = format!("PractitionerRole/{}", practitioner_role_id(a, sensitive));
    let setting = a
        .accessor
        .setting_type
        .filter(|_| !sensitive)
        .map(|s| CodeableConcept {
            coding: vec![Coding::new(
                &canon.setting_type_system(),
                s.code(),
                s.code(),
            )],
            text: None,
        });
    AuditEvent {
        resource_type: "AuditEvent",
        id: a.id.clone(),
        meta: restricted(sensitive),
        type_: Coding::new(LIFECYCLE, "access", "Access/View Record Lifecycle Event"),
        action: "R",
        recorded: instant(a.time),
        agent: vec![
            AuditEventAgent {
                type_: Some(CodeableConcept {
                    coding: vec![Coding::new(ROLE_CLASS, "PAT", "patient")],
                    text: None,
                }),
                role: Vec::new(),
                who: Reference {
                    reference: Some(format!("Patient/{}", patient_id(nhs))),
                    identifier: Some(nhs_identifier(nhs)),
                    display: None,
                },
                requestor: false,
            },
            AuditEventAgent {
                type_: Some(CodeableConcept {
                    coding: vec![Coding::new(ROLE_CLASS, "ASSIGNED", "assigned entity")],
                    text: None,
                }),
                role: setting.into_iter().collect(),
                who: Reference {
                    reference: Some(viewer.clone()),
                    ..Default::default()
                },
                requestor: true,
            },
        ],
        source: AuditEventSource {
            observer: Reference {
                reference: Some(viewer),
                ..Default::default()
            },
        },
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
