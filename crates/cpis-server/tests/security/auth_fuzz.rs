//! Property tests of the authentication edge: whatever arrives in `Authorization`, `Cookie`,
//! `X-CSRF-Token` or `TraceID` (random bytes, near-miss schemes, 10 kB strings, JWT-shaped junk
//! with random JSON inside), the router never panics and never answers 5xx.
//!
//! One app (with the test identity provider configured, so JWT parsing is exercised) is shared by
//! all properties; each property runs 128 cases.

use crate::common::*;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// The statuses an authentication edge may give: success, or a 4xx the API documents.
const ALLOWED: [u16; 8] = [200, 201, 204, 400, 401, 403, 404, 429];

struct Fuzz {
    rt: tokio::runtime::Runtime,
    app: TestApp,
    /// A live session of a Coventry password user, and its CSRF token.
    cookie: String,
    csrf: String,
    /// A Coventry notification id.
    note: String,
}

fn fuzz() -> &'static Fuzz {
    static FUZZ: OnceLock<Fuzz> = OnceLock::new();
    FUZZ.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = spawn_app_with_jwt();
        cpis_auth::users::add(
            app.store.as_ref(),
            cpis_auth::users::NewUser {
                username: "fuzz.worker".into(),
                display_name: "Fuzz Worker".into(),
                kind: cpis_store::UserKind::User,
                organisation: cpis_domain::OdsCode::parse(COVENTRY).unwrap(),
                role: "Social worker".into(),
                permissions: cpis_domain::Permissions::new([
                    cpis_domain::Permission::LaNotifications,
                ]),
                password: Some("fuzzing password 123".into()),
            },
            start_time(),
        )
        .unwrap();
        let (cookie, csrf, note) = rt.block_on(async {
            app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
            let note = app.all_notifications(COVENTRY_TOKEN).await[0]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let r = app
                .request(
                    Method::POST,
                    "/auth/login",
                    &[("content-type", "application/json")],
                    json!({"username": "fuzz.worker", "password": "fuzzing password 123"})
                        .to_string(),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            let set = r.headers["set-cookie"].to_str().unwrap();
            let cookie = set
                .split(';')
                .next()
                .unwrap()
                .trim_start_matches("cpis_session=")
                .to_owned();
            let csrf = r.json()["csrf_token"].as_str().unwrap().to_owned();
            (cookie, csrf, note)
        });
        Fuzz {
            rt,
            app,
            cookie,
            csrf,
            note,
        }
    })
}

/// The endpoints each case is sent to (index chosen by the property).
fn target(i: usize, f: &Fuzz) -> (Method, String, Option<(&'static str, String)>) {
    let lookup = patient_query(SHARED_CHILD);
    match i % 12 {
        0 => (Method::GET, "/api/v1/notifications".into(), None),
        1 => (Method::GET, format!("/fhir/R4/CareTeam?{lookup}"), None),
        2 => (Method::GET, format!("/fhir/R4/AuditEvent?{lookup}"), None),
        3 => (Method::GET, "/auth/session".into(), None),
        4 => (
            Method::POST,
            format!("/api/v1/notifications/{}/ack", f.note),
            None,
        ),
        5 => (Method::POST, "/auth/logout".into(), None),
        6 => (
            Method::GET,
            "/api/v1/uploads/0b1e6a4c-3f7d-4a8e-9c2b-5d6e7f8a9b0c".into(),
            None,
        ),
        7 => (
            Method::POST,
            "/api/v1/uploads?file_id=fuzz-1".into(),
            Some(("text/csv", format!("{HEADER}\n"))),
        ),
        8 => (Method::GET, "/api/v1/audit?limit=1".into(), None),
        9 => (Method::GET, "/api/v1/admin/users".into(), None),
        10 => (
            Method::POST,
            "/auth/login".into(),
            Some((
                "application/json",
                json!({"username": "fuzz.worker", "password": "not the password"}).to_string(),
            )),
        ),
        _ => (Method::GET, "/fhir/R4/metadata".into(), None),
    }
}

/// Sends one request with the given raw header values (a value `HeaderValue` cannot hold is left
/// out, as no client could send it) and returns the status.
fn send(endpoint: usize, headers: &[(&'static str, Vec<u8>)]) -> u16 {
    let f = fuzz();
    let (method, uri, body) = target(endpoint, f);
    let mut b = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            b = b.header(*name, v);
        }
    }
    let body = match body {
        Some((ct, text)) => {
            b = b.header("content-type", ct);
            Body::from(text)
        }
        None => Body::empty(),
    };
    let req = b.body(body).unwrap();
    f.rt.block_on(f.app.send(req)).status.as_u16()
}

const TOKENS: [&str; 8] = [
    ED_TOKEN,
    COVENTRY_TOKEN,
    ADMIN_TOKEN,
    AUDITOR_TOKEN,
    DISABLED_TOKEN,
    "cpis_",
    "",
    "eyJ",
];

/// `Bearer …` and its near misses around real and junk tokens.
fn scheme_variants() -> impl Strategy<Value = Vec<u8>> {
    (
        select(vec![
            "Bearer", "bearer", "BEARER", "Basic", "Token", "", "Bearer:",
        ]),
        select(vec![" ", "  ", "\t", "", " \t "]),
        select(TOKENS.to_vec()),
        "[ \t]{0,2}",
        "[A-Za-z0-9._~+/=-]{0,8}",
    )
        .prop_map(|(s, sep, t, pad, junk)| format!("{s}{sep}{t}{pad}{junk}").into_bytes())
}

/// Long values: up to 10 kB, around the 8 kB token limit.
fn long_values() -> impl Strategy<Value = Vec<u8>> {
    (
        0usize..10_000,
        select(vec!['a', '.', '=', '-', 'Z']),
        "[A-Za-z0-9.]{0,16}",
    )
        .prop_map(|(n, c, tail)| format!("Bearer {}{tail}", c.to_string().repeat(n)).into_bytes())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        select(vec![
            JWT_ISSUER,
            JWT_AUDIENCE,
            "RDEMO01",
            "E08000026",
            "cpis:view-notify",
            "admin",
            "RS256",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map(".{0,8}", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Claims made of the names the verifier reads, with random or plausible values.
fn claims() -> impl Strategy<Value = Value> {
    btree_map(
        select(vec![
            "iss",
            "aud",
            "exp",
            "nbf",
            "iat",
            "sub",
            "ods",
            "cpis_permissions",
            "name",
            "role",
        ]),
        json_value(),
        0..10,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn jwt_header() -> impl Strategy<Value = Value> {
    (
        select(vec![
            "RS256", "ES256", "HS256", "none", "None", "PS256", "EdDSA", "ES384", "",
        ]),
        prop::option::of(select(vec![
            JWT_RSA_KID,
            JWT_EC_KID,
            "",
            "../../etc/passwd",
        ])),
        prop::option::of(json_value()),
    )
        .prop_map(|(alg, kid, extra)| {
            let mut h = json!({"alg": alg, "typ": "JWT"});
            if let Some(k) = kid {
                h["kid"] = json!(k);
            }
            if let Some(x) = extra {
                h["jwk"] = x;
            }
            h
        })
}

/// `Bearer header.payload.signature`: three base64url parts of random JSON and bytes.
fn jwt_shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![jwt_header(), json_value()],
        prop_oneof![claims(), json_value()],
        vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(|(h, c, sig, pad)| {
            let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
            let mut t = format!("{}.{}.{}", enc(&h), enc(&c), URL_SAFE_NO_PAD.encode(sig));
            if pad {
                t.push('=');
            }
            format!("Bearer {t}").into_bytes()
        })
}

/// Dotted base64-ish strings that merely look like JWTs.
fn dotted() -> impl Strategy<Value = Vec<u8>> {
    "(eyJ)?[A-Za-z0-9_+/=-]{0,60}(\\.[A-Za-z0-9_+/=-]{0,60}){0,4}"
        .prop_map(|s| format!("Bearer {s}").into_bytes())
}

fn authorization() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..200),
        "\\PC{0,80}".prop_map(String::into_bytes),
        scheme_variants(),
        long_values(),
        jwt_shaped(),
        dotted(),
    ]
}

fn cookie() -> impl Strategy<Value = Vec<u8>> {
    let f = fuzz();
    let real = f.cookie.clone();
    prop_oneof![
        vec(any::<u8>(), 0..200),
        "\\PC{0,80}".prop_map(String::into_bytes),
        "[ -~]{0,300}".prop_map(|s| format!("cpis_session={s}").into_bytes()),
        (".{0,4}", ".{0,4}", Just(real.clone()))
            .prop_map(|(a, b, r)| format!("cpis_session={a}{r}{b}").into_bytes()),
        ("[a-z_=; ]{0,30}", Just(real)).prop_map(|(junk, r)| format!(
            "{junk}; cpis_session={r}; cpis_session=x; {junk}"
        )
        .into_bytes()),
        (0usize..10_000).prop_map(|n| format!("cpis_session={}", "A".repeat(n)).into_bytes()),
    ]
}

fn csrf_token() -> impl Strategy<Value = Vec<u8>> {
    let real = fuzz().csrf.clone();
    prop_oneof![
        vec(any::<u8>(), 0..100),
        "\\PC{0,80}".prop_map(String::into_bytes),
        (".{1,2}", Just(real)).prop_map(|(x, r)| format!("{x}{r}{x}").into_bytes()),
        (0usize..10_000).prop_map(|n| "x".repeat(n).into_bytes()),
    ]
}

fn check(status: u16, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        ALLOWED.contains(&status),
        "{what}: status {status} is not one of {ALLOWED:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_authorization_header_gets_a_4xx_or_success_never_a_5xx(
        value in authorization(),
        endpoint in 0usize..12,
    ) {
        let status = send(endpoint, &[("authorization", value.clone())]);
        check(status, &format!("{:?}", String::from_utf8_lossy(&value)))?;
    }

    #[test]
    fn jwt_shaped_tokens_never_authenticate(value in jwt_shaped(), endpoint in 0usize..11) {
        let status = send(endpoint, &[("authorization", value.clone())]);
        // Without a valid signature from the JWKS nothing gets past authentication.
        prop_assert_eq!(status, 401, "{:?}", String::from_utf8_lossy(&value));
    }

    #[test]
    fn any_cookie_header_gets_a_4xx_or_success_never_a_5xx(
        value in cookie(),
        csrf in prop::option::of(csrf_token()),
        endpoint in 0usize..12,
    ) {
        let mut headers = vec![("cookie", value.clone())];
        if let Some(c) = csrf {
            headers.push(("x-csrf-token", c));
        }
        let status = send(endpoint, &headers);
        check(status, &format!("{:?}", String::from_utf8_lossy(&value)))?;
    }

    #[test]
    fn any_csrf_token_with_a_live_session_is_refused_unless_it_is_the_token(
        csrf in csrf_token(),
        endpoint in select(vec![4usize, 5, 7]),
    ) {
        let f = fuzz();
        let cookie = format!("cpis_session={}", f.cookie).into_bytes();
        let status = send(endpoint, &[("cookie", cookie), ("x-csrf-token", csrf.clone())]);
        if csrf != f.csrf.as_bytes() {
            prop_assert_eq!(status, 403, "{:?}", String::from_utf8_lossy(&csrf));
        }
    }

    #[test]
    fn any_trace_id_and_access_event_header_with_a_valid_token_is_handled(
        trace in vec(any::<u8>(), 0..300),
        unscheduled in vec(any::<u8>(), 0..20),
        endpoint in 0usize..12,
    ) {
        let headers = [
            ("authorization", format!("Bearer {ED_TOKEN}").into_bytes()),
            ("traceid", trace),
            ("isunscheduledaccessevent", unscheduled),
        ];
        check(send(endpoint, &headers), "trace id")?;
    }

    #[test]
    fn several_authorization_headers_and_a_cookie_together_are_handled(
        a in authorization(),
        b in authorization(),
        c in cookie(),
        endpoint in 0usize..12,
    ) {
        let headers = [("authorization", a), ("authorization", b), ("cookie", c)];
        check(send(endpoint, &headers), "several headers")?;
    }
}
