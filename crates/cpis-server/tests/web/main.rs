//! The web page tests, one binary: the LA, admin, sign-in (OIDC) and shared pages. Each module
//! was its own `tests/*.rs` file; they share `tests/common` (`common::web` drives forms and
//! sessions). Run on SQLite by default, on PostgreSQL with `CPIS_TEST_BACKEND=postgres`.

#[path = "../common/mod.rs"]
mod common;

mod web_admin;
mod web_attendance;
mod web_flag;
mod web_la;
mod web_la_history;
mod web_oidc;
mod web_pages;
mod web_was_not_brought;
