//! NHS CIS2 claims: who a person is and what their **selected role** lets them do.
//!
//! CIS2 (NHS Care Identity Service 2, an OpenID Connect provider) lists a person's national RBAC
//! roles in the `nhsid_nrbac_roles` claim (the ID token, or the userinfo endpoint with the
//! `nationalrbacaccess` scope): one object per role with `person_roleid` (the SDS role profile
//! id), `org_code` (the ODS code of the organisation the role is held at), `role_code`
//! (`S…:G…:R…`, the job role code last) and `activity_codes` (national RBAC activities, `B…`).
//! `selected_roleid` names the role the person chose for this session. cpis reads only that role:
//! B0107 gives `cpis:view-notify`, B0170 `cpis:view-silent`, and the organisation is its
//! `org_code`. Assurance: `id_assurance_level` and `authentication_assurance_level` (1–3); the
//! lower of the two is the sign-in's level, and clinical lookups need at least the configured
//! minimum (3, a smartcard or equivalent, by default).

use cpis_domain::{NhsIdentity, Permission, Permissions, WorkContact};
use serde_json::Value;

/// National RBAC activity "Access CP-IS information, notifying" → `cpis:view-notify`.
pub const ACTIVITY_VIEW_NOTIFY: &str = "B0107";
/// National RBAC activity "Access CP-IS information silently" → `cpis:view-silent`.
pub const ACTIVITY_VIEW_SILENT: &str = "B0170";

/// How CIS2 claims are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cis2Rules {
    /// The lowest assurance level (1–3) at which a person may look children up [default: 3].
    #[serde(default = "default_level")]
    pub min_assurance_for_lookups: u8,
}

fn default_level() -> u8 {
    3
}

impl Default for Cis2Rules {
    fn default() -> Self {
        Cis2Rules {
            min_assurance_for_lookups: default_level(),
        }
    }
}

/// What CIS2 asserts about a person, as cpis uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cis2Person {
    pub nhs: NhsIdentity,
    /// The selected role's organisation (ODS code, not yet checked against the directory).
    pub organisation: String,
    /// From the selected role's activity codes; empty when it has neither B0107 nor B0170.
    pub permissions: Permissions,
    /// The role's name as CIS2 gives it, for display and the audit.
    pub role_name: String,
    pub name: String,
    /// The lower of identity and authentication assurance; 0 when either is missing.
    pub assurance_level: u8,
    /// The work contact (`phone_number`, `email`; the token's, else userinfo's).
    pub contact: WorkContact,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Cis2Error {
    #[error("no nhsid_nrbac_roles claim")]
    NoRoles,
    #[error("no selected_roleid: the person has not selected a role")]
    NoSelectedRole,
    #[error("the selected role is not among the person's roles")]
    SelectedRoleNotFound,
    #[error("the selected role has no org_code")]
    NoOrganisation,
    #[error("no subject (sub or uid)")]
    NoSubject,
}

/// Reads an assurance level claim: `3`, `"3"`, `"AAL3"`, `"IAL3"` all mean 3.
fn level(v: Option<&Value>) -> Option<u8> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        Value::String(s) => s
            .trim()
            .trim_start_matches(|c: char| c.is_ascii_alphabetic())
            .parse()
            .ok(),
        _ => None,
    }
}

/// The job role code of a CIS2 `role_code` (`S8000:G8000:R8000` → `R8000`).
pub fn job_role_code(role_code: &str) -> Option<String> {
    role_code
        .split(':')
        .map(str::trim)
        .rfind(|p| p.starts_with('R') && p.len() > 1)
        .map(str::to_owned)
}

fn text(v: &Value, name: &str) -> Option<String> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Whether these claims carry the roles (else the userinfo endpoint is asked).
pub fn has_roles(claims: &Value) -> bool {
    claims.get("nhsid_nrbac_roles").is_some_and(Value::is_array)
}

/// Maps CIS2 claims to a person. `claims` are the token's; `userinfo`, when given, supplies
/// the roles (and the selected role, names and ids) the token lacks.
pub fn person(claims: &Value, userinfo: Option<&Value>) -> Result<Cis2Person, Cis2Error> {
    let either = |name: &str| -> Option<&Value> {
        claims
            .get(name)
            .filter(|v| !v.is_null())
            .or_else(|| userinfo.and_then(|u| u.get(name)).filter(|v| !v.is_null()))
    };
    let either_text =
        |name: &str| text(claims, name).or_else(|| userinfo.and_then(|u| text(u, name)));
    let roles = either("nhsid_nrbac_roles")
        .and_then(Value::as_array)
        .ok_or(Cis2Error::NoRoles)?;
    let selected = either_text("selected_roleid").ok_or(Cis2Error::NoSelectedRole)?;
    let role = roles
        .iter()
        .find(|r| text(r, "person_roleid").as_deref() == Some(selected.as_str()))
        .ok_or(Cis2Error::SelectedRoleNotFound)?;
    let organisation = text(role, "org_code").ok_or(Cis2Error::NoOrganisation)?;
    let activities: Vec<&str> = role
        .get("activity_codes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::trim).collect())
        .unwrap_or_default();
    let mut permissions = Vec::new();
    if activities.contains(&ACTIVITY_VIEW_NOTIFY) {
        permissions.push(Permission::ViewNotify);
    }
    if activities.contains(&ACTIVITY_VIEW_SILENT) {
        permissions.push(Permission::ViewSilent);
    }
    let sds_user_id = either_text("nhsid_useruid")
        .or_else(|| either_text("uid"))
        .or_else(|| text(claims, "sub"))
        .ok_or(Cis2Error::NoSubject)?;
    let role_code = text(role, "role_code");
    let assurance_level = match (
        level(either("id_assurance_level")),
        level(either("authentication_assurance_level")),
    ) {
        (Some(i), Some(a)) => i.min(a),
        _ => 0,
    };
    let name = either_text("name").unwrap_or_else(|| sds_user_id.clone());
    Ok(Cis2Person {
        nhs: NhsIdentity {
            sds_user_id: Some(sds_user_id),
            role_profile_id: Some(selected),
            role_code: role_code.as_deref().and_then(job_role_code),
        },
        organisation,
        permissions: Permissions::new(permissions),
        role_name: text(role, "role_name")
            .map(|n| n.replace('"', ""))
            .or(role_code)
            .unwrap_or_else(|| "CIS2 role".into()),
        name,
        assurance_level,
        contact: WorkContact::from_claims(
            either_text("phone_number").as_deref(),
            either_text("email").as_deref(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims() -> Value {
        json!({
            "sub": "555254242106",
            "name": "Dr Ada Smartcard",
            "id_assurance_level": "3",
            "authentication_assurance_level": "3",
            "selected_roleid": "555254243107",
            "nhsid_nrbac_roles": [
                {
                    "person_orgid": "555254240100",
                    "person_roleid": "555254243100",
                    "org_code": "RGP01",
                    "role_name": "\"Admin & Clerical\":\"Receptionist\"",
                    "role_code": "S8002:G8003:R8009",
                    "activity_codes": ["B0264", "B0107"]
                },
                {
                    "person_orgid": "555254240101",
                    "person_roleid": "555254243107",
                    "org_code": "RDEMO01",
                    "role_name": "\"Clinical\":\"Clinical Provision\":\"Clinical Practitioner Access Role\"",
                    "role_code": "S8000:G8000:R8000",
                    "activity_codes": ["B0380", "B0107", "B0170"]
                }
            ]
        })
    }

    #[test]
    fn the_selected_role_gives_the_organisation_and_permissions() {
        let p = person(&claims(), None).unwrap();
        assert_eq!(
            p.organisation, "RDEMO01",
            "not the first role's organisation"
        );
        assert!(p.permissions.contains(Permission::ViewNotify));
        assert!(p.permissions.contains(Permission::ViewSilent));
        assert_eq!(p.nhs.sds_user_id.as_deref(), Some("555254242106"));
        assert_eq!(p.nhs.role_profile_id.as_deref(), Some("555254243107"));
        assert_eq!(p.nhs.role_code.as_deref(), Some("R8000"));
        assert_eq!(p.assurance_level, 3);
        assert_eq!(
            p.role_name,
            "Clinical:Clinical Provision:Clinical Practitioner Access Role"
        );

        // Selecting the receptionist role: that role's organisation and only its codes.
        let mut c = claims();
        c["selected_roleid"] = json!("555254243100");
        let p = person(&c, None).unwrap();
        assert_eq!(p.organisation, "RGP01");
        assert!(p.permissions.contains(Permission::ViewNotify));
        assert!(!p.permissions.contains(Permission::ViewSilent));
        assert_eq!(p.nhs.role_code.as_deref(), Some("R8009"));
    }

    #[test]
    fn a_role_with_neither_activity_grants_nothing() {
        let mut c = claims();
        c["nhsid_nrbac_roles"][1]["activity_codes"] = json!(["B0380", "B1070", "B01070"]);
        let p = person(&c, None).unwrap();
        assert!(p.permissions.is_empty(), "{:?}", p.permissions);
        c["nhsid_nrbac_roles"][1]
            .as_object_mut()
            .unwrap()
            .remove("activity_codes");
        assert!(person(&c, None).unwrap().permissions.is_empty());
    }

    #[test]
    fn no_selected_or_unknown_selected_role_is_refused() {
        let mut c = claims();
        c["selected_roleid"] = json!("999999999999");
        assert_eq!(person(&c, None), Err(Cis2Error::SelectedRoleNotFound));
        c.as_object_mut().unwrap().remove("selected_roleid");
        assert_eq!(person(&c, None), Err(Cis2Error::NoSelectedRole));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("nhsid_nrbac_roles");
        assert_eq!(person(&c, None), Err(Cis2Error::NoRoles));
        let mut c = claims();
        c["nhsid_nrbac_roles"][1]
            .as_object_mut()
            .unwrap()
            .remove("org_code");
        assert_eq!(person(&c, None), Err(Cis2Error::NoOrganisation));
    }

    #[test]
    fn roles_can_come_from_userinfo() {
        let full = claims();
        let token = json!({"sub": "555254242106", "id_assurance_level": 3,
                           "authentication_assurance_level": "AAL3"});
        assert!(!has_roles(&token));
        let userinfo = json!({
            "sub": "555254242106",
            "nhsid_useruid": "555254242106",
            "name": "Dr Ada Smartcard",
            "selected_roleid": full["selected_roleid"],
            "nhsid_nrbac_roles": full["nhsid_nrbac_roles"],
        });
        let p = person(&token, Some(&userinfo)).unwrap();
        assert_eq!(p.organisation, "RDEMO01");
        assert_eq!(p.assurance_level, 3);
        assert_eq!(p.name, "Dr Ada Smartcard");
    }

    #[test]
    fn assurance_is_the_lower_level_and_missing_is_zero() {
        let mut c = claims();
        c["authentication_assurance_level"] = json!("1");
        assert_eq!(person(&c, None).unwrap().assurance_level, 1);
        c["authentication_assurance_level"] = json!(2);
        c["id_assurance_level"] = json!("IAL3");
        assert_eq!(person(&c, None).unwrap().assurance_level, 2);
        c.as_object_mut()
            .unwrap()
            .remove("authentication_assurance_level");
        assert_eq!(person(&c, None).unwrap().assurance_level, 0);
    }

    #[test]
    fn the_work_contact_comes_from_the_token_or_userinfo_and_bad_values_are_left_out() {
        let mut c = claims();
        assert!(person(&c, None).unwrap().contact.is_empty());
        c["phone_number"] = json!("+44 7700 900123");
        c["email"] = json!("ada.smartcard@nhs.net");
        let p = person(&c, None).unwrap();
        assert_eq!(
            p.contact.phone.map(|p| p.tel_uri()).as_deref(),
            Some("tel:+447700900123")
        );
        assert_eq!(
            p.contact.email.as_ref().map(|e| e.as_str()),
            Some("ada.smartcard@nhs.net")
        );
        c["phone_number"] = json!("bleep 4021");
        let p = person(&c, None).unwrap();
        assert_eq!(p.contact.phone, None, "not a phone number: left out");
        assert!(p.contact.email.is_some());
        let token = claims();
        let userinfo = json!({"sub": "555254242106", "email": "from.userinfo@nhs.net"});
        let p = person(&token, Some(&userinfo)).unwrap();
        assert_eq!(
            p.contact.email.as_ref().map(|e| e.as_str()),
            Some("from.userinfo@nhs.net")
        );
    }

    #[test]
    fn job_role_codes() {
        assert_eq!(job_role_code("S8000:G8000:R8000").as_deref(), Some("R8000"));
        assert_eq!(job_role_code("R8001").as_deref(), Some("R8001"));
        assert_eq!(job_role_code("S8000:G8000"), None);
        assert_eq!(job_role_code(""), None);
    }
}
