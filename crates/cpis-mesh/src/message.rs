//! Messages as the client hands them over: inbound (downloaded), outbound (to send), tracked.

/// A message downloaded from our inbox, all chunks joined and decompressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundMessage {
    /// MESH message id (`Mex-MessageID`, else the id it was downloaded by).
    pub message_id: String,
    /// Sending mailbox (`Mex-From`); empty for reports MESH makes itself.
    pub sender: String,
    /// Receiving mailbox (`Mex-To`).
    pub recipient: String,
    /// `Mex-WorkflowID`.
    pub workflow_id: Option<String>,
    /// The sender's own id for the message (`Mex-LocalID`).
    pub local_id: Option<String>,
    /// `Mex-Subject`.
    pub subject: Option<String>,
    /// `Mex-FileName`.
    pub filename: Option<String>,
    /// `DATA`, or `REPORT` for a delivery report (e.g. a non-delivery report about a message
    /// we sent: see `linked_message_id` and the `status_*` fields).
    pub message_type: String,
    /// The sender's content type: `Mex-Content-Type`, else `Content-Type`.
    pub content_type: Option<String>,
    /// For reports, the message the report is about (`Mex-LinkedMsgId`).
    pub linked_message_id: Option<String>,
    /// `Mex-StatusSuccess`: `SUCCESS` or `ERROR`.
    pub status_success: Option<String>,
    /// `Mex-StatusCode`, e.g. `14` for "undelivered".
    pub status_code: Option<String>,
    /// `Mex-StatusDescription`.
    pub status_description: Option<String>,
    /// The content (empty for reports).
    pub body: Vec<u8>,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Recipient mailbox (`Mex-To`).
    pub to: String,
    /// `Mex-WorkflowID`, e.g. `CPIS_UPLOAD_REPORT`.
    pub workflow_id: String,
    /// Our own unique id for this message (`Mex-LocalID`), used to find it again with
    /// `track_by_local_id` when a send's outcome is unknown.
    pub local_id: String,
    /// `Mex-Subject`.
    pub subject: Option<String>,
    /// `Mex-FileName`.
    pub filename: Option<String>,
    /// Media type of the whole body, e.g. `text/csv` (sent as `Content-Type` when the message
    /// fits in one chunk, else as `Mex-Content-Type`).
    pub content_type: String,
    /// The content; must not be empty (MESH refuses empty messages).
    pub body: Vec<u8>,
}

/// What MESH's tracking says about a message we sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    /// MESH message id.
    pub message_id: String,
    /// Lower-case status, e.g. `uploading` (chunks still missing), `accepted` (in the
    /// recipient's inbox), `acknowledged`, `undeliverable`, `error`.
    pub status: String,
    /// Our `Mex-LocalID`.
    pub local_id: Option<String>,
    /// Recipient mailbox.
    pub recipient: Option<String>,
}

/// One page of inbox message ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxPage {
    /// Message ids on this page, oldest first.
    pub messages: Vec<String>,
    /// `links.next`: the path (with `continue_from`) of the next page, if there is one.
    pub next: Option<String>,
    /// `approx_inbox_count`, when given.
    pub approx_inbox_count: Option<u64>,
}
