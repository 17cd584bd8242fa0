//! `Authenticator::login_oidc`: a person vouched for by the identity provider becomes the user
//! `oidc:<subject>` on first sign-in, is refreshed from the token's claims on each sign-in, stays
//! out once an administrator disables them, and unusable claims are refused and audited.

use chrono::{TimeZone, Utc};
use cpis_auth::jwt::JwtIdentity;
use cpis_auth::{users, AuthFailure, Authenticator, LockoutPolicy};
use cpis_domain::{AuditOutcome, FixedClock, Permission};
use cpis_store::{AuditQuery, Store};
use std::sync::Arc;

fn authenticator() -> (Authenticator, Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(cpis_store::sqlite::SqliteStore::open(dir.path().join("cpis.db")).unwrap());
    let clock = Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap(),
    ));
    let auth = Authenticator::new(store.clone(), clock, None, LockoutPolicy::default());
    (auth, store, dir)
}

fn identity(subject: &str, organisation: &str, permissions: &str) -> JwtIdentity {
    JwtIdentity {
        subject: subject.into(),
        name: "Dr Idp Clinician".into(),
        role: "Clinician".into(),
        organisation: organisation.into(),
        permissions: permissions.into(),
        nonce: None,
        ..JwtIdentity::default()
    }
}

fn last_login_audit(store: &dyn Store) -> cpis_domain::AuditRecord {
    store
        .audit_search(&AuditQuery {
            action_prefix: Some("auth.login".into()),
            limit: 1,
            ..AuditQuery::default()
        })
        .unwrap()
        .into_iter()
        .next()
        .expect("an auth.login entry")
}

#[test]
fn first_sign_in_creates_the_user_and_later_ones_refresh_the_claims() {
    let (auth, store, _dir) = authenticator();
    let (principal, session) = auth
        .login_oidc(&identity("5550001", "RDEMO01", "cpis:view-notify"), None)
        .unwrap();
    assert_eq!(principal.user_id(), "oidc:5550001");
    assert_eq!(principal.organisation().as_str(), "RDEMO01");
    assert!(principal.has(Permission::ViewNotify));
    let user = store.user_by_username("oidc:5550001").unwrap().unwrap();
    assert!(user.password_hash.is_none(), "no password to guess");
    // The session works like any other.
    let (again, _) = auth.session(&session.cookie_value).unwrap();
    assert_eq!(again.user_id(), "oidc:5550001");
    let audit = last_login_audit(store.as_ref());
    assert_eq!(audit.entry.outcome, AuditOutcome::Success);
    assert_eq!(audit.entry.detail.as_deref(), Some("oidc"));

    // The provider moved them to an LA role: the next sign-in says so, same account.
    let (principal, _) = auth
        .login_oidc(
            &identity("5550001", "E08000026", "la:upload la:notifications"),
            None,
        )
        .unwrap();
    assert_eq!(principal.organisation().as_str(), "E08000026");
    assert!(principal.has(Permission::LaUpload));
    assert!(!principal.has(Permission::ViewNotify));
    let updated = store.user_by_username("oidc:5550001").unwrap().unwrap();
    assert_eq!(updated.id, user.id);
    assert_eq!(updated.organisation.as_str(), "E08000026");
}

#[test]
fn a_disabled_person_stays_out_and_is_not_re_enabled_by_the_provider() {
    let (auth, store, _dir) = authenticator();
    let who = identity("5550002", "RDEMO01", "cpis:view-notify");
    let (_, session) = auth.login_oidc(&who, None).unwrap();
    users::set_disabled(store.as_ref(), "oidc:5550002", true, Utc::now()).unwrap();
    assert_eq!(
        auth.session(&session.cookie_value).unwrap_err(),
        AuthFailure::Disabled
    );
    assert_eq!(
        auth.login_oidc(&who, None).unwrap_err(),
        AuthFailure::Disabled
    );
    assert!(
        store
            .user_by_username("oidc:5550002")
            .unwrap()
            .unwrap()
            .disabled
    );
    let audit = last_login_audit(store.as_ref());
    assert_eq!(audit.entry.outcome, AuditOutcome::Denied);
    assert_eq!(audit.entry.actor.id, "oidc:5550002");
}

#[test]
fn unusable_claims_are_refused_audited_and_create_no_user() {
    let (auth, store, _dir) = authenticator();
    let cases = [
        (
            identity("5550003", "not an ods code!", "cpis:view-notify"),
            "bad ODS code",
        ),
        (
            identity("5550003", "RDEMO01", "cpis:everything"),
            "unknown permission",
        ),
        (identity("", "RDEMO01", "cpis:view-notify"), "empty subject"),
        (
            identity(&"x".repeat(129), "RDEMO01", "cpis:view-notify"),
            "subject too long",
        ),
    ];
    for (who, what) in cases {
        assert_eq!(
            auth.login_oidc(&who, None).unwrap_err(),
            AuthFailure::Invalid,
            "{what}"
        );
        let audit = last_login_audit(store.as_ref());
        assert_eq!(audit.entry.outcome, AuditOutcome::Denied, "{what}");
    }
    assert!(store.user_by_username("oidc:5550003").unwrap().is_none());
}

#[test]
fn provider_users_cannot_collide_with_local_accounts() {
    let (auth, store, _dir) = authenticator();
    // A local username cannot contain ':', so no local account is ever `oidc:…`.
    let local = users::add(
        store.as_ref(),
        users::NewUser {
            username: "oidc:5550004".into(),
            display_name: "Impostor".into(),
            kind: cpis_store::UserKind::User,
            organisation: cpis_domain::OdsCode::parse("RDEMO01").unwrap(),
            role: "Clinician".into(),
            permissions: cpis_domain::Permissions::new([Permission::Admin]),
            password: Some("correct horse battery staple".into()),
        },
        Utc::now(),
    );
    assert!(matches!(local, Err(users::UserError::BadUsername)));
    let (principal, _) = auth
        .login_oidc(&identity("5550004", "RDEMO01", "cpis:view-notify"), None)
        .unwrap();
    assert!(!principal.has(Permission::Admin));
}

#[test]
fn the_work_contact_and_the_settings_number_reach_the_lookup_accessor_through_the_session() {
    let (auth, store, _dir) = authenticator();
    store
        .upsert_care_settings(
            &[cpis_domain::CareSetting {
                ods_code: cpis_domain::OdsCode::parse("RDEMO01").unwrap(),
                name: "Northfield ED".into(),
                setting_type: cpis_domain::SettingType::EmergencyDepartment,
                phone: Some(cpis_domain::PhoneNumber::parse("0113 496 0001").unwrap()),
            }],
            Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap(),
        )
        .unwrap();
    let with_contact = JwtIdentity {
        contact: cpis_domain::WorkContact::from_claims(
            Some("07700 900123"),
            Some("idp.clinician@nhs.net"),
        ),
        ..identity("5550002", "RDEMO01", "cpis:view-notify")
    };
    let (_, session) = auth.login_oidc(&with_contact, None).unwrap();
    // A later request, from the session cookie alone.
    let (principal, _) = auth.session(&session.cookie_value).unwrap();
    let accessor = principal.lookup().unwrap().accessor().clone();
    assert_eq!(accessor.contact, with_contact.contact);
    assert_eq!(
        accessor
            .organisation_phone
            .map(|p| p.to_string())
            .as_deref(),
        Some("0113 496 0001")
    );
    // A provider that gives no contact: none, and the setting's number still.
    let (_, session) = auth
        .login_oidc(&identity("5550003", "RDEMO01", "cpis:view-notify"), None)
        .unwrap();
    let (principal, _) = auth.session(&session.cookie_value).unwrap();
    let accessor = principal.lookup().unwrap().accessor().clone();
    assert!(accessor.contact.is_empty());
    assert!(accessor.organisation_phone.is_some());
}
