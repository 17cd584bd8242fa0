//! The one error type of the client, split by what the caller should do about it.

/// What went wrong talking to MESH.
///
/// Only [`MeshError::Unavailable`] is worth retrying later; see [`MeshError::is_retryable`].
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// MESH could not be reached or answered "not now": connection refused or reset, DNS or TLS
    /// failure, timeout, HTTP 5xx, 408, 425 or 429. Retry later. For a send, the message may or
    /// may not have been accepted: look it up with `track_by_local_id` before sending again.
    #[error("MESH unavailable: {0}")]
    Unavailable(String),
    /// MESH refused the request (HTTP 4xx other than those above), e.g. 403 for bad
    /// credentials, 417 for an unknown recipient or an empty body. Retrying the same request
    /// will not help.
    #[error("MESH rejected the request: HTTP {status}: {detail}")]
    Rejected {
        /// The HTTP status code.
        status: u16,
        /// MESH's error description (never message content).
        detail: String,
    },
    /// MESH answered something this client does not understand (missing header, bad JSON,
    /// inconsistent chunk numbers).
    #[error("MESH protocol error: {0}")]
    Protocol(String),
    /// The client configuration or an outbound message is unusable (bad URL, unreadable PEM
    /// file, header value with control characters).
    #[error("MESH client configuration error: {0}")]
    Config(String),
}

impl MeshError {
    /// Whether the same call may succeed later: true only for [`MeshError::Unavailable`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, MeshError::Unavailable(_))
    }

    /// The HTTP status, for [`MeshError::Rejected`].
    pub fn status(&self) -> Option<u16> {
        match self {
            MeshError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Whether an HTTP error status means "try again later" rather than "no".
pub(crate) fn status_is_transient(status: u16) -> bool {
    status >= 500 || matches!(status, 408 | 425 | 429)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(MeshError::Unavailable("x".into()).is_retryable());
        assert!(!MeshError::Rejected {
            status: 403,
            detail: "x".into()
        }
        .is_retryable());
        assert!(!MeshError::Protocol("x".into()).is_retryable());
        assert!(!MeshError::Config("x".into()).is_retryable());
    }

    #[test]
    fn transient_statuses() {
        for s in [500, 502, 503, 504, 408, 425, 429] {
            assert!(status_is_transient(s), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 417, 423] {
            assert!(!status_is_transient(s), "{s}");
        }
    }
}
