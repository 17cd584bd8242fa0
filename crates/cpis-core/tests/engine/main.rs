//! cpis-core's integration tests, one binary: the upload engine, plan lifecycle and retention,
//! webhook delivery and the MESH worker. Each module was its own `tests/*.rs` file; they share
//! `tests/common` (a fresh store per test: SQLite, or PostgreSQL with `CPIS_TEST_BACKEND=postgres`
//! and `CPIS_TEST_PG_URL`; each test's store is checked when it is dropped).

#[path = "../common/mod.rs"]
mod common;

mod attendance;
mod births;
mod harness;
mod lifecycle;
mod mesh_failures;
mod mesh_worker;
mod upload_engine;
mod webhooks;
