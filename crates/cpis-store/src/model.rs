//! Values the store hands back or takes that are not domain types of their own.

use chrono::{DateTime, Utc};
use cpis_domain::report::{UploadId, UploadMeta};
use cpis_domain::RecordOutcome;

/// A CP-IS record as stored (the domain's [`cpis_domain::Record`]).
pub type StoredRecord = cpis_domain::Record;

/// An unborn child protection plan whose expected delivery date has passed with no plan of its
/// LA for a baby registered to the mother ([`crate::ChangesTx::due_birth_reminders`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueBirthReminder {
    pub la: cpis_domain::OdsCode,
    /// The mother's NHS number (the UCPP is held against it).
    pub mother: cpis_domain::NhsNumber,
    /// The LA's local id of the mother's record.
    pub local_id: Option<String>,
    pub plan: cpis_domain::Plan,
}

/// An upload about to be processed.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub id: UploadId,
    pub meta: UploadMeta,
    pub content_sha256: String,
    pub received_at: DateTime<Utc>,
}

/// Which row results to read, in row order.
#[derive(Debug, Clone)]
pub struct RowFilter {
    pub after_row: u64,
    pub limit: u32,
    pub outcome: Option<RecordOutcome>,
}

impl Default for RowFilter {
    fn default() -> Self {
        RowFilter {
            after_row: 0,
            limit: u32::MAX,
            outcome: None,
        }
    }
}

/// Sizes of the main tables, for status pages and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreCounts {
    pub local_authorities: u64,
    pub care_settings: u64,
    pub demographics: u64,
    pub records: u64,
    pub plans: u64,
    pub uploads: u64,
    pub accesses: u64,
    pub notifications: u64,
}

/// A human user or a system, with its organisation and permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub kind: UserKind,
    pub organisation: cpis_domain::OdsCode,
    /// The job role shown in audit and access history (e.g. "Clinician", "Social worker").
    pub role: String,
    pub permissions: cpis_domain::Permissions,
    /// Argon2id PHC string; `None` for systems and token-only users.
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub failed_logins: u32,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    User,
    System,
}

impl UserKind {
    pub fn code(self) -> &'static str {
        match self {
            UserKind::User => "user",
            UserKind::System => "system",
        }
    }
}

/// An API token about to be stored (its digest only).
#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub id: String,
    pub user_id: String,
    pub token_hash: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// An administrative change to an identity, written together with its audit entry by
/// [`crate::Store::change_identity`].
#[derive(Debug, Clone)]
pub enum IdentityChange {
    /// A new user or system ([`crate::Store::create_user`]).
    CreateUser(User),
    /// A user's mutable fields replaced ([`crate::Store::update_user`]).
    UpdateUser(User),
    /// A new API token ([`crate::Store::create_api_token`]).
    CreateToken(NewApiToken),
    /// A new application-restricted client and the system identity it acts as (the user is
    /// created with it).
    RegisterClient { user: User, client: OAuthClient },
}

/// The public keys an application-restricted client signs its assertions with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKeys {
    /// A JWKS document registered with the client.
    Jwks(String),
    /// A JWKS URL, fetched (and refetched when an assertion names an unknown key).
    JwksUrl(String),
}

/// An application-restricted client (signed-JWT client credentials, `POST /oauth2/token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub client_id: String,
    /// The system identity (a [`User`] named `client:<client_id>`) the client acts as.
    pub user_id: String,
    pub keys: ClientKeys,
    /// Whether its application-only tokens may make clinical lookups ("unattended access"):
    /// refused unless an operator registered the client so.
    pub allow_unattended_lookups: bool,
    pub created_at: DateTime<Utc>,
}

/// A login session (its cookie digest only).
#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The person's NHS identity, for a CIS2 sign-in (else empty).
    pub nhs: cpis_domain::NhsIdentity,
    /// The CIS2 sign-in's assurance level (the lower of identity and authentication assurance);
    /// `None` for local sign-ins.
    pub assurance_level: Option<u8>,
    /// The work contact the identity provider asserted at sign-in (else empty).
    pub contact: cpis_domain::WorkContact,
}

/// Audit search criteria (newest first).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub subject_nhs: Option<cpis_domain::NhsNumber>,
    pub actor_id: Option<String>,
    pub organisation: Option<String>,
    /// Actions starting with this, e.g. `lookup.` or `security.anomaly`.
    pub action_prefix: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only entries with a lower seq (paging backwards).
    pub before_seq: Option<u64>,
    pub limit: u32,
}

/// An LA's webhook endpoint. The secret signs every delivery (HMAC-SHA256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub la: cpis_domain::OdsCode,
    pub url: String,
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

/// A delivery claimed by a worker: the notification to send and where.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub notification: cpis_domain::Notification,
    pub webhook: Webhook,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
}

/// A delivery given up on (shown to admins).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadDelivery {
    pub id: i64,
    pub notification_id: String,
    pub la: String,
    pub url: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub dead_at: DateTime<Utc>,
}

/// A MESH message to queue for sending (see `Store::mesh_enqueue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMeshMessage {
    /// Sent as `mex-LocalID`; unique: queuing the same local id again does nothing.
    pub local_id: String,
    /// The recipient's MESH mailbox id.
    pub recipient: String,
    pub workflow_id: String,
    pub subject: Option<String>,
    pub filename: Option<String>,
    pub content_type: String,
    pub body: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// A queued MESH message claimed by a worker for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshOutgoing {
    pub id: i64,
    pub message: NewMeshMessage,
    pub attempts: u32,
    /// A send was started before and its outcome is unknown: MESH may hold it already.
    pub send_started: bool,
}

/// Where a queued MESH message stands (for operators and tests).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MeshOutboxEntry {
    pub local_id: String,
    pub recipient: String,
    pub workflow_id: String,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub message_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub dead_at: Option<DateTime<Utc>>,
}
