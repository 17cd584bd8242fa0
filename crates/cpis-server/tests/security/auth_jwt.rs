//! Bearer JWTs from an external identity provider (docs/SECURITY.md): RS256 and ES256 only, the
//! key chosen by `kid` from the JWKS, `iss`/`aud`/`exp`/`nbf`/`sub` checked with 30 s leeway, the
//! organisation an ODS code and the permissions known names. Everything else is 401 (and audited).
//!
//! Keys: tests/fixtures/jwt (throw-away, see its README). `exp`/`nbf` are checked against the real
//! clock, so the tokens here are stamped with the real time.

use crate::common::*;
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a valid token for an ED clinician (RDEMO01, `cpis:view-notify`).
fn claims() -> Value {
    let t = now();
    json!({
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "sub": "dr.jwt",
        "name": "Dr Jay Double-U-Tee",
        "role": "Clinician",
        "iat": t,
        "nbf": t - 5,
        "exp": t + 600,
        "ods": ED_SETTING,
        "cpis_permissions": ["cpis:view-notify"],
    })
}

fn with(mut c: Value, key: &str, value: Value) -> Value {
    c[key] = value;
    c
}

fn without(mut c: Value, key: &str) -> Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(fixture("jwt/rsa-private.pem").as_bytes()).unwrap()
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(fixture("jwt/ec-private.pem").as_bytes()).unwrap()
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    encode(&h, claims, key).expect("sign test token")
}

fn rs256(claims: &Value) -> String {
    sign(Algorithm::RS256, Some(JWT_RSA_KID), &rsa_key(), claims)
}

fn es256(claims: &Value) -> String {
    sign(Algorithm::ES256, Some(JWT_EC_KID), &ec_key(), claims)
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A token put together by hand: `header.payload.signature`.
fn raw(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header),
        b64(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn lookup(app: &TestApp, token: &str) -> Reply {
    app.care_team(SHARED_CHILD, token, Some("true")).await
}

#[tokio::test]
async fn valid_rs256_and_es256_tokens_are_accepted_and_audited_as_jwt_subjects() {
    let app = spawn_app_with_jwt();

    let r = lookup(&app, &rs256(&claims())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["total"], 2, "both LAs' plans");
    let entry = app.last_audit("lookup", Some("jwt:dr.jwt")).await.unwrap();
    assert_eq!(entry["action"], "lookup.unscheduled", "{entry}");
    assert_eq!(entry["outcome"], "success");
    assert_eq!(entry["actor"]["organisation"], ED_SETTING);
    assert_eq!(entry["actor"]["name"], "Dr Jay Double-U-Tee");
    assert_eq!(entry["subject_nhs"], SHARED_CHILD);
    assert_eq!(
        app.access_notifications(COVENTRY_TOKEN, SHARED_CHILD)
            .await
            .len(),
        1,
        "a notifying lookup"
    );

    // ES256, with the permissions as a space-separated string, silent-only.
    let silent = json!("cpis:view-silent");
    let c = with(
        with(claims(), "sub", json!("nurse.jwt")),
        "cpis_permissions",
        silent,
    );
    let r = lookup(&app, &es256(&c)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let entry = app
        .last_audit("lookup", Some("jwt:nurse.jwt"))
        .await
        .unwrap();
    assert_eq!(entry["action"], "lookup.silent", "{entry}");

    // The identity behind a token, as the session endpoint reports it.
    let me = app.get("/auth/session", Some(&rs256(&claims()))).await;
    assert_eq!(me.status, StatusCode::OK);
    let me = me.json();
    assert_eq!(me["user"]["user_id"], "jwt:dr.jwt");
    assert_eq!(me["user"]["organisation"], ED_SETTING);
    assert_eq!(me["user"]["permissions"], "cpis:view-notify");

    // An LA system by client credentials.
    let la = with(
        with(claims(), "ods", json!(COVENTRY)),
        "cpis_permissions",
        json!(["la:notifications"]),
    );
    let r = app.get("/api/v1/notifications", Some(&rs256(&la))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // An audience list that includes cpis, and an expiry inside the 30 s leeway, are fine.
    let list = with(claims(), "aud", json!(["other-api", JWT_AUDIENCE]));
    assert_eq!(lookup(&app, &rs256(&list)).await.status, StatusCode::OK);
    let just_expired = with(claims(), "exp", json!(now() - 10));
    assert_eq!(
        lookup(&app, &es256(&just_expired)).await.status,
        StatusCode::OK,
        "within the leeway"
    );

    // API tokens keep working next to the identity provider.
    assert_eq!(lookup(&app, ED_TOKEN).await.status, StatusCode::OK);
}

#[tokio::test]
async fn every_kind_of_bad_token_is_refused_401_and_audited() {
    let app = spawn_app_with_jwt();
    let t = now();
    let valid = rs256(&claims());
    let [h, p, s]: [&str; 3] = valid.split('.').collect::<Vec<_>>().try_into().unwrap();
    let rsa_public = fixture("jwt/rsa-public.pem");
    let ec_public = fixture("jwt/ec-public.pem");
    let other_rsa =
        EncodingKey::from_rsa_pem(fixture("jwt/rsa-other-private.pem").as_bytes()).unwrap();
    let tampered = |c: Value| format!("{h}.{}.{s}", b64(&c));

    let cases: Vec<(&str, String)> = vec![
        (
            "wrong issuer",
            rs256(&with(claims(), "iss", json!("https://evil.example"))),
        ),
        (
            "wrong audience",
            rs256(&with(claims(), "aud", json!("other-api"))),
        ),
        ("expired", rs256(&with(claims(), "exp", json!(t - 3600)))),
        (
            "expired just past the leeway",
            es256(&with(claims(), "exp", json!(t - 90))),
        ),
        (
            "nbf in the future",
            rs256(&with(claims(), "nbf", json!(t + 3600))),
        ),
        (
            "unknown kid",
            sign(Algorithm::RS256, Some("no-such-key"), &rsa_key(), &claims()),
        ),
        (
            "no kid (the JWKS has two keys)",
            sign(Algorithm::RS256, None, &rsa_key(), &claims()),
        ),
        (
            "HS256 keyed with the RSA public key (alg confusion)",
            sign(
                Algorithm::HS256,
                Some(JWT_RSA_KID),
                &EncodingKey::from_secret(rsa_public.as_bytes()),
                &claims(),
            ),
        ),
        (
            "HS256 keyed with the EC public key (alg confusion)",
            sign(
                Algorithm::HS256,
                Some(JWT_EC_KID),
                &EncodingKey::from_secret(ec_public.as_bytes()),
                &claims(),
            ),
        ),
        (
            "alg none",
            raw(
                &json!({"alg": "none", "typ": "JWT", "kid": JWT_RSA_KID}),
                &claims(),
                b"",
            ),
        ),
        (
            "alg none, no signature part",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims())
            ),
        ),
        (
            "PS256 (RSA, but not an accepted algorithm)",
            sign(Algorithm::PS256, Some(JWT_RSA_KID), &rsa_key(), &claims()),
        ),
        (
            "tampered payload (another organisation)",
            tampered(with(claims(), "ods", json!(ED2_SETTING))),
        ),
        (
            "tampered payload (more permissions)",
            tampered(with(
                claims(),
                "cpis_permissions",
                json!(["cpis:view-notify", "admin", "auditor"]),
            )),
        ),
        ("signature stripped", format!("{h}.{p}.")),
        (
            "signature from another token",
            format!(
                "{h}.{p}.{}",
                rs256(&with(claims(), "sub", json!("x")))
                    .rsplit('.')
                    .next()
                    .unwrap()
            ),
        ),
        (
            "signed by a key not in the JWKS, naming a trusted kid",
            sign(Algorithm::RS256, Some(JWT_RSA_KID), &other_rsa, &claims()),
        ),
        (
            "RS256 header with the EC key's kid",
            sign(Algorithm::RS256, Some(JWT_EC_KID), &rsa_key(), &claims()),
        ),
        (
            "ES256 header with the RSA key's kid",
            sign(Algorithm::ES256, Some(JWT_RSA_KID), &ec_key(), &claims()),
        ),
        ("missing org claim", rs256(&without(claims(), "ods"))),
        (
            "org claim not an ODS code",
            rs256(&with(claims(), "ods", json!("not an ods code!"))),
        ),
        (
            "org claim not a string",
            rs256(&with(claims(), "ods", json!(42))),
        ),
        (
            "unknown permission",
            rs256(&with(
                claims(),
                "cpis_permissions",
                json!(["cpis:view-notify", "cpis:superuser"]),
            )),
        ),
        (
            "unknown permission in a string",
            rs256(&with(
                claims(),
                "cpis_permissions",
                json!("cpis:view-notify root"),
            )),
        ),
        (
            "missing permissions claim",
            rs256(&without(claims(), "cpis_permissions")),
        ),
        ("missing exp", rs256(&without(claims(), "exp"))),
        ("missing sub", rs256(&without(claims(), "sub"))),
        ("missing iss", rs256(&without(claims(), "iss"))),
        ("missing aud", rs256(&without(claims(), "aud"))),
        (
            "not JSON inside",
            format!("eyJ{}.{}.{}", "x".repeat(10), p, s),
        ),
        ("two parts", format!("{h}.{p}")),
        ("four parts", format!("{valid}.{s}")),
    ];
    let accesses = app.accesses_stored();
    for (what, token) in &cases {
        let before = app.last_audit("auth.bearer", Some("anonymous")).await;
        let r = lookup(&app, token).await;
        assert_outcome(&r, StatusCode::UNAUTHORIZED, "login", what);
        assert_eq!(r.headers["www-authenticate"], "Bearer", "{what}");
        assert_reveals_nothing(&r.body, what);
        let after = app
            .last_audit("auth.bearer", Some("anonymous"))
            .await
            .unwrap_or_else(|| panic!("{what}: not audited"));
        assert!(
            before.is_none_or(|b| b["seq"].as_u64() < after["seq"].as_u64()),
            "{what}: not audited"
        );
        assert_eq!(after["outcome"], "denied", "{what}");
        // The JSON API refuses the same token the same way.
        let api = app.get("/api/v1/notifications", Some(token)).await;
        assert_eq!(api.status, StatusCode::UNAUTHORIZED, "{what} (API)");
    }
    assert_eq!(
        app.accesses_stored(),
        accesses,
        "no refused token looked anyone up"
    );
    // The refusals all look alike.
    let first = lookup(&app, &cases[0].1).await;
    for (what, token) in &cases {
        let r = lookup(&app, token).await;
        let strip = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert_eq!(strip(&r.body), strip(&first.body), "{what}");
    }
}

/// A valid token is only as good as what its organisation and permissions allow.
#[tokio::test]
async fn valid_tokens_get_only_what_their_claims_allow() {
    let app = spawn_app_with_jwt();
    // An organisation that is neither a care setting nor an LA cannot look children up.
    let nowhere = rs256(&with(claims(), "ods", json!("X99")));
    let r = lookup(&app, &nowhere).await;
    assert_outcome(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "unknown organisation",
    );
    // A clinician's token cannot read an LA's notifications, even with the permission claimed,
    // because the organisation is a care setting.
    let c = with(
        claims(),
        "cpis_permissions",
        json!(["cpis:view-notify", "la:notifications"]),
    );
    let r = app.get("/api/v1/notifications", Some(&rs256(&c))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    // No permissions at all: authenticated, but allowed nothing.
    let none = rs256(&with(claims(), "cpis_permissions", json!([])));
    let r = lookup(&app, &none).await;
    assert_outcome(&r, StatusCode::FORBIDDEN, "forbidden", "no permissions");
    let entry = app.last_audit("lookup", Some("jwt:dr.jwt")).await.unwrap();
    assert_eq!(entry["outcome"], "denied");
    // An LA token for Westminster sees Westminster's notifications only.
    let wes = with(
        with(claims(), "ods", json!(WESTMINSTER)),
        "cpis_permissions",
        json!(["la:notifications"]),
    );
    app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
    let page = app.notifications_page(&rs256(&wes), "").await;
    let items = page["notifications"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        !page.to_string().contains(&format!("\"{COVENTRY}\"")),
        "{page}"
    );
}

/// Without an identity provider configured, JWT-shaped bearer tokens are just unknown tokens.
#[tokio::test]
async fn without_an_identity_provider_jwts_are_unknown_tokens() {
    let app = spawn_app();
    let r = lookup(&app, &rs256(&claims())).await;
    assert_outcome(&r, StatusCode::UNAUTHORIZED, "login", "no IdP configured");
}
