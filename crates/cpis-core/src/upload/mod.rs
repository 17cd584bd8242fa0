//! The LA upload engine (SPEC 2.5–2.7). Every channel (HTTP, CLI, web, MESH) hands it a spooled
//! file and file-level metadata and gets the same report back.
//!
//! An upload runs in one storage transaction and two passes over the spooled file:
//! 1. *verify*: parse each row, check it against the demographics index, record its outcome;
//! 2. *apply*: re-read the file and write the accepted rows; in `full` mode end the LA's open
//!    plans the file no longer lists.
//!
//! Between the passes the mass-ending guard decides whether a full upload is held for
//! confirmation instead. The transaction commits only at the very end, so an upload is applied
//! whole or not at all, and neither the file nor its report is ever held whole in memory.

mod csv_reader;
mod engine;
mod read_ahead;
mod report_csv;
mod spool;

pub use csv_reader::{FileError, UploadReader};
pub use engine::{EngineError, Progress, ProgressPhase, Submitted, UploadEngine, UploadSettings};
pub use report_csv::{report_file_name, sentence, write_report_csv, REPORT_CSV_HEADER};
pub use spool::{SpoolDir, SpoolError, SpooledFile, Spooler};

/// The upload capability of a local operator (CLI, demo loader, benchmark) acting for an LA.
#[allow(clippy::expect_used, clippy::unwrap_used, reason = "cannot fail here")]
pub fn operator_capability(
    la: &cpis_domain::OdsCode,
    user: &str,
) -> cpis_auth::capability::LaUpload {
    cpis_auth::Principal::local_operator(
        user,
        la.clone(),
        la.as_str(),
        cpis_auth::OrgKind::LocalAuthority,
        cpis_domain::Permissions::new([cpis_domain::Permission::LaUpload]),
    )
    .la_upload()
    .expect("an operator principal with la:upload at an LA holds the upload capability")
}
