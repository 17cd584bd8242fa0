//! Turning credentials into a [`Principal`]: API tokens, session cookies, JWTs, and password
//! logins (with lockout). Failures are audited; they all look alike to the caller.

use crate::jwt::{JwtIdentity, JwtVerifier};
use crate::principal::{Assurance, AuthMethod, OrgKind, Principal};
use crate::{password, secret};
use chrono::{DateTime, Duration, Utc};
use cpis_domain::{AuditActor, AuditEntry, Clock, OdsCode, Permissions, PhoneNumber, WorkContact};
use cpis_store::{Session, Store, StoreError, User, UserKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// An organisation as the directory knows it: kind, name, and a care setting's contact number.
type Org = (OrgKind, String, Option<PhoneNumber>);

#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Consecutive failed logins that lock an account.
    pub max_failures: u32,
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 5,
            lock_for: Duration::minutes(15),
        }
    }
}

/// Why authentication failed. The HTTP layer answers 401 for all but `Unavailable`, with one
/// message, so a caller cannot tell an unknown user from a wrong password or a locked account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no credentials")]
    Missing,
    #[error("credentials not recognised")]
    Invalid,
    #[error("account disabled")]
    Disabled,
    #[error("account locked after repeated failures")]
    Locked,
    #[error("authentication temporarily unavailable")]
    Unavailable,
}

impl From<StoreError> for AuthFailure {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "authentication store error");
        AuthFailure::Unavailable
    }
}

/// A session just created: the cookie value goes to the browser, only its digest is stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub cookie_value: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Usernames of people who sign in through the identity provider: `oidc:<subject>`. Local
/// usernames cannot contain `:`, so the two never meet.
pub const OIDC_USER_PREFIX: &str = "oidc:";

/// Usernames of the system identities application-restricted clients act as:
/// `client:<client id>` (`crate::clients`).
pub const CLIENT_USER_PREFIX: &str = "client:";

/// Resolved token → principal, kept briefly so busy systems do not hit the store per request.
const TOKEN_CACHE_SECONDS: i64 = 10;

pub struct Authenticator {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    jwt: Option<JwtVerifier>,
    lockout: LockoutPolicy,
    session_ttl: Duration,
    token_cache: Mutex<HashMap<String, (DateTime<Utc>, Principal)>>,
}

impl Authenticator {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        jwt: Option<JwtVerifier>,
        lockout: LockoutPolicy,
    ) -> Self {
        Authenticator {
            store,
            clock,
            jwt,
            lockout,
            session_ttl: Duration::hours(8),
            token_cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn audit_failure(
        &self,
        action: &str,
        actor: AuditActor,
        why: &AuthFailure,
        trace: Option<&str>,
    ) {
        if *why == AuthFailure::Unavailable {
            return;
        }
        self.audit_denied(action, actor, why.to_string(), trace);
    }

    /// Appends a denied authentication entry; a store failure is logged, not raised (the caller
    /// is refusing someone anyway).
    fn audit_denied(&self, action: &str, actor: AuditActor, detail: String, trace: Option<&str>) {
        let entry = AuditEntry::new(self.clock.now(), actor, action, trace.map(str::to_owned))
            .denied()
            .detail(detail);
        if let Err(e) = self.store.append_audit(&entry) {
            tracing::warn!(error = %e, "could not audit an authentication failure");
        }
    }

    /// Resolves the organisation kind, name and (care settings) contact number from the
    /// directory.
    fn org(&self, ods: &OdsCode) -> Result<Org, AuthFailure> {
        if let Some(la) = self.store.local_authority(ods)? {
            return Ok((OrgKind::LocalAuthority, la.name, None));
        }
        if let Some(cs) = self.store.care_setting(ods)? {
            return Ok((OrgKind::CareSetting(cs.setting_type), cs.name, cs.phone));
        }
        Ok((OrgKind::Other, ods.to_string(), None))
    }

    fn principal(&self, user: &User, method: AuthMethod) -> Result<Principal, AuthFailure> {
        if user.disabled {
            return Err(AuthFailure::Disabled);
        }
        let (org_kind, organisation_name, organisation_phone) = self.org(&user.organisation)?;
        let mut p = Principal {
            user_id: user.username.clone(),
            display_name: user.display_name.clone(),
            role: user.role.clone(),
            organisation: user.organisation.clone(),
            organisation_name,
            organisation_phone,
            org_kind,
            permissions: user.permissions.clone(),
            method,
            nhs: Default::default(),
            contact: Default::default(),
            assurance: None,
            unattended_lookups: false,
        };
        // A token of an application-restricted client's identity is application-only.
        if let Some(client_id) = user.username.strip_prefix(CLIENT_USER_PREFIX) {
            if method == AuthMethod::ApiToken {
                p.method = AuthMethod::ClientCredentials;
                p.unattended_lookups = self
                    .store
                    .oauth_client(client_id)?
                    .is_some_and(|(c, _)| c.allow_unattended_lookups);
            }
        }
        Ok(p)
    }

    /// The assurance level clinical lookups need from a CIS2 sign-in.
    fn required_assurance(&self) -> u8 {
        self.jwt
            .as_ref()
            .and_then(JwtVerifier::cis2_rules)
            .unwrap_or_default()
            .min_assurance_for_lookups
    }

    fn assurance(&self, level: Option<u8>) -> Option<Assurance> {
        level.map(|level| Assurance {
            level,
            required_for_lookups: self.required_assurance(),
        })
    }

    /// `Authorization: Bearer …`: an API token, or a JWT when an identity provider is configured.
    /// A failure is audited.
    pub fn bearer(&self, token: &str, trace: Option<&str>) -> Result<Principal, AuthFailure> {
        let result = self.verify_bearer(token);
        if let Err(why) = &result {
            self.audit_failure("auth.bearer", AuditActor::anonymous(), why, trace);
        }
        result
    }

    /// Audits a failed bearer authentication from `address` (the HTTP edge decides, with its
    /// [`crate::failure_throttle::FailureThrottle`], which failures are written one by one).
    pub fn audit_bearer_failure(&self, why: &AuthFailure, address: &str, trace: Option<&str>) {
        if *why == AuthFailure::Unavailable {
            return;
        }
        self.audit_denied(
            "auth.bearer",
            AuditActor::anonymous(),
            format!("{why} (from {address})"),
            trace,
        );
    }

    /// Audits failures that were counted rather than written one by one: one entry for them all.
    pub fn audit_counted_failures(&self, counted: &crate::failure_throttle::CountedFailures) {
        let entry = AuditEntry::new(counted.to, AuditActor::anonymous(), "auth.failures", None).denied().detail(format!(
                "{} further failed authentications from {} between {} and {} (counted, not written one by one)",
                counted.count,
                counted.address,
                counted.from.to_rfc3339(),
                counted.to.to_rfc3339()
            ));
        if let Err(e) = self.store.append_audit(&entry) {
            tracing::warn!(error = %e, "could not audit counted authentication failures");
        }
    }

    /// Checks a bearer credential without auditing a failure.
    pub fn verify_bearer(&self, token: &str) -> Result<Principal, AuthFailure> {
        if token.is_empty() || token.len() > 8192 {
            return Err(AuthFailure::Invalid);
        }
        if let (Some(jwt), true) = (&self.jwt, JwtVerifier::looks_like_jwt(token)) {
            let id = jwt.verify(token).map_err(|_| AuthFailure::Invalid)?;
            let organisation =
                OdsCode::parse(&id.organisation).map_err(|_| AuthFailure::Invalid)?;
            let permissions =
                Permissions::parse(&id.permissions).map_err(|_| AuthFailure::Invalid)?;
            let (org_kind, organisation_name, organisation_phone) = self.org(&organisation)?;
            return Ok(Principal {
                user_id: format!("jwt:{}", id.subject),
                display_name: id.name,
                role: id.role,
                organisation,
                organisation_name,
                organisation_phone,
                org_kind,
                permissions,
                method: AuthMethod::Jwt,
                assurance: self.assurance(id.assurance_level),
                nhs: id.nhs,
                contact: id.contact,
                unattended_lookups: false,
            });
        }
        let digest = secret::digest(token);
        let now = self.clock.now();
        if let Some(p) = self.cached(&digest, now) {
            return Ok(p);
        }
        let user = self
            .store
            .user_by_token_hash(&digest, now)?
            .ok_or(AuthFailure::Invalid)?;
        let p = self.principal(&user, AuthMethod::ApiToken)?;
        let mut cache = self
            .token_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(digest, (now, p.clone()));
        Ok(p)
    }

    fn cached(&self, digest: &str, now: DateTime<Utc>) -> Option<Principal> {
        self.token_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .filter(|(at, _)| (now - *at).num_seconds().abs() < TOKEN_CACHE_SECONDS)
            .map(|(_, p)| p.clone())
    }

    /// The principal of an API token resolved in the last few seconds, without touching the
    /// store (so callers on an async runtime can skip a blocking hop). `None`: call [`Self::bearer`].
    pub fn bearer_cached(&self, token: &str) -> Option<Principal> {
        if JwtVerifier::looks_like_jwt(token) && self.jwt.is_some() {
            return None;
        }
        self.cached(&secret::digest(token), self.clock.now())
    }

    /// A password login. Locks the account after `max_failures` consecutive failures.
    pub fn login(
        &self,
        username: &str,
        pass: &str,
        trace: Option<&str>,
    ) -> Result<(Principal, NewSession), AuthFailure> {
        let now = self.clock.now();
        let actor = AuditActor {
            id: username.chars().take(64).collect(),
            name: username.chars().take(64).collect(),
            organisation: None,
            role: String::new(),
        };
        let Some(mut user) = self.store.user_by_username(username)? else {
            password::dummy_verify(pass);
            let why = AuthFailure::Invalid;
            self.audit_failure("auth.login", actor, &why, trace);
            return Err(why);
        };
        let fail = |why: AuthFailure| {
            self.audit_failure(
                "auth.login",
                AuditActor {
                    id: user.username.clone(),
                    name: user.display_name.clone(),
                    organisation: Some(user.organisation.to_string()),
                    role: user.role.clone(),
                },
                &why,
                trace,
            );
            Err(why)
        };
        if user.locked_until.is_some_and(|t| t > now) {
            password::dummy_verify(pass);
            return fail(AuthFailure::Locked);
        }
        let ok = user
            .password_hash
            .as_deref()
            .is_some_and(|h| password::verify(h, pass));
        if !ok {
            // Counted in the store, atomically: parallel guesses cannot overwrite each other's
            // count (a read-modify-write here let 90 guesses sent 30 at a time through).
            self.store.record_login_failure(
                &user.id,
                self.lockout.max_failures,
                now + self.lockout.lock_for,
                now,
            )?;
            return fail(AuthFailure::Invalid);
        }
        if user.disabled {
            return fail(AuthFailure::Disabled);
        }
        // A guess that failed in parallel may have locked the account since it was read above.
        if !self.store.clear_login_failures(&user.id, now)? {
            return fail(AuthFailure::Locked);
        }
        user.failed_logins = 0;
        user.locked_until = None;
        self.start_session(&user, now, None, None, &WorkContact::default(), trace)
    }

    /// A session for `user`, who has just proved who they are; audited as `auth.login`.
    fn start_session(
        &self,
        user: &User,
        now: DateTime<Utc>,
        detail: Option<&str>,
        cis2: Option<(&cpis_domain::NhsIdentity, u8)>,
        contact: &WorkContact,
        trace: Option<&str>,
    ) -> Result<(Principal, NewSession), AuthFailure> {
        let mut principal = self.principal(user, AuthMethod::Session)?;
        principal.contact = contact.clone();
        if let Some((nhs, level)) = cis2 {
            principal.nhs = nhs.clone();
            principal.assurance = self.assurance(Some(level));
        }
        let session = NewSession {
            cookie_value: secret::random(),
            csrf_token: secret::random(),
            expires_at: now + self.session_ttl,
        };
        self.store.create_session(&Session {
            id_hash: secret::digest(&session.cookie_value),
            user_id: user.id.clone(),
            csrf_token: session.csrf_token.clone(),
            created_at: now,
            expires_at: session.expires_at,
            nhs: principal.nhs.clone(),
            assurance_level: cis2.map(|(_, level)| level),
            contact: principal.contact.clone(),
        })?;
        self.store.append_audit(
            &AuditEntry::new(
                now,
                principal.audit_actor(),
                "auth.login",
                trace.map(str::to_owned),
            )
            .detail_opt(detail.map(str::to_owned)),
        )?;
        Ok((principal, session))
    }

    /// Audits a browser sign-in through the identity provider that failed before anyone was
    /// identified (state mismatch, provider refusal, a rejected ID token).
    pub fn refuse_oidc(&self, why: &crate::oidc::OidcError, trace: Option<&str>) {
        self.audit_denied(
            "auth.login",
            AuditActor::anonymous(),
            format!("oidc: {why}"),
            trace,
        );
    }

    /// A browser sign-in through the identity provider (`crate::oidc`), whose ID token has been
    /// verified. The person becomes (or stays) the user `oidc:<subject>`: created on first sign-in
    /// and refreshed from the token's claims each time, so the provider stays the source of their
    /// organisation, role and permissions; an administrator can still disable them in cpis.
    pub fn login_oidc(
        &self,
        identity: &JwtIdentity,
        trace: Option<&str>,
    ) -> Result<(Principal, NewSession), AuthFailure> {
        let now = self.clock.now();
        let username = format!("{OIDC_USER_PREFIX}{}", identity.subject);
        let actor = AuditActor {
            id: username.chars().take(128).collect(),
            name: identity.name.chars().take(64).collect(),
            organisation: Some(identity.organisation.chars().take(16).collect()),
            role: identity.role.chars().take(64).collect(),
        };
        let claims = (
            OdsCode::parse(&identity.organisation),
            Permissions::parse(&identity.permissions),
        );
        let (Ok(organisation), Ok(permissions), true) = (
            claims.0,
            claims.1,
            (1..=128).contains(&identity.subject.len()),
        ) else {
            let why = AuthFailure::Invalid;
            self.audit_failure("auth.login", actor, &why, trace);
            return Err(why);
        };
        // NHS CIS2: a person whose selected role carries neither CP-IS activity has nothing to
        // do here.
        if identity.assurance_level.is_some() && permissions.is_empty() {
            self.audit_denied(
                "auth.login",
                actor,
                format!(
                    "oidc: NHS CIS2 selected role {} grants neither {} nor {}",
                    identity.nhs.role_profile_id.as_deref().unwrap_or("?"),
                    crate::cis2::ACTIVITY_VIEW_NOTIFY,
                    crate::cis2::ACTIVITY_VIEW_SILENT
                ),
                trace,
            );
            return Err(AuthFailure::Invalid);
        }
        let user = match self.store.user_by_username(&username)? {
            Some(mut user) => {
                if user.disabled {
                    let why = AuthFailure::Disabled;
                    self.audit_failure("auth.login", actor, &why, trace);
                    return Err(why);
                }
                user.display_name = identity.name.clone();
                user.organisation = organisation;
                user.role = identity.role.clone();
                user.permissions = permissions;
                self.store.update_user(&user, now)?;
                user
            }
            None => {
                let user = User {
                    id: uuid::Uuid::new_v4().to_string(),
                    username,
                    display_name: identity.name.clone(),
                    kind: UserKind::User,
                    organisation,
                    role: identity.role.clone(),
                    permissions,
                    password_hash: None,
                    disabled: false,
                    failed_logins: 0,
                    locked_until: None,
                    created_at: now,
                };
                self.store.create_user(&user)?;
                user
            }
        };
        let cis2 = identity.assurance_level.map(|level| (&identity.nhs, level));
        self.start_session(
            &user,
            now,
            Some(if cis2.is_some() {
                "oidc (NHS CIS2)"
            } else {
                "oidc"
            }),
            cis2,
            &identity.contact,
            trace,
        )
    }

    /// The principal behind a session cookie, and the session's CSRF token.
    pub fn session(&self, cookie_value: &str) -> Result<(Principal, String), AuthFailure> {
        if cookie_value.is_empty() || cookie_value.len() > 256 {
            return Err(AuthFailure::Invalid);
        }
        let (session, user) = self
            .store
            .session(&secret::digest(cookie_value), self.clock.now())?
            .ok_or(AuthFailure::Invalid)?;
        let mut principal = self.principal(&user, AuthMethod::Session)?;
        principal.nhs = session.nhs;
        principal.contact = session.contact;
        principal.assurance = self.assurance(session.assurance_level);
        Ok((principal, session.csrf_token))
    }

    pub fn logout(&self, cookie_value: &str) -> Result<(), AuthFailure> {
        self.store.delete_session(&secret::digest(cookie_value))?;
        Ok(())
    }
}
