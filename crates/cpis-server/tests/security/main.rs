//! The security tests, one binary: the permission matrix, JWT and session authentication, the
//! lookup anomaly detector over HTTP, and the property tests (authentication inputs, FHIR
//! queries; failing seeds are kept in `tests/proptest-regressions`). Each module was its own
//! `tests/*.rs` file; they share `tests/common`. Run on SQLite by default, on PostgreSQL with
//! `CPIS_TEST_BACKEND=postgres`.

#[path = "../common/mod.rs"]
mod common;

mod anomaly_http;
mod auth_fuzz;
mod auth_jwt;
mod auth_sessions;
mod fhir_query_fuzz;
mod security_matrix;
