//! The HTTP API tests, one binary (one link instead of one per file): uploads, FHIR, notifications,
//! the event stream, the admin API, and the test harness's own end-of-test checks. Each module
//! was its own `tests/*.rs` file; they share `tests/common`. Run on SQLite by default, on
//! PostgreSQL with `CPIS_TEST_BACKEND=postgres` and `CPIS_TEST_PG_URL` (see `common`).

#[path = "../common/mod.rs"]
mod common;

mod api_admin;
mod api_contacts;
mod api_fhir;
mod api_notifications;
mod api_stream;
mod api_uploads;
mod api_was_not_brought;
mod api_work_queue;
mod harness;
