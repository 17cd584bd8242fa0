//! cpis services: the work the server, the CLI and the MESH worker share, written against the
//! storage interface. No HTTP here: channels call these and render the results.

// Outside tests a failure is an error the caller handles, never a panic: `unwrap` and `expect`
// are refused, except where an `allow` names the invariant that makes them unreachable.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)
)]

pub mod anomaly;
pub mod audit_checkpoint;
pub mod audit_search;
pub mod bench;
pub mod bus;
pub mod delivery;
pub mod demo;
pub mod escalation;
pub mod evidence;
pub mod inbox;
pub mod la_upload;
pub mod lifecycle;
pub mod loaders;
pub mod lookup;
pub mod mesh;
pub mod records;
pub mod refusals;
pub mod upload;
pub mod was_not_brought;
pub mod webhook_url;

pub use lookup::{AccessHistory, LookupRequest, LookupResult, LookupService, LookupSettings};
pub use upload::{UploadEngine, UploadSettings};
