//! An authenticated caller.

use cpis_domain::{
    AuditActor, NhsIdentity, OdsCode, Permission, Permissions, PhoneNumber, SettingType,
    WorkContact,
};

/// What kind of organisation the caller belongs to, from the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgKind {
    LocalAuthority,
    CareSetting(SettingType),
    /// Neither (the service's own operators, national systems).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ApiToken,
    Session,
    Jwt,
    /// An access token issued at `POST /oauth2/token` to an application-restricted client
    /// (signed-JWT client credentials): a system, no person.
    ClientCredentials,
    /// A local operator using the CLI with direct database access.
    Operator,
}

/// Someone authenticated. Only this crate makes principals.
#[derive(Debug, Clone)]
pub struct Principal {
    pub(crate) user_id: String,
    pub(crate) display_name: String,
    pub(crate) role: String,
    pub(crate) organisation: OdsCode,
    pub(crate) organisation_name: String,
    /// A care setting's contact number from the directory.
    pub(crate) organisation_phone: Option<PhoneNumber>,
    pub(crate) org_kind: OrgKind,
    pub(crate) permissions: Permissions,
    pub(crate) method: AuthMethod,
    /// The person's NHS identity (SDS user id, selected role) when NHS CIS2 authenticated them;
    /// empty for local accounts, API tokens and systems.
    pub(crate) nhs: NhsIdentity,
    /// The person's work contact, where the identity provider gives it (OpenID Connect
    /// `phone_number` and `email`); empty for local accounts, API tokens and systems.
    pub(crate) contact: WorkContact,
    /// For a CIS2 sign-in: its assurance level and the level clinical lookups need.
    pub(crate) assurance: Option<Assurance>,
    /// For an application-restricted client: whether an operator registered it for unattended
    /// clinical lookups.
    pub(crate) unattended_lookups: bool,
}

/// A sign-in's assurance level against what clinical lookups need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assurance {
    pub level: u8,
    pub required_for_lookups: u8,
}

impl Principal {
    /// A local operator at the command line. Whoever runs the CLI already holds the database, so
    /// this grants nothing they could not do anyway; it exists so the CLI goes through the same
    /// capability checks as every other channel.
    pub fn local_operator(
        user: &str,
        organisation: OdsCode,
        organisation_name: &str,
        org_kind: OrgKind,
        permissions: Permissions,
    ) -> Self {
        Principal {
            user_id: format!("operator:{user}"),
            display_name: user.to_owned(),
            role: "Operator".into(),
            organisation,
            organisation_name: organisation_name.to_owned(),
            organisation_phone: None,
            org_kind,
            permissions,
            method: AuthMethod::Operator,
            nhs: NhsIdentity::default(),
            contact: WorkContact::default(),
            assurance: None,
            unattended_lookups: false,
        }
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }
    pub fn display_name(&self) -> &str {
        &self.display_name
    }
    pub fn role(&self) -> &str {
        &self.role
    }
    pub fn organisation(&self) -> &OdsCode {
        &self.organisation
    }
    pub fn organisation_name(&self) -> &str {
        &self.organisation_name
    }
    pub fn org_kind(&self) -> &OrgKind {
        &self.org_kind
    }
    pub fn permissions(&self) -> &Permissions {
        &self.permissions
    }
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(p)
    }
    pub fn method(&self) -> AuthMethod {
        self.method
    }
    /// The NHS CIS2 identity (empty unless CIS2 authenticated this caller).
    pub fn nhs(&self) -> &NhsIdentity {
        &self.nhs
    }
    /// The work contact the identity provider asserted (empty otherwise).
    pub fn contact(&self) -> &WorkContact {
        &self.contact
    }
    /// The care setting's contact number (directory).
    pub fn organisation_phone(&self) -> Option<&PhoneNumber> {
        self.organisation_phone.as_ref()
    }
    /// The CIS2 sign-in's assurance (None for other sign-ins).
    pub fn assurance(&self) -> Option<Assurance> {
        self.assurance
    }

    /// How the audit names this caller.
    pub fn audit_actor(&self) -> AuditActor {
        AuditActor {
            id: self.user_id.clone(),
            name: self.display_name.clone(),
            organisation: Some(self.organisation.to_string()),
            role: format!("{} [{}]", self.role, self.permissions),
        }
    }
}
