//! The MESH channel (SPEC 3.4): cpis as a mailbox on a MESH server. LAs send uploads to cpis's
//! mailbox (`CPIS_UPLOAD`); cpis takes each through the same upload engine as every other
//! channel, answers with `CPIS_UPLOAD_REPORT`, and acknowledges the message only after both the
//! upload and the queued report are durable. Access and inactive-NHS-number notifications go
//! to each LA's mailbox from the MESH outbox, once each (idempotent local ids, checked by
//! tracking after an unknown outcome), resuming after restarts and MESH outages.
//!
//! The protocol client is the `cpis-mesh` crate; payload formats are in docs/MESH.md.

mod inbound;
mod outbound;
mod payloads;
mod worker;

pub use inbound::Received;
pub use outbound::SendPass;
pub use payloads::{
    UploadSubject, WORKFLOW_ACCESS, WORKFLOW_INACTIVE_NHS_NUMBER, WORKFLOW_UPLOAD,
    WORKFLOW_UPLOAD_REPORT,
};
pub use worker::{MeshFailure, MeshSettings, MeshWorker, Pass};

use cpis_domain::LocalAuthority;

/// Why a MESH pass stopped short.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("MESH: {0}")]
    Mesh(#[from] cpis_mesh::MeshError),
    #[error(transparent)]
    Store(#[from] cpis_store::StoreError),
    #[error("could not write the upload report: {0}")]
    Report(String),
}

impl MeshError {
    /// MESH itself is not answering (or refused cpis): later requests would fail alike.
    pub fn mesh_down(&self) -> bool {
        matches!(self, MeshError::Mesh(e) if e.is_retryable())
    }
}

/// The upload capability of an LA's verified MESH mailbox: the LA is the directory's owner of
/// the sending mailbox, whatever the message says.
#[allow(clippy::expect_used, clippy::unwrap_used, reason = "cannot fail here")]
fn sender_capability(la: &LocalAuthority, mailbox: &str) -> cpis_auth::capability::LaUpload {
    cpis_auth::Principal::local_operator(
        &format!("mesh:{mailbox}"),
        la.ods_code.clone(),
        &la.name,
        cpis_auth::OrgKind::LocalAuthority,
        cpis_domain::Permissions::new([cpis_domain::Permission::LaUpload]),
    )
    .la_upload()
    .expect("a principal with la:upload at an LA holds the upload capability")
}
