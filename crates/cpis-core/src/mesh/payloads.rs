//! What cpis reads from and writes to MESH messages (documented in docs/MESH.md): the upload
//! metadata an LA puts in `mex-Subject`, and the bodies of the messages cpis sends.

use crate::delivery::notification_json;
use crate::upload::write_report_csv;
use chrono::NaiveDate;
use cpis_domain::outcome::FileOutcome;
use cpis_domain::report::{RowResult, UploadSummary};
use cpis_domain::upload::{UploadMode, FORMAT_V1};
use cpis_domain::{Notification, NotificationKind};
use serde_json::json;

/// An LA's upload to cpis.
pub const WORKFLOW_UPLOAD: &str = "CPIS_UPLOAD";
/// cpis's report on one upload, to the sending LA.
pub const WORKFLOW_UPLOAD_REPORT: &str = "CPIS_UPLOAD_REPORT";
/// A child the LA holds was seen at an unscheduled care setting.
pub const WORKFLOW_ACCESS: &str = "CPIS_ACCESS_NOTIFICATION";
/// An NHS number the LA supplied became inactive (superseded or merged).
pub const WORKFLOW_INACTIVE_NHS_NUMBER: &str = "CPIS_INACTIVE_NHS_NUMBER";

/// The upload metadata from `mex-Subject`: `key=value` pairs separated by `;` (or spaces),
/// keys `mode` (`delta`, the default, or `full`), `file_date` (`YYYY-MM-DD`, default: the day
/// received) and `format` (default the current format). An empty subject means all defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSubject {
    pub mode: UploadMode,
    pub file_date: Option<NaiveDate>,
    pub format: String,
}

/// Why a subject could not be read: the message is answered with a CPF01 report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mex-Subject: {0}")]
pub struct SubjectError(String);

impl UploadSubject {
    pub fn parse(subject: Option<&str>) -> Result<Self, SubjectError> {
        let mut out = UploadSubject {
            mode: UploadMode::Delta,
            file_date: None,
            format: FORMAT_V1.to_owned(),
        };
        let text = subject.unwrap_or("").trim();
        for part in text
            .split([';', ' '])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                SubjectError(format!(
                    "expected key=value pairs such as 'mode=full; file_date=2026-11-25', found '{}'",
                    shorten(part)
                ))
            })?;
            match key.trim().to_ascii_lowercase().as_str() {
                "mode" => {
                    out.mode =
                        value
                            .trim()
                            .parse()
                            .map_err(|e: cpis_domain::upload::UnknownMode| {
                                SubjectError(e.to_string())
                            })?
                }
                "file_date" | "file-date" => {
                    out.file_date =
                        Some(cpis_domain::parse_iso_date(value.trim()).map_err(|_| {
                            SubjectError(format!(
                                "file_date must be a date as YYYY-MM-DD, found '{}'",
                                shorten(value)
                            ))
                        })?)
                }
                "format" => out.format = value.trim().to_owned(),
                other => {
                    return Err(SubjectError(format!(
                        "unknown key '{}': use mode, file_date or format",
                        shorten(other)
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// At most 40 characters of what the sender wrote, for error messages.
fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The workflow a notification travels on, or `None` for kinds not sent over MESH.
pub fn notification_workflow(kind: NotificationKind) -> Option<&'static str> {
    match kind {
        NotificationKind::Access => Some(WORKFLOW_ACCESS),
        NotificationKind::InactiveNhsNumber => Some(WORKFLOW_INACTIVE_NHS_NUMBER),
        // Upload reports go back as CPIS_UPLOAD_REPORT replies to the upload itself.
        NotificationKind::UploadReport => None,
    }
}

/// The JSON body of a notification message: the same document as the API and webhooks send.
pub fn notification_body(n: &Notification) -> Vec<u8> {
    notification_json(n).to_string().into_bytes()
}

/// The JSON body of an upload report: the summary (as the API's report), the MESH message it
/// answers, and the whole per-record report as CSV text (the API's CSV columns).
pub fn report_body(
    summary: &UploadSummary,
    rows: &[RowResult],
    mesh_message_id: &str,
) -> Result<Vec<u8>, csv::Error> {
    let csv = write_report_csv(Vec::new(), rows, true)?;
    let mut doc = serde_json::to_value(summary).unwrap_or_else(|_| json!({}));
    if let Some(obj) = doc.as_object_mut() {
        obj.insert(
            "file_outcome_description".into(),
            json!(summary.file_outcome.map(|o| o.description())),
        );
        obj.insert("mesh_message_id".into(), json!(mesh_message_id));
        obj.insert(
            "records_csv".into(),
            json!(String::from_utf8_lossy(&csv).into_owned()),
        );
    }
    Ok(doc.to_string().into_bytes())
}

/// The JSON body of a report on a message cpis could not take as an upload at all (nothing was
/// recorded): CPF01 with the reason.
pub fn refusal_body(mesh_message_id: &str, message: &str) -> Vec<u8> {
    json!({
        "status": "refused",
        "file_outcome": FileOutcome::Malformed.code(),
        "file_outcome_description": FileOutcome::Malformed.description(),
        "message": message,
        "mesh_message_id": mesh_message_id,
        "records_csv": "",
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_with_defaults_and_clear_errors() {
        let d = UploadSubject::parse(None).unwrap();
        assert_eq!(d.mode, UploadMode::Delta);
        assert_eq!(d.file_date, None);
        assert_eq!(d.format, FORMAT_V1);
        let s = UploadSubject::parse(Some("mode=full; file_date=2026-11-25")).unwrap();
        assert_eq!(s.mode, UploadMode::Full);
        assert_eq!(s.file_date, cpis_domain::parse_iso_date("2026-11-25").ok());
        let s = UploadSubject::parse(Some(" MODE=delta format=cpis-upload/9 ")).unwrap();
        assert_eq!(s.mode, UploadMode::Delta);
        assert_eq!(s.format, "cpis-upload/9");
        for bad in [
            "mode=weekly",
            "file_date=25/11/2026",
            "hello",
            "colour=blue",
        ] {
            let e = UploadSubject::parse(Some(bad)).unwrap_err().to_string();
            assert!(e.starts_with("mex-Subject: "), "{bad}: {e}");
        }
        let long = format!("x{}", "y".repeat(500));
        assert!(
            UploadSubject::parse(Some(&long))
                .unwrap_err()
                .to_string()
                .len()
                < 200
        );
    }

    #[test]
    fn only_access_and_inactive_number_notifications_travel_over_mesh() {
        assert_eq!(
            notification_workflow(NotificationKind::Access),
            Some(WORKFLOW_ACCESS)
        );
        assert_eq!(
            notification_workflow(NotificationKind::InactiveNhsNumber),
            Some(WORKFLOW_INACTIVE_NHS_NUMBER)
        );
        assert_eq!(notification_workflow(NotificationKind::UploadReport), None);
    }
}
