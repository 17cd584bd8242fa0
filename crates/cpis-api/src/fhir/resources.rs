//! The few FHIR R4 resources cpis serves, as small hand-written structs (JSON only).

use serde::Serialize;

#[derive(Serialize, Debug, Clone, Default)]
pub struct Coding {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Coding {
    pub fn new(system: &str, code: &str, display: &str) -> Self {
        Coding {
            system: Some(system.into()),
            code: Some(code.into()),
            display: Some(display.into()),
        }
    }
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct CodeableConcept {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl CodeableConcept {
    pub fn text(text: &str) -> Self {
        CodeableConcept {
            coding: Vec::new(),
            text: Some(text.into()),
        }
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct Identifier {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    pub system: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigner: Option<Box<Reference>>,
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct Reference {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct Period {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct ContactPoint {
    pub system: &'static str,
    pub value: String,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_codeable_concept: Option<CodeableConcept>,
}

impl Extension {
    pub fn date(url: &str, date: &str) -> Self {
        Extension {
            url: url.into(),
            value_date: Some(date.into()),
            value_codeable_concept: None,
        }
    }

    pub fn codeable(url: &str, coding: Coding) -> Self {
        Extension {
            url: url.into(),
            value_date: None,
            value_codeable_concept: Some(CodeableConcept {
                coding: vec![coding],
                text: None,
            }),
        }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct HumanName {
    #[serde(rename = "use")]
    pub use_: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct Meta {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security: Vec<Coding>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Annotation {
    pub text: String,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub resource_type: &'static str,
    pub id: String,
    pub identifier: Vec<Identifier>,
    pub active: bool,
    #[serde(rename = "type")]
    pub type_: Vec<CodeableConcept>,
    pub name: String,
    pub telecom: Vec<ContactPoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contact: Vec<OrganizationContact>,
}

#[derive(Serialize, Debug, Clone)]
pub struct OrganizationContact {
    pub purpose: CodeableConcept,
    pub telecom: Vec<ContactPoint>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub resource_type: &'static str,
    pub id: String,
    pub identifier: Vec<Identifier>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub name: Vec<HumanName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PractitionerRole {
    pub resource_type: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    pub practitioner: Reference,
    pub organization: Reference,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<CodeableConcept>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CareTeamParticipant {
    pub role: Vec<CodeableConcept>,
    pub member: Reference,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct CareTeam {
    pub resource_type: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    pub status: &'static str,
    pub category: Vec<CodeableConcept>,
    pub name: String,
    pub subject: Reference,
    pub period: Period,
    pub participant: Vec<CareTeamParticipant>,
    pub managing_organization: Vec<Reference>,
    pub telecom: Vec<ContactPoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub note: Vec<Annotation>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventAgent {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<CodeableConcept>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub role: Vec<CodeableConcept>,
    pub who: Reference,
    pub requestor: bool,
}

#[derive(Serialize, Debug, Clone)]
pub struct AuditEventSource {
    pub observer: Reference,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub resource_type: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(rename = "type")]
    pub type_: Coding,
    pub action: &'static str,
    pub recorded: String,
    pub agent: Vec<AuditEventAgent>,
    pub source: AuditEventSource,
}

#[derive(Serialize, Debug, Clone)]
pub struct BundleLink {
    pub relation: &'static str,
    pub url: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct BundleSearch {
    pub mode: &'static str,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry {
    pub full_url: String,
    /// The resource's JSON as its own type wrote it (fields in declaration order,
    /// `resourceType` first), not a `serde_json::Value` built only to be written out.
    pub resource: Box<serde_json::value::RawValue>,
    pub search: BundleSearch,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub resource_type: &'static str,
    pub id: String,
    pub meta: BundleMeta,
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub total: usize,
    pub link: Vec<BundleLink>,
    /// FHIR JSON has no empty arrays: an empty searchset has no `entry` at all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<BundleEntry>,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct BundleMeta {
    pub last_updated: String,
}
