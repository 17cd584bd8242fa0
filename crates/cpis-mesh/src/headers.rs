//! `mex-*` request headers as NHS's `mesh-client` sends them, and reading them back.

use crate::chunks;
use crate::error::MeshError;
use crate::message::{InboundMessage, OutboundMessage};

/// MESH API v2 media type, sent in `Accept`.
pub const MEDIA_TYPE_V2: &str = "application/vnd.mesh.v2+json";
/// Content type of every chunk of a chunked message.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Identifies this client in `mex-ClientVersion` and `User-Agent`.
pub const CLIENT_NAME: &str = "cpis-mesh";

/// Request headers as (name, value) pairs.
pub type Headers = Vec<(&'static str, String)>;

/// Headers for the first POST of a message of `total_chunks` chunks (mesh-client's
/// `_headers_for_chunk` with chunk 1): Content-Type, Mex-Chunk-Range, Mex-To, Mex-WorkflowID,
/// Mex-LocalID, and Mex-Subject, Mex-FileName and Mex-Content-Type when set and needed.
pub fn first_chunk(msg: &OutboundMessage, total_chunks: u32) -> Result<Headers, MeshError> {
    let media_type = if total_chunks == 1 {
        msg.content_type.as_str()
    } else {
        OCTET_STREAM
    };
    let mut headers: Headers = vec![
        ("Content-Type", media_type.to_owned()),
        ("Mex-Chunk-Range", chunks::format_range(1, total_chunks)),
        ("Mex-To", msg.to.clone()),
        ("Mex-WorkflowID", msg.workflow_id.clone()),
        ("Mex-LocalID", msg.local_id.clone()),
    ];
    if let Some(subject) = &msg.subject {
        headers.push(("Mex-Subject", subject.clone()));
    }
    if let Some(filename) = &msg.filename {
        headers.push(("Mex-FileName", filename.clone()));
    }
    if msg.content_type != media_type {
        headers.push(("Mex-Content-Type", msg.content_type.clone()));
    }
    for required in ["Mex-To", "Mex-WorkflowID", "Mex-LocalID"] {
        if headers
            .iter()
            .any(|(n, v)| *n == required && v.trim().is_empty())
        {
            return Err(MeshError::Config(format!("{required} must not be empty")));
        }
    }
    for (name, value) in &headers {
        check_value(name, value)?;
    }
    Ok(headers)
}

/// Headers for chunk `chunk` (2..=total) of a chunked message.
pub fn later_chunk(chunk: u32, total_chunks: u32) -> Headers {
    vec![
        ("Content-Type", OCTET_STREAM.to_owned()),
        ("Mex-Chunk-Range", chunks::format_range(chunk, total_chunks)),
    ]
}

/// Headers for the handshake: client and operating-system identification.
pub fn handshake() -> Headers {
    vec![
        (
            "Mex-ClientVersion",
            format!("{CLIENT_NAME}=={}", env!("CARGO_PKG_VERSION")),
        ),
        ("Mex-OSName", std::env::consts::OS.to_owned()),
        ("Mex-OSVersion", os_version()),
        ("Mex-OSArchitecture", std::env::consts::ARCH.to_owned()),
        ("Mex-JavaVersion", "N/A".to_owned()),
    ]
}

/// `User-Agent` in mesh-client's layout: `name;version;java;arch;os;os-version`.
pub fn user_agent() -> String {
    format!(
        "{CLIENT_NAME};{};N/A;{};{};{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        os_version()
    )
}

fn os_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Header values must be printable ASCII: no line breaks (header injection) and nothing a
/// server would decode differently.
pub fn check_value(name: &str, value: &str) -> Result<(), MeshError> {
    if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Ok(())
    } else {
        Err(MeshError::Config(format!("{name} must be printable ASCII")))
    }
}

/// The message fields from a downloaded message's response headers; `get` looks a header up
/// by name, case-insensitively.
pub fn inbound(
    message_id: &str,
    get: impl Fn(&str) -> Option<String>,
    body: Vec<u8>,
) -> InboundMessage {
    let opt = |name: &str| {
        get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    InboundMessage {
        message_id: opt("Mex-MessageID").unwrap_or_else(|| message_id.to_owned()),
        sender: opt("Mex-From").unwrap_or_default(),
        recipient: opt("Mex-To").unwrap_or_default(),
        workflow_id: opt("Mex-WorkflowID"),
        local_id: opt("Mex-LocalID"),
        subject: opt("Mex-Subject"),
        filename: opt("Mex-FileName"),
        message_type: opt("Mex-MessageType")
            .map(|t| t.to_ascii_uppercase())
            .unwrap_or_else(|| "DATA".to_owned()),
        content_type: opt("Mex-Content-Type").or_else(|| opt("Content-Type")),
        linked_message_id: opt("Mex-LinkedMsgId"),
        status_success: opt("Mex-StatusSuccess"),
        status_code: opt("Mex-StatusCode"),
        status_description: opt("Mex-StatusDescription"),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn msg() -> OutboundMessage {
        OutboundMessage {
            to: "B1".into(),
            workflow_id: "CPIS_UPLOAD_REPORT".into(),
            local_id: "L-1".into(),
            subject: Some("Upload report".into()),
            filename: Some("report.csv".into()),
            content_type: "text/csv".into(),
            body: b"x".to_vec(),
        }
    }

    fn get<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn single_chunk_headers_carry_the_content_type_directly() {
        let h = first_chunk(&msg(), 1).unwrap();
        assert_eq!(get(&h, "Content-Type"), Some("text/csv"));
        assert_eq!(get(&h, "Mex-Content-Type"), None, "not both when equal");
        assert_eq!(get(&h, "Mex-Chunk-Range"), Some("1:1"));
        assert_eq!(get(&h, "Mex-To"), Some("B1"));
        assert_eq!(get(&h, "Mex-WorkflowID"), Some("CPIS_UPLOAD_REPORT"));
        assert_eq!(get(&h, "Mex-LocalID"), Some("L-1"));
        assert_eq!(get(&h, "Mex-Subject"), Some("Upload report"));
        assert_eq!(get(&h, "Mex-FileName"), Some("report.csv"));
    }

    #[test]
    fn chunked_headers_use_octet_stream_and_mex_content_type() {
        let mut m = msg();
        m.subject = None;
        m.filename = None;
        let h = first_chunk(&m, 3).unwrap();
        assert_eq!(get(&h, "Content-Type"), Some(OCTET_STREAM));
        assert_eq!(get(&h, "Mex-Content-Type"), Some("text/csv"));
        assert_eq!(get(&h, "Mex-Chunk-Range"), Some("1:3"));
        assert_eq!(get(&h, "Mex-Subject"), None);
        assert_eq!(get(&h, "Mex-FileName"), None);
        let h = later_chunk(2, 3);
        assert_eq!(get(&h, "Mex-Chunk-Range"), Some("2:3"));
        assert_eq!(get(&h, "Content-Type"), Some(OCTET_STREAM));
        assert_eq!(get(&h, "Mex-To"), None, "later chunks carry no addressing");
    }

    #[test]
    fn refuses_header_injection_and_missing_required_values() {
        let mut m = msg();
        m.subject = Some("a\r\nX-Evil: 1".into());
        assert!(matches!(first_chunk(&m, 1), Err(MeshError::Config(_))));
        let mut m = msg();
        m.filename = Some("café.csv".into());
        assert!(matches!(first_chunk(&m, 1), Err(MeshError::Config(_))));
        let mut m = msg();
        m.local_id = " ".into();
        assert!(matches!(first_chunk(&m, 1), Err(MeshError::Config(_))));
    }

    #[test]
    fn handshake_and_user_agent_identify_the_client() {
        let h = handshake();
        assert!(get(&h, "Mex-ClientVersion")
            .unwrap()
            .starts_with("cpis-mesh=="));
        assert!(get(&h, "Mex-OSName").is_some());
        assert!(get(&h, "Mex-OSVersion").is_some());
        for (name, value) in &h {
            check_value(name, value).unwrap();
        }
        assert!(user_agent().starts_with("cpis-mesh;"));
        check_value("User-Agent", &user_agent()).unwrap();
    }

    #[test]
    fn inbound_fields_from_headers() {
        let h: HashMap<String, String> = [
            ("mex-messageid", "ID1"),
            ("mex-from", "A1"),
            ("mex-to", "B1"),
            ("mex-workflowid", "WF"),
            ("mex-localid", "L"),
            ("mex-subject", "S"),
            ("mex-filename", "f.csv"),
            ("mex-messagetype", "DATA"),
            ("content-type", "application/octet-stream"),
            ("mex-content-type", "text/csv"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let m = inbound(
            "id1",
            |n| h.get(&n.to_ascii_lowercase()).cloned(),
            b"b".to_vec(),
        );
        assert_eq!(m.message_id, "ID1");
        assert_eq!(m.sender, "A1");
        assert_eq!(m.recipient, "B1");
        assert_eq!(m.workflow_id.as_deref(), Some("WF"));
        assert_eq!(m.local_id.as_deref(), Some("L"));
        assert_eq!(m.subject.as_deref(), Some("S"));
        assert_eq!(m.filename.as_deref(), Some("f.csv"));
        assert_eq!(m.message_type, "DATA");
        assert_eq!(m.content_type.as_deref(), Some("text/csv"));
        assert_eq!(m.linked_message_id, None);
        assert_eq!(m.body, b"b");
    }
}
