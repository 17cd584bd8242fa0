//! NHS CIS2 tokens against a real HTTP identity provider on loopback (a small server in the
//! test serving OpenID Connect discovery, the JWKS and userinfo): discovery, keys fetched by URL,
//! a key rotation picked up by one refetch, unknown keys refused (and refetches rate-limited),
//! roles read from userinfo, and what the authenticator makes of the claims: the selected role's
//! organisation and activity codes, the NHS identity carried to the lookup's accessor, refusals
//! for a role with neither code and for a sign-in below the assurance lookups need.

use chrono::{TimeZone, Utc};
use cpis_auth::cis2::Cis2Rules;
use cpis_auth::jwks::{discover, FetchPolicy, KeySet};
use cpis_auth::jwt::{JwtConfig, JwtVerifier};
use cpis_auth::{Authenticator, LockoutPolicy};
use cpis_domain::{CareSetting, FixedClock, OdsCode, Permission, SettingType};
use cpis_store::Store;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENT_ID: &str = "cpis-web";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn jwk(name: &str) -> Value {
    serde_json::from_str(&fixture(&format!("rsa-{name}.jwk.json"))).unwrap()
}

/// A provider on loopback: discovery, `/jwks` (whatever `keys` holds now, counted) and
/// `/userinfo` (answers `userinfo` to the bearer token `userinfo_token`).
struct Provider {
    issuer: String,
    keys: Arc<Mutex<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
    userinfo: Arc<Mutex<(String, Value)>>,
}

impl Provider {
    fn start(keys: Vec<Value>) -> Provider {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let p = Provider {
            issuer: issuer.clone(),
            keys: Arc::new(Mutex::new(keys)),
            jwks_fetches: Arc::default(),
            userinfo: Arc::new(Mutex::new((String::new(), json!({})))),
        };
        let (keys, fetches, userinfo) =
            (p.keys.clone(), p.jwks_fetches.clone(), p.userinfo.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut bearer = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            bearer = v.trim().strip_prefix("Bearer ").map(str::to_owned);
                        }
                    }
                }
                let (status, body) = match path.as_str() {
                    "/.well-known/openid-configuration" => (
                        200,
                        json!({
                            "issuer": issuer,
                            "jwks_uri": format!("{issuer}/jwks"),
                            "authorization_endpoint": format!("{issuer}/authorize"),
                            "token_endpoint": format!("{issuer}/token"),
                            "userinfo_endpoint": format!("{issuer}/userinfo"),
                        }),
                    ),
                    "/jwks" => {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        (200, json!({ "keys": keys.lock().unwrap().clone() }))
                    }
                    "/userinfo" => {
                        let (token, info) = userinfo.lock().unwrap().clone();
                        if bearer.as_deref() == Some(token.as_str()) {
                            (200, info)
                        } else {
                            (401, json!({"error": "invalid_token"}))
                        }
                    }
                    _ => (404, json!({})),
                };
                let body = body.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        p
    }

    fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}

fn policy() -> FetchPolicy {
    FetchPolicy {
        allow_http_loopback: true,
    }
}

fn now() -> i64 {
    Utc::now().timestamp()
}

/// CIS2-shaped claims: two roles, the second selected.
fn cis2_claims(issuer: &str, activities: &[&str], assurance: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": CLIENT_ID,
        "sub": "555254242106",
        "exp": now() + 300,
        "iat": now(),
        "name": "Dr Ada Smartcard",
        "id_assurance_level": assurance,
        "authentication_assurance_level": assurance,
        "selected_roleid": "555254243107",
        "nhsid_nrbac_roles": [
            {"person_roleid": "555254243100", "org_code": "RGP01",
             "role_code": "S8002:G8003:R8009", "activity_codes": ["B0107", "B0170"]},
            {"person_roleid": "555254243107", "org_code": "RDEMO01",
             "role_name": "\"Clinical\":\"Clinical Provision\":\"Clinical Practitioner Access Role\"",
             "role_code": "S8000:G8000:R8000", "activity_codes": activities},
        ]
    })
}

fn sign(claims: &Value, key: &str, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS512);
    header.kid = Some(kid.into());
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(fixture(&format!("rsa-{key}.pem")).as_bytes()).unwrap(),
    )
    .unwrap()
}

fn verifier(provider: &Provider, min_refetch: Duration) -> JwtVerifier {
    let meta = discover(&provider.issuer, &policy()).unwrap();
    assert_eq!(meta.jwks_uri, format!("{}/jwks", provider.issuer));
    let keys = KeySet::from_url_with(&meta.jwks_uri, policy(), min_refetch).unwrap();
    JwtVerifier::with_keys(
        JwtConfig {
            jwks_json: String::new(),
            issuer: provider.issuer.clone(),
            audience: CLIENT_ID.into(),
            org_claim: "ods".into(),
            permissions_claim: "cpis_permissions".into(),
        },
        Arc::new(keys),
    )
    .cis2(Cis2Rules::default(), meta.userinfo_endpoint, policy())
}

#[test]
fn a_rotated_key_is_fetched_once_and_unknown_keys_are_refused() {
    let provider = Provider::start(vec![jwk("a")]);
    let v = verifier(&provider, Duration::from_millis(400));
    assert_eq!(provider.fetches(), 1);

    let claims = cis2_claims(&provider.issuer, &["B0107"], "3");
    let id = v.verify(&sign(&claims, "a", "cis2-test-a")).unwrap();
    assert_eq!(id.organisation, "RDEMO01");
    assert_eq!(id.permissions, "cpis:view-notify");
    assert_eq!(id.nhs.role_code.as_deref(), Some("R8000"));
    assert_eq!(provider.fetches(), 1, "a known key needs no fetch");

    // Later, the provider rotates: key b replaces key a.
    std::thread::sleep(Duration::from_millis(450));
    *provider.keys.lock().unwrap() = vec![jwk("b")];
    let id = v.verify(&sign(&claims, "b", "cis2-test-b")).unwrap();
    assert_eq!(id.subject, "555254242106");
    assert_eq!(provider.fetches(), 2, "the new kid was fetched once");

    // A token naming a key the provider does not publish: refused, and a burst of them makes
    // no more than one refetch per interval.
    for _ in 0..5 {
        let err = v
            .verify(&sign(&claims, "a", "made-up-kid"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key id"), "{err}");
    }
    assert_eq!(
        provider.fetches(),
        2,
        "rate-limited: fetched within the interval"
    );
    std::thread::sleep(Duration::from_millis(450));
    assert!(v.verify(&sign(&claims, "a", "made-up-kid")).is_err());
    assert_eq!(
        provider.fetches(),
        3,
        "one refetch after the interval, still unknown"
    );
    // The retired key a is no longer trusted.
    std::thread::sleep(Duration::from_millis(450));
    assert!(v.verify(&sign(&claims, "a", "cis2-test-a")).is_err());
    // A token signed by another key under a published kid fails its signature.
    assert!(v.verify(&sign(&claims, "a", "cis2-test-b")).is_err());
}

#[test]
fn a_rotation_just_after_start_is_picked_up_at_once() {
    // The fetch at start is not a refetch: a provider that rotates its key moments after cpis
    // started (both deployed together, or a browser test) is not refused for the interval.
    let provider = Provider::start(vec![jwk("a")]);
    let v = verifier(&provider, KeySet::MIN_REFETCH);
    assert_eq!(provider.fetches(), 1);
    *provider.keys.lock().unwrap() = vec![jwk("b")];
    let claims = cis2_claims(&provider.issuer, &["B0107"], "3");
    let id = v.verify(&sign(&claims, "b", "cis2-test-b")).unwrap();
    assert_eq!(id.organisation, "RDEMO01");
    assert_eq!(provider.fetches(), 2, "the new kid was fetched at once");
    // From then on the interval holds: the retired key and made-up keys are refused unfetched.
    assert!(v.verify(&sign(&claims, "a", "cis2-test-a")).is_err());
    assert!(v.verify(&sign(&claims, "a", "made-up-kid")).is_err());
    assert_eq!(provider.fetches(), 2);
}

#[test]
fn roles_missing_from_the_token_come_from_userinfo_about_the_same_subject() {
    let provider = Provider::start(vec![jwk("a")]);
    let v = verifier(&provider, Duration::from_secs(30));
    let full = cis2_claims(&provider.issuer, &["B0170"], "3");
    let mut lean = full.clone();
    let obj = lean.as_object_mut().unwrap();
    obj.remove("nhsid_nrbac_roles");
    obj.remove("selected_roleid");
    let token = sign(&lean, "a", "cis2-test-a");
    *provider.userinfo.lock().unwrap() = (
        token.clone(),
        json!({
            "sub": "555254242106",
            "selected_roleid": full["selected_roleid"],
            "nhsid_nrbac_roles": full["nhsid_nrbac_roles"],
        }),
    );
    let id = v.verify(&token).unwrap();
    assert_eq!(
        (id.organisation.as_str(), id.permissions.as_str()),
        ("RDEMO01", "cpis:view-silent")
    );

    // Userinfo about someone else is refused.
    let mut other = lean.clone();
    other["jti"] = json!("second");
    let token2 = sign(&other, "a", "cis2-test-a");
    *provider.userinfo.lock().unwrap() = (
        token2.clone(),
        json!({"sub": "999999999999", "selected_roleid": full["selected_roleid"],
               "nhsid_nrbac_roles": full["nhsid_nrbac_roles"]}),
    );
    let err = v.verify(&token2).unwrap_err().to_string();
    assert!(err.contains("another subject"), "{err}");
}

#[test]
fn https_is_required_for_discovery_and_keys_unless_loopback_is_allowed() {
    let provider = Provider::start(vec![jwk("a")]);
    assert!(discover(&provider.issuer, &FetchPolicy::default()).is_err());
    assert!(
        KeySet::from_url(&format!("{}/jwks", provider.issuer), FetchPolicy::default()).is_err()
    );
    // Discovery naming another issuer is refused.
    assert!(discover(&format!("{}/", provider.issuer), &policy()).is_err());
}

fn authenticator(provider: &Provider) -> (Authenticator, Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(cpis_store::sqlite::SqliteStore::open(dir.path().join("cpis.db")).unwrap());
    let t = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap();
    store
        .upsert_care_settings(
            &[CareSetting {
                ods_code: OdsCode::parse("RDEMO01").unwrap(),
                name: "Demo Emergency Department".into(),
                setting_type: SettingType::EmergencyDepartment,
                phone: None,
            }],
            t,
        )
        .unwrap();
    let clock = Arc::new(FixedClock::new(t));
    let auth = Authenticator::new(
        store.clone(),
        clock,
        Some(verifier(provider, Duration::from_secs(30))),
        LockoutPolicy::default(),
    );
    (auth, store, dir)
}

#[test]
fn the_selected_role_decides_and_the_nhs_identity_reaches_the_access_record() {
    let provider = Provider::start(vec![jwk("a")]);
    let (auth, _store, _dir) = authenticator(&provider);
    let issuer = provider.issuer.clone();

    let token = sign(
        &cis2_claims(&issuer, &["B0107", "B0170"], "3"),
        "a",
        "cis2-test-a",
    );
    let p = auth.bearer(&token, None).unwrap();
    assert_eq!(p.organisation().as_str(), "RDEMO01");
    assert!(p.has(Permission::ViewNotify) && p.has(Permission::ViewSilent));
    let lookup = p.lookup().unwrap();
    let a = lookup.accessor();
    assert_eq!(a.nhs.sds_user_id.as_deref(), Some("555254242106"));
    assert_eq!(a.nhs.role_profile_id.as_deref(), Some("555254243107"));
    assert_eq!(a.nhs.role_code.as_deref(), Some("R8000"));
    assert!(lookup.may_notify());

    // Neither B0107 nor B0170 on the selected role: authenticated, but no lookup.
    let none = sign(&cis2_claims(&issuer, &["B0380"], "3"), "a", "cis2-test-a");
    let p = auth.bearer(&none, None).unwrap();
    assert!(p.permissions().is_empty());
    assert!(p.lookup().is_err());

    // Below the assurance lookups need (AAL3 by default).
    let low = sign(&cis2_claims(&issuer, &["B0107"], "2"), "a", "cis2-test-a");
    let p = auth.bearer(&low, None).unwrap();
    let why = p.lookup().unwrap_err().0;
    assert!(why.contains("assurance level 3"), "{why}");
}

#[test]
fn a_cis2_web_sign_in_keeps_the_nhs_identity_in_its_session_and_refuses_a_role_without_codes() {
    let provider = Provider::start(vec![jwk("a")]);
    let (auth, store, _dir) = authenticator(&provider);
    let v = verifier(&provider, Duration::from_secs(30));
    let id_token = sign(
        &cis2_claims(&provider.issuer, &["B0170"], "3"),
        "a",
        "cis2-test-a",
    );
    let identity = v.verify_id_token(&id_token, None).unwrap();
    let (p, session) = auth.login_oidc(&identity, None).unwrap();
    assert_eq!(p.user_id(), "oidc:555254242106");
    let (again, _) = auth.session(&session.cookie_value).unwrap();
    assert_eq!(again.nhs().role_code.as_deref(), Some("R8000"));
    assert_eq!(again.assurance().map(|a| a.level), Some(3));
    let lookup = again.lookup().unwrap();
    assert!(!lookup.may_notify(), "B0170 only: silent");
    assert_eq!(
        lookup.accessor().nhs.role_profile_id.as_deref(),
        Some("555254243107")
    );

    let none = sign(
        &cis2_claims(&provider.issuer, &["B0380"], "3"),
        "a",
        "cis2-test-a",
    );
    let identity = v.verify_id_token(&none, None).unwrap();
    assert!(auth.login_oidc(&identity, None).is_err());
    let refused = store
        .audit_search(&cpis_store::AuditQuery {
            action_prefix: Some("auth.login".into()),
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    let detail = refused[0].entry.detail.clone().unwrap_or_default();
    assert!(detail.contains("neither B0107 nor B0170"), "{detail}");
}
