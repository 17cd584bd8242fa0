//! What cpis reads from and writes to MESH messages (documented in docs/MESH.md): the upload
//! metadata an LA puts in `mex-Subject`, and the bodies of the messages cpis sends.

use crate::delivery::notification_json;
use crate::upload::write_report_csv;
use chrono::NaiveDate;
use cpis_domain::outcome::FileOutcome;
use cpis_domain::report::{RowResult, UploadStatus, UploadSummary};
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
/// Work-queue items the LA left unacknowledged past the escalation deadline.
pub const WORKFLOW_ESCALATION: &str = "CPIS_ESCALATION";
/// A child on a plan was not brought to a scheduled appointment.
pub const WORKFLOW_WAS_NOT_BROUGHT: &str = "CPIS_WAS_NOT_BROUGHT";
/// A baby was registered to a mother on an unborn child protection plan.
pub const WORKFLOW_BIRTH: &str = "CPIS_BIRTH_NOTIFICATION";
/// A linked baby's expected delivery date passed with no plan uploaded for it.
pub const WORKFLOW_BIRTH_REMINDER: &str = "CPIS_BIRTH_REMINDER";
/// An NHS number the LA holds was invalidated for adoption.
pub const WORKFLOW_ADOPTION_INVALIDATION: &str = "CPIS_ADOPTION_INVALIDATION";

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
        NotificationKind::Escalation => Some(WORKFLOW_ESCALATION),
        NotificationKind::WasNotBrought => Some(WORKFLOW_WAS_NOT_BROUGHT),
        NotificationKind::Birth => Some(WORKFLOW_BIRTH),
        NotificationKind::BirthReminder => Some(WORKFLOW_BIRTH_REMINDER),
        NotificationKind::AdoptionInvalidation => Some(WORKFLOW_ADOPTION_INVALIDATION),
        // Upload reports go back as CPIS_UPLOAD_REPORT replies to the upload itself.
        NotificationKind::UploadReport => None,
    }
}

/// The JSON body of a notification message: the same document as the API and webhooks send.
pub fn notification_body(n: &Notification) -> Vec<u8> {
    notification_json(n).to_string().into_bytes()
}

/// What a report says about its upload in one sentence. A duplicate says so and names the first
/// upload (its file id, when it was received and what came of it) when that is known.
pub fn report_description(summary: &UploadSummary, first: Option<&UploadSummary>) -> String {
    match (summary.status, &summary.duplicate_of) {
        (UploadStatus::Duplicate, Some(original)) => {
            let Some(f) = first else {
                return format!(
                    "Duplicate: this file was already received as upload {original}, so nothing was applied."
                );
            };
            let result = match (f.status, f.file_outcome) {
                (UploadStatus::HeldForConfirmation, _) => "it is held for confirmation".to_owned(),
                (_, Some(o)) => format!("its outcome was {} {}", o.code(), o.description()),
                (status, None) => format!("its status is {}", status.code()),
            };
            format!(
                "Duplicate: this file was already received as file id '{}' on {} (upload {original}), so nothing was applied; {result}.",
                f.meta.file_id,
                f.received_at.format("%Y-%m-%d at %H:%M UTC"),
            )
        }
        (UploadStatus::Duplicate, None) => {
            "Duplicate: this file was already received, so nothing was applied.".to_owned()
        }
        (UploadStatus::HeldForConfirmation, _) => {
            "Held: nothing was applied until the upload is confirmed.".to_owned()
        }
        (status, _) => match summary.file_outcome {
            Some(o) => format!("{} {}.", o.code(), o.description()),
            None => format!("Status {}.", status.code()),
        },
    }
}

/// The JSON body of an upload report: the summary (as the API's report), the MESH message it
/// answers, and the whole per-record report as CSV text (the API's CSV columns). It also says in
/// words what happened (`description`) and whether the file was a duplicate (`duplicate`); a
/// duplicate names the upload it repeats (`duplicate_of`, and `first_upload` with that upload's
/// file id, time and outcome when `first` is given).
pub fn report_body(
    summary: &UploadSummary,
    first: Option<&UploadSummary>,
    rows: &[RowResult],
    mesh_message_id: &str,
) -> Result<Vec<u8>, csv::Error> {
    let csv = write_report_csv(Vec::new(), rows, true)?;
    let mut doc = serde_json::to_value(summary).unwrap_or_else(|_| json!({}));
    let duplicate = summary.status == UploadStatus::Duplicate;
    if let Some(obj) = doc.as_object_mut() {
        obj.insert(
            "file_outcome_description".into(),
            json!(summary.file_outcome.map(|o| o.description())),
        );
        obj.insert(
            "description".into(),
            json!(report_description(summary, first)),
        );
        obj.insert("duplicate".into(), json!(duplicate));
        if let (true, Some(f)) = (duplicate, first) {
            obj.insert(
                "first_upload".into(),
                json!({
                    "id": f.id,
                    "file_id": f.meta.file_id,
                    "channel": f.meta.channel,
                    "received_at": f.received_at,
                    "status": f.status,
                    "file_outcome": f.file_outcome,
                    "file_outcome_description": f.file_outcome.map(|o| o.description()),
                }),
            );
        }
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

    fn summary(id: &str, file_id: &str, status: UploadStatus) -> UploadSummary {
        UploadSummary {
            id: cpis_domain::report::UploadId::parse(id).unwrap(),
            meta: cpis_domain::report::UploadMeta {
                la: cpis_domain::OdsCode::parse("E08000026").unwrap(),
                file_id: file_id.into(),
                mode: UploadMode::Delta,
                file_date: cpis_domain::parse_iso_date("2026-11-25").unwrap(),
                format: FORMAT_V1.into(),
                channel: "mesh".into(),
            },
            content_sha256: "ab".repeat(32),
            status,
            file_outcome: None,
            message: None,
            counts: Default::default(),
            received_at: chrono::DateTime::parse_from_rfc3339("2026-11-25T09:30:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
            completed_at: None,
            duplicate_of: None,
        }
    }

    #[test]
    fn a_duplicates_report_says_so_and_names_the_first_upload() {
        const FIRST: &str = "11111111-2222-3333-4444-555555555555";
        let mut first = summary(FIRST, "cov-2026-11-25", UploadStatus::Completed);
        first.file_outcome = Some(FileOutcome::Partial);
        let mut dup = summary(
            "99999999-8888-7777-6666-555555555555",
            "mesh-msg-2",
            UploadStatus::Duplicate,
        );
        dup.duplicate_of = Some(first.id.clone());
        let doc: serde_json::Value =
            serde_json::from_slice(&report_body(&dup, Some(&first), &[], "MSG2").unwrap()).unwrap();
        assert_eq!(doc["status"], "duplicate");
        assert_eq!(doc["duplicate"], true);
        assert_eq!(doc["duplicate_of"], FIRST);
        assert_eq!(doc["first_upload"]["id"], FIRST);
        assert_eq!(doc["first_upload"]["file_id"], "cov-2026-11-25");
        assert_eq!(doc["first_upload"]["file_outcome"], "CPF03");
        assert_eq!(doc["first_upload"]["received_at"], "2026-11-25T09:30:00Z");
        let text = doc["description"].as_str().unwrap();
        assert!(
            text.starts_with("Duplicate: this file was already received"),
            "{text}"
        );
        assert!(
            text.contains("file id 'cov-2026-11-25'")
                && text.contains("2026-11-25 at 09:30 UTC")
                && text.contains(FIRST)
                && text.contains("nothing was applied")
                && text.contains("CPF03"),
            "{text}"
        );
        // Without the first upload's details (a lagging replica), it is still named by id.
        let text = report_description(&dup, None);
        assert!(text.contains("Duplicate") && text.contains(FIRST), "{text}");
        // An ordinary report is not a duplicate and has no first upload.
        let doc: serde_json::Value =
            serde_json::from_slice(&report_body(&first, None, &[], "MSG1").unwrap()).unwrap();
        assert_eq!(doc["duplicate"], false);
        assert!(doc.get("first_upload").is_none());
        assert_eq!(
            doc["description"],
            "CPF03 Partially loaded: valid records applied, invalid records rejected."
        );
    }

    #[test]
    fn every_notification_but_the_upload_report_travels_over_mesh_on_its_own_workflow() {
        assert_eq!(
            notification_workflow(NotificationKind::Access),
            Some(WORKFLOW_ACCESS)
        );
        assert_eq!(
            notification_workflow(NotificationKind::InactiveNhsNumber),
            Some(WORKFLOW_INACTIVE_NHS_NUMBER)
        );
        // An upload report is the reply to the upload's own message.
        assert_eq!(notification_workflow(NotificationKind::UploadReport), None);
        let workflows: std::collections::HashSet<_> = NotificationKind::ALL
            .into_iter()
            .filter_map(notification_workflow)
            .collect();
        assert_eq!(workflows.len(), NotificationKind::ALL.len() - 1, "one each");
    }
}
