//! Property tests of query strings (SPEC 3.1: "Never a 500 for bad input"): arbitrary, odd and
//! hostile query strings on `GET /fhir/R4/CareTeam`, `GET /fhir/R4/AuditEvent`,
//! `GET /api/v1/notifications?after=&limit=` and `GET /api/v1/uploads/{id}?after=&limit=&outcome=&format=`
//! — percent-encoding (also of the keys), `+` for spaces, repeated, empty and missing
//! `patient:identifier`, odd identifier systems and separators, 10 kB values, broken and
//! non-UTF-8 percent escapes, arbitrary bytes — never get a 5xx. Each answer is checked against
//! an oracle that decodes the query the way `application/x-www-form-urlencoded` does, and its
//! body against the error policy: FHIR errors are OperationOutcomes (`invalid` for a 400), API
//! errors JSON `{"error", "message"}`.
//!
//! Failing cases are kept in `tests/proptest-regressions/fhir_query_fuzz.txt` and replayed first
//! on every run (see `tests/proptest-regressions/README.md`).

use crate::common::*;
use axum::body::Body;
use axum::http::{Method, Request, Uri};
use cpis_domain::{NhsNumber, RecordOutcome};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;
use std::sync::OnceLock;

/// Where failing cases are kept (tracked in git; replayed before new cases).
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/proptest-regressions/fhir_query_fuzz.txt"
);

/// `cases` per property, unless `PROPTEST_CASES` asks for more (or fewer) for a deeper run.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..ProptestConfig::default()
    }
}

struct Fuzz {
    rt: tokio::runtime::Runtime,
    app: TestApp,
    /// A Coventry upload with 15 report rows (every outcome code).
    coventry_upload: String,
    /// A Westminster upload: another LA's, so 404 for Coventry.
    westminster_upload: String,
}

fn fuzz() -> &'static Fuzz {
    static FUZZ: OnceLock<Fuzz> = OnceLock::new();
    FUZZ.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = spawn_app();
        let (coventry_upload, westminster_upload) = rt.block_on(async {
            let errors = demo_file("errors-E08000026.csv");
            let r = app
                .upload("?file_id=fuzz-coventry", COVENTRY_TOKEN, errors.clone())
                .await;
            assert_eq!(r.status, 201, "{}", r.text());
            let c = r.json()["id"].as_str().unwrap().to_owned();
            let r = app
                .upload("?file_id=fuzz-westminster", WESTMINSTER_TOKEN, errors)
                .await;
            assert_eq!(r.status, 201, "{}", r.text());
            let w = r.json()["id"].as_str().unwrap().to_owned();
            // Something in Coventry's inbox to page through.
            app.notifying_lookup(SHARED_CHILD, ED_TOKEN).await;
            (c, w)
        });
        Fuzz {
            rt,
            app,
            coventry_upload,
            westminster_upload,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Building query strings and decoding them as the server must.

/// Characters left as they are in a query string (everything else is percent-encoded so that the
/// request line is one a client can send; the decoded meaning is unchanged). `%` and `+` stay raw
/// on purpose: broken escapes and `+`-for-space are part of the input.
fn raw_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$'()*+,;=:@/?&%|".contains(c)
}

fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if raw_ok(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Arbitrary bytes as a query: bytes a request line may carry raw stay raw, others are escaped
/// (so the decoded query is any byte string, UTF-8 or not).
fn bytes_query(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii() && raw_ok(b as char) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding (as the server's query extractor does): pairs
/// split on `&` (empty ones skipped), key and value on the first `=`, `+` is a space, `%XX` a
/// byte (a broken escape stays literal), bytes read as UTF-8 with replacement characters.
fn form_decode(query: &str) -> Vec<(String, String)> {
    fn dec(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (
                        b.get(i + 1).copied().and_then(hex),
                        b.get(i + 2).copied().and_then(hex),
                    ) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

fn values<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Oracles: the statuses a query may get.

/// The child a FHIR query names: its one `patient:identifier`, whose system is absent, empty or
/// the NHS number system and whose number is valid.
fn fhir_child(pairs: &[(String, String)]) -> Option<NhsNumber> {
    match values(pairs, "patient:identifier").as_slice() {
        [one] => {
            let digits = match one.split_once('|') {
                Some((system, d)) if system.is_empty() || system == NHS_SYSTEM => d,
                Some(_) => return None,
                None => one,
            };
            NhsNumber::parse(digits).ok()
        }
        _ => None,
    }
}

/// CareTeam / AuditEvent (ED clinician): every other parameter must be one the CapabilityStatement
/// declares (docs/FHIR.md: unsupported ones are refused, never ignored): `_format` JSON (XML is
/// 406), the declared `_include`s, and `_count` 1..=25 on AuditEvent. Then a query naming a child
/// → 200; no `patient:identifier`, or one that does not name a child → 400; repeated → 200 or 400
/// (the server may refuse "one child at a time").
fn fhir_expected(path: &str, query: &str) -> &'static [u16] {
    let pairs = form_decode(query);
    let audit = path.contains("AuditEvent");
    let mut xml = false;
    for (k, v) in &pairs {
        let ok = match k.as_str() {
            "patient:identifier" => true,
            "_format" => {
                let mime = v.split(';').next().unwrap_or("").trim();
                if matches!(mime, "xml" | "text/xml" | "application/xml" | "application/fhir+xml") {
                    xml = true;
                    true
                } else {
                    matches!(mime, "json" | "application/json" | "application/fhir+json")
                }
            }
            "_include" if audit => [
                "AuditEvent:entity-type=http://terminology.hl7.org/CodeSystem/v3-RoleClass|ASSIGNED",
                "AuditEvent:agent",
                "AuditEvent:agent:PractitionerRole",
                "AuditEvent:patient",
                "PractitionerRole",
            ]
            .contains(&v.as_str()),
            "_include" => ["CareTeam:patient", "CareTeam:subject", "CareTeam:participant"]
                .contains(&v.as_str()),
            "_count" if audit => v.parse::<usize>().is_ok_and(|n| (1..=25).contains(&n)),
            _ => false,
        };
        if !ok {
            // Refused, but which of several problems is named first is the server's choice.
            return &[400, 406];
        }
    }
    if xml {
        return &[400, 406];
    }
    if fhir_child(&pairs).is_some() {
        &[200]
    } else if values(&pairs, "patient:identifier").len() > 1 {
        &[200, 400]
    } else {
        &[400]
    }
}

/// Notifications (Coventry): `after` absent, empty or a cursor (0..=i64::MAX) and `limit` absent
/// or 1..=1000, each given at most once → 200; anything else → 400.
fn notifications_expected(query: &str) -> &'static [u16] {
    let pairs = form_decode(query);
    let (after, limit) = (values(&pairs, "after"), values(&pairs, "limit"));
    if after.len() > 1 || limit.len() > 1 {
        return &[400];
    }
    let after_ok = match after.first() {
        None | Some(&"") => true,
        Some(a) => a.parse::<u64>().is_ok_and(|v| v <= i64::MAX as u64),
    };
    let limit_ok = match limit.first() {
        None => true,
        Some(l) => l.parse::<u32>().is_ok_and(|v| (1..=1000).contains(&v)),
    };
    if after_ok && limit_ok {
        &[200]
    } else {
        &[400]
    }
}

/// An upload report (Coventry): a malformed parameter → 400 (`after` and `limit` must be
/// numbers, `outcome` empty or CPR01..CPR07, `format` csv or json, each given at most once,
/// `after` at most i64::MAX); another LA's or an unknown upload → 404; else 200. When both a
/// 404 and a 400 apply, either may win.
fn report_expected(query: &str, own: bool) -> Vec<u16> {
    let pairs = form_decode(query);
    let get = |k: &str| values(&pairs, k);
    let (after, limit, outcome, format) =
        (get("after"), get("limit"), get("outcome"), get("format"));
    if [&after, &limit, &outcome, &format]
        .iter()
        .any(|v| v.len() > 1)
        || after.first().is_some_and(|a| a.parse::<u64>().is_err())
        || limit.first().is_some_and(|l| l.parse::<u32>().is_err())
    {
        return vec![400];
    }
    let outcome_ok = match outcome.first() {
        None | Some(&"") => true,
        Some(o) => RecordOutcome::from_code(&o.to_ascii_uppercase()).is_some(),
    };
    let csv = format
        .first()
        .is_some_and(|f| f.eq_ignore_ascii_case("csv"));
    let format_ok = format
        .first()
        .is_none_or(|f| f.eq_ignore_ascii_case("csv") || f.eq_ignore_ascii_case("json"));
    let after_ok = csv
        || after
            .first()
            .is_none_or(|a| a.parse::<u64>().is_ok_and(|v| v <= i64::MAX as u64));
    let bad = !(outcome_ok && format_ok && after_ok);
    match (own, bad) {
        (true, false) => vec![200],
        (true, true) => vec![400],
        (false, false) => vec![404],
        (false, true) => vec![400, 404],
    }
}

// ---------------------------------------------------------------------------------------------
// Sending and checking.

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// GET `path?query` with a bearer token. `None` when no client could send that request line.
fn send(path: &str, query: &str, token: &str, extra: &[(&str, &str)]) -> Option<Answer> {
    send_as(Method::GET, path, query, token, extra)
}

fn send_as(
    method: Method,
    path: &str,
    query: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> Option<Answer> {
    let uri: Uri = format!("{path}?{query}").parse().ok()?;
    let f = fuzz();
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let r = f.rt.block_on(f.app.send(b.body(Body::empty()).unwrap()));
    Some(Answer {
        status: r.status.as_u16(),
        content_type: r
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        body: r.body,
    })
}

fn json_of(a: &Answer, what: &str) -> Result<serde_json::Value, TestCaseError> {
    serde_json::from_slice(&a.body).map_err(|e| {
        TestCaseError::fail(format!("{what}: body is not JSON ({e}): {}", head(&a.body)))
    })
}

/// The start of a body, for messages.
fn head(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(400).collect()
}

fn check_status(a: &Answer, expected: &[u16], what: &str) -> Result<(), TestCaseError> {
    prop_assert!(a.status < 500, "{what}: {} {}", a.status, head(&a.body));
    prop_assert!(
        expected.contains(&a.status),
        "{what}: status {} (expected {expected:?}): {}",
        a.status,
        head(&a.body)
    );
    Ok(())
}

/// A FHIR answer to `query`: a searchset Bundle (200) or an OperationOutcome (`invalid` for a
/// 400). `what` starts with the path.
fn check_fhir(a: &Answer, query: &str, what: &str) -> Result<(), TestCaseError> {
    check_status(a, fhir_expected(what, query), what)?;
    let child = fhir_child(&form_decode(query));
    prop_assert!(
        a.content_type.starts_with("application/fhir+json"),
        "{what}: content type {:?}",
        a.content_type
    );
    let j = json_of(a, what)?;
    if a.status == 200 {
        prop_assert_eq!(&j["resourceType"], "Bundle", "{}: {}", what, j);
        prop_assert_eq!(&j["type"], "searchset", "{}: {}", what, j);
        prop_assert!(j["total"].is_u64(), "{what}: {j}");
        if let Some(nhs) = child {
            // The search was for that child: the self link names it, and the shared child's two
            // plans (one per LA) are found; the number no LA holds finds nothing.
            let link = j["link"][0]["url"].as_str().unwrap_or("");
            prop_assert!(link.contains(&nhs.digits()), "{what}: self link {link}");
            if what.starts_with("/fhir/R4/CareTeam") {
                let want = match nhs.digits().as_str() {
                    SHARED_CHILD => Some(2),
                    "9434765919" => Some(0),
                    _ => None,
                };
                if let Some(want) = want {
                    prop_assert_eq!(&j["total"], want, "{}: {}", what, j);
                }
            }
        }
    } else {
        prop_assert_eq!(&j["resourceType"], "OperationOutcome", "{}: {}", what, j);
        prop_assert_eq!(&j["issue"][0]["severity"], "error", "{}: {}", what, j);
        if a.status == 400 {
            prop_assert_eq!(&j["issue"][0]["code"], "invalid", "{}: {}", what, j);
        }
        prop_assert!(j["issue"][0]["diagnostics"].is_string(), "{what}: {j}");
    }
    Ok(())
}

/// An API error: RFC 9457 problem details with `{"error": code, "message": text}`.
fn check_api_error(a: &Answer, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        a.content_type.starts_with("application/problem+json"),
        "{what}: content type {:?}",
        a.content_type
    );
    let j = json_of(a, what)?;
    let code = match a.status {
        400 => "bad_request",
        404 => "not_found",
        _ => "",
    };
    prop_assert_eq!(&j["error"], code, "{}: {}", what, j);
    prop_assert!(j["message"].is_string(), "{what}: {j}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies.

/// NHS numbers and near misses: valid (found, not found, grouped, `+`/`%20` spaces), bad check
/// digit, wrong lengths, full-width digits, signs, broken and non-UTF-8 escapes, 10 kB of digits.
fn nhs_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(vec![
            SHARED_CHILD,
            "9434765919",
            "999 059 7634",
            "999+059+7634",
            "999%20059%207634",
            "%39990597634",
            " 9990597634 ",
        ])
        .prop_map(str::to_owned),
        2 => select(vec![
            "9990597635",
            "",
            "123",
            "99905976340",
            "999059763",
            "999-059-7634",
            "-9990597634",
            "+9990597634",
            "\u{ff19}\u{ff19}\u{ff19}0597634",
            "9990597634%00",
            "%FF%FE",
            "%C3",
            "%E2%82",
            "%",
            "%G1",
            "%%",
            "%7",
            "0x9990597634",
            "9990597634&patient:identifier=9434765919",
        ])
        .prop_map(str::to_owned),
        1 => "[0-9 +]{0,14}",
        1 => "\\PC{0,20}",
        1 => (0usize..10_000, select(vec!["9", "0", " ", "%39", "x"]))
            .prop_map(|(n, s)| s.repeat(n)),
    ]
}

/// `system|number`, with odd systems and separators (or a bare number).
fn identifier_value() -> impl Strategy<Value = String> {
    let system = prop_oneof![
        5 => Just(NHS_SYSTEM),
        1 => Just(""),
        2 => select(vec![
            "https://fhir.nhs.uk/Id/nhs-number/",
            "HTTPS://FHIR.NHS.UK/Id/nhs-number",
            "https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number",
            "http://fhir.nhs.uk/Id/nhs-number",
            "https://fhir.nhs.uk/Id/ods-organization-code",
            "urn:oid:2.16.840.1.113883.2.1.4.1",
            "https://fhir.nhs.uk/Id/nhs-number%FF",
            " https://fhir.nhs.uk/Id/nhs-number",
        ]),
    ];
    let separator = prop_oneof![
        5 => select(vec!["|", "%7C", "%7c"]),
        1 => select(vec!["||", "|%7C", "%257C", "%7C%7C", ""]),
    ];
    (
        prop::option::weighted(0.85, (system, separator)),
        nhs_value(),
    )
        .prop_map(|(prefix, n)| match prefix {
            Some((system, sep)) => format!("{system}{sep}{n}"),
            None => n,
        })
}

fn fhir_key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(vec![
            "patient:identifier",
            "patient%3Aidentifier",
            "patient%3aidentifier",
            "%70atient:identifier",
        ])
        .prop_map(str::to_owned),
        2 => select(vec![
            "Patient:identifier",
            "patient:identifier:of-type",
            "patient.identifier",
            "patient",
            "identifier",
            "subject:identifier",
            "_format",
            "_count",
            "",
            "patient:identifier%00",
            "patient:identifier ",
            "patient+:identifier",
            "%FF",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

/// `key=value` pairs joined with `&` (sometimes doubled, sometimes a pair without `=`).
fn fhir_pairs() -> impl Strategy<Value = String> {
    (
        vec(
            (fhir_key(), prop::option::weighted(0.9, identifier_value())),
            0..5,
        ),
        select(vec!["&", "&", "&", "&&", ";"]),
    )
        .prop_map(|(pairs, sep)| {
            let parts: Vec<String> = pairs
                .into_iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k,
                })
                .collect();
            sanitize(&parts.join(sep))
        })
}

/// One `patient:identifier` (in one of its spellings), perhaps among other parameters: mostly
/// well-formed, so that lookups succeed as often as they fail.
fn fhir_single() -> impl Strategy<Value = String> {
    (
        select(vec![
            "patient:identifier",
            "patient%3Aidentifier",
            "patient%3aidentifier",
            "%70atient:identifier",
        ]),
        identifier_value(),
        vec(
            select(vec![
                "_format=json",
                "_count=5",
                "&",
                "_include=CareTeam:patient",
                "x=",
            ]),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(key, value, extra, first)| {
            let pair = format!("{key}={value}");
            let mut parts: Vec<String> = extra.into_iter().map(str::to_owned).collect();
            if first {
                parts.insert(0, pair);
            } else {
                parts.push(pair);
            }
            sanitize(&parts.join("&"))
        })
}

fn fhir_query() -> impl Strategy<Value = String> {
    prop_oneof![fhir_single(), fhir_pairs()]
}

fn any_query() -> impl Strategy<Value = String> {
    prop_oneof![
        fhir_query(),
        vec(any::<u8>(), 0..300).prop_map(|b| bytes_query(&b)),
        (vec(any::<u8>(), 0..60))
            .prop_map(|b| format!("patient:identifier={NHS_SYSTEM}|{}", bytes_query(&b))),
        "\\PC{0,200}".prop_map(|s| sanitize(&s)),
    ]
}

/// Values for numeric parameters: numbers around every boundary and junk.
fn number_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "0",
            "1",
            "2",
            "100",
            "1000",
            "1001",
            "10000",
            "10001",
            "4294967295",
            "4294967296",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999",
            "-1",
            "+5",
            "",
            " 5",
            "5 ",
            "5+",
            "1e3",
            "0x10",
            "%35",
            "%FF",
            "%",
            "%C3%A9",
            "null",
        ])
        .prop_map(str::to_owned),
        2 => any::<u64>().prop_map(|n| n.to_string()),
        1 => (0u64..5000).prop_map(|n| n.to_string()),
        1 => "\\PC{0,12}",
        1 => (0usize..10_000).prop_map(|n| "9".repeat(n)),
    ]
}

fn api_key(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(names.to_vec()).prop_map(str::to_owned),
        2 => select(names.to_vec()).prop_map(|n| {
            // The same key percent-encoded: `limit` → `%6C%69%6D%69%74`.
            n.bytes().map(|b| format!("%{b:02X}")).collect()
        }),
        1 => select(vec![
            "cursor", "Limit", "AFTER", "page", "", "after ", "limit%00", "%FF", "_count",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

fn api_query(
    names: &'static [&'static str],
    value: impl Strategy<Value = String>,
) -> impl Strategy<Value = String> {
    (
        vec((api_key(names), prop::option::weighted(0.9, value)), 0..5),
        select(vec!["&", "&", "&", "&&"]),
    )
        .prop_map(|(pairs, sep)| {
            let parts: Vec<String> = pairs
                .into_iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k,
                })
                .collect();
            sanitize(&parts.join(sep))
        })
}

const NOTIFICATION_PARAMS: &[&str] = &["after", "limit"];
const REPORT_PARAMS: &[&str] = &["after", "limit", "outcome", "format"];

fn report_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => number_value(),
        2 => select(vec![
            "CPR01", "cpr06", "CPR07", "CPR00", "CPR08", "CPR1", "", "cpr", "CPF01", "csv", "CSV",
            "json", "Json", "xml", "csv ", "%63sv", "text/csv", "%FF",
        ])
        .prop_map(str::to_owned),
    ]
}

/// 0 own upload, 1 another LA's, 2 unknown, 3 own in capitals and 4 own with a trailing space
/// (ids are UUIDs, read leniently: the same upload), 5+ malformed ids.
fn upload_id() -> impl Strategy<Value = usize> {
    prop_oneof![6 => Just(0usize), 1 => Just(1), 1 => Just(2), 2 => 3usize..9]
}

fn upload_path(which: usize) -> (String, bool) {
    let f = fuzz();
    let id = match which {
        0 => f.coventry_upload.clone(),
        1 => f.westminster_upload.clone(),
        2 => "0b1e6a4c-3f7d-4a8e-9c2b-5d6e7f8a9b0c".to_owned(),
        3 => f.coventry_upload.to_uppercase(),
        4 => format!("{}%20", f.coventry_upload),
        // (A non-UTF-8 escape here is a known bug: see the ignored test below.)
        5 => "%E2%9C%93%20".to_owned(),
        6 => "x".repeat(5000),
        7 => format!("{}%2F..", f.coventry_upload),
        _ => "..%2F..%2Fnotifications".to_owned(),
    };
    (
        format!("/api/v1/uploads/{id}"),
        which <= 4 && which != 1 && which != 2,
    )
}

// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn care_team_queries_get_a_bundle_or_an_invalid_outcome_never_a_5xx(query in fhir_query()) {
        let what = format!("/fhir/R4/CareTeam?{query}");
        if let Some(a) = send("/fhir/R4/CareTeam", &query, ED_TOKEN, &[("IsUnscheduledAccessEvent", "true")]) {
            check_fhir(&a, &query, &what)?;
        }
    }

    #[test]
    fn audit_event_queries_get_a_bundle_or_an_invalid_outcome_never_a_5xx(query in fhir_query()) {
        let what = format!("/fhir/R4/AuditEvent?{query}");
        if let Some(a) = send("/fhir/R4/AuditEvent", &query, ED_TOKEN, &[]) {
            check_fhir(&a, &query, &what)?;
        }
    }

    #[test]
    fn arbitrary_bytes_as_fhir_queries_never_get_a_5xx(query in any_query(), audit in any::<bool>()) {
        let path = if audit { "/fhir/R4/AuditEvent" } else { "/fhir/R4/CareTeam" };
        let what = format!("{path}?{query}");
        if let Some(a) = send(path, &query, ED_TOKEN, &[("IsUnscheduledAccessEvent", "false")]) {
            check_fhir(&a, &query, &what)?;
        }
    }

    #[test]
    fn notification_queries_get_a_page_or_a_bad_request_never_a_5xx(
        query in prop_oneof![
            4 => api_query(NOTIFICATION_PARAMS, number_value()),
            1 => any_query(),
        ],
    ) {
        let what = format!("notifications?{query}");
        if let Some(a) = send("/api/v1/notifications", &query, COVENTRY_TOKEN, &[]) {
            check_status(&a, notifications_expected(&query), &what)?;
            if a.status == 200 {
                let j = json_of(&a, &what)?;
                prop_assert!(j["notifications"].is_array(), "{what}: {j}");
                prop_assert!(j["next_cursor"].is_string(), "{what}: {j}");
            } else {
                check_api_error(&a, &what)?;
            }
        }
    }

    #[test]
    fn upload_report_queries_get_the_report_or_a_4xx_never_a_5xx(
        which in upload_id(),
        query in prop_oneof![
            4 => api_query(REPORT_PARAMS, report_value()),
            1 => any_query(),
        ],
    ) {
        let (path, own) = upload_path(which);
        let what = format!("{path}?{query}");
        if let Some(a) = send(&path, &query, COVENTRY_TOKEN, &[]) {
            check_status(&a, &report_expected(&query, own), &what)?;
            if a.status == 200 {
                if a.content_type.starts_with("text/csv") {
                    prop_assert!(std::str::from_utf8(&a.body).is_ok(), "{what}: CSV not UTF-8");
                } else {
                    let j = json_of(&a, &what)?;
                    prop_assert!(j["id"].is_string(), "{what}: {j}");
                    prop_assert!(j["records"].is_array(), "{what}: {j}");
                }
            } else {
                check_api_error(&a, &what)?;
            }
        }
    }
}

/// The oracle's decoding agrees with hand-worked examples.
#[test]
fn form_decoding_matches_worked_examples() {
    assert_eq!(
        form_decode("a=1&&b=%41+c&=x&d&e=%FF&f=%G1%&g=%7c"),
        vec![
            ("a".into(), "1".into()),
            ("b".into(), "A c".into()),
            ("".into(), "x".into()),
            ("d".into(), "".into()),
            ("e".into(), "\u{fffd}".into()),
            ("f".into(), "%G1%".into()),
            ("g".into(), "|".into()),
        ]
    );
    assert_eq!(
        fhir_expected("/fhir/R4/CareTeam", &patient_query(SHARED_CHILD)),
        &[200]
    );
    assert_eq!(
        fhir_expected("/fhir/R4/CareTeam", "patient:identifier=9990597635"),
        &[400]
    );
    assert_eq!(fhir_expected("/fhir/R4/CareTeam", ""), &[400]);
    assert_eq!(
        fhir_expected(
            "/fhir/R4/CareTeam",
            &format!("{}&_sort=x", patient_query(SHARED_CHILD))
        ),
        &[400, 406]
    );
    assert_eq!(
        fhir_expected(
            "/fhir/R4/AuditEvent",
            &format!("{}&_count=3", patient_query(SHARED_CHILD))
        ),
        &[200]
    );
    assert_eq!(notifications_expected("limit=0"), &[400]);
    assert_eq!(notifications_expected("after=&limit=1000"), &[200]);
}

/// An id that cannot exist is answered like one that does not (`uploads.rs`: "no hint either
/// way"): a JSON 404 — also when the id segment holds a percent-escape that is not UTF-8.
#[test]
fn non_utf8_ids_in_paths_are_json_not_found() {
    for (method, path) in [
        (Method::GET, "/api/v1/uploads/%FF%FE"),
        (Method::POST, "/api/v1/uploads/%FF%FE/confirm"),
        (Method::POST, "/api/v1/notifications/%FF%FE/ack"),
        (Method::GET, "/api/v1/uploads/%C3"),
    ] {
        let a = send_as(method.clone(), path, "", COVENTRY_TOKEN, &[]).unwrap();
        let what = format!("{method} {path}");
        assert_eq!(a.status, 404, "{what}: {}", head(&a.body));
        assert!(
            a.content_type.starts_with("application/problem+json"),
            "{what}: content type {:?}: {}",
            a.content_type,
            head(&a.body)
        );
        let j: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(j["error"], "not_found", "{what}: {j}");
    }
}
