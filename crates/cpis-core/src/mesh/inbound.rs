//! Receiving: each message in cpis's inbox is taken as an upload from the LA whose mailbox sent
//! it, answered with a report, and acknowledged only once both are durable.

use super::payloads::{self, UploadSubject, WORKFLOW_UPLOAD, WORKFLOW_UPLOAD_REPORT};
use super::MeshError;
use crate::upload::{SpooledFile, UploadEngine};
use cpis_domain::outcome::FileOutcome;
use cpis_domain::report::{UploadMeta, UploadSummary};
use cpis_domain::{AuditActor, AuditEntry, Clock, LocalAuthority};
use cpis_mesh::{InboundMessage, MeshClient};
use cpis_store::{NewMeshMessage, RowFilter, Store};
use std::sync::Arc;

/// What became of one inbox message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Taken through the upload engine (new or a replay); the report is queued; acknowledged.
    Upload { la: String, file_outcome: String },
    /// Not an upload cpis can take (unknown sender, workflow or metadata): answered with a
    /// CPF01 refusal report and acknowledged.
    Refused { reason: String },
    /// A MESH report (e.g. a non-delivery report about a message cpis sent): logged and
    /// acknowledged.
    MeshReport,
    /// Left in the inbox to be tried again (cpis's store could not take it now).
    Deferred,
}

pub(super) struct Inbound<'a> {
    pub client: &'a MeshClient,
    pub engine: &'a Arc<UploadEngine>,
    pub store: &'a Arc<dyn Store>,
    pub clock: &'a Arc<dyn Clock>,
}

impl Inbound<'_> {
    /// Downloads, processes and acknowledges one message.
    pub fn process(&self, message_id: &str) -> Result<Received, MeshError> {
        let msg = self.client.download(message_id)?;
        let received = self.take(&msg)?;
        if received != Received::Deferred {
            self.client.acknowledge(&msg.message_id)?;
        }
        Ok(received)
    }

    fn take(&self, msg: &InboundMessage) -> Result<Received, MeshError> {
        if !msg.message_type.eq_ignore_ascii_case("DATA") {
            tracing::warn!(
                mesh_message = %msg.message_id,
                message_type = %msg.message_type,
                local_id = msg.local_id.as_deref().unwrap_or(""),
                "MESH report received"
            );
            return Ok(Received::MeshReport);
        }
        let workflow = msg.workflow_id.as_deref().unwrap_or("");
        if workflow != WORKFLOW_UPLOAD {
            return self.refuse(
                msg,
                format!("workflow '{workflow}' is not accepted by cpis: send uploads as {WORKFLOW_UPLOAD}"),
            );
        }
        let Some(la) = self.sender_la(&msg.sender)? else {
            return self.refuse(
                msg,
                "the sending mailbox is not registered to a local authority in the cpis directory"
                    .into(),
            );
        };
        let subject = match UploadSubject::parse(msg.subject.as_deref()) {
            Ok(s) => s,
            Err(e) => return self.refuse(msg, e.to_string()),
        };
        let file = match SpooledFile::from_bytes(&msg.body) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(mesh_message = %msg.message_id, error = %e, "MESH upload could not be spooled");
                return Ok(Received::Deferred);
            }
        };
        let meta = UploadMeta {
            la: la.ods_code.clone(),
            // The LA's own id for the file when it gave one, else MESH's: re-sending a file
            // under the same local id (or the same bytes) is recognised as a replay.
            file_id: msg
                .local_id
                .clone()
                .unwrap_or_else(|| msg.message_id.clone()),
            mode: subject.mode,
            file_date: subject.file_date.unwrap_or_else(|| self.clock.today()),
            format: subject.format,
            channel: "mesh".to_owned(),
        };
        let cap = super::sender_capability(&la, &msg.sender);
        let summary = match self.engine.submit(&cap, meta, &file, &|_| {}) {
            Ok(s) => s.summary().clone(),
            Err(e) => {
                tracing::warn!(mesh_message = %msg.message_id, error = %e, "MESH upload not processed; left in the inbox");
                return Ok(Received::Deferred);
            }
        };
        if summary.file_outcome == Some(FileOutcome::TemporarilyUnavailable) {
            return Ok(Received::Deferred);
        }
        self.queue_report(msg, &summary)?;
        Ok(Received::Upload {
            la: la.ods_code.as_str().to_owned(),
            file_outcome: summary.file_outcome.map_or("", |o| o.code()).to_owned(),
        })
    }

    fn sender_la(&self, mailbox: &str) -> Result<Option<LocalAuthority>, MeshError> {
        Ok(self.store.local_authorities()?.into_iter().find(|la| {
            la.mesh_mailbox
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(mailbox))
        }))
    }

    fn queue_report(&self, msg: &InboundMessage, summary: &UploadSummary) -> Result<(), MeshError> {
        const PAGE: u32 = 10_000;
        let mut rows = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.upload_rows(
                &summary.meta.la,
                &summary.id,
                &RowFilter {
                    after_row: after,
                    limit: PAGE,
                    outcome: None,
                },
            )?;
            let full = page.len() == PAGE as usize;
            after = page.last().map_or(after, |r| r.row);
            rows.extend(page);
            if !full {
                break;
            }
        }
        // A duplicate's report names the upload it repeats.
        let first = match &summary.duplicate_of {
            Some(original) => self.store.upload(&summary.meta.la, original)?,
            None => None,
        };
        let body = payloads::report_body(summary, first.as_ref(), &rows, &msg.message_id)
            .map_err(|e| MeshError::Report(e.to_string()))?;
        // The outcome code, or the status where there is none (`duplicate`, held for confirmation).
        let outcome = summary
            .file_outcome
            .map_or_else(|| summary.status.code(), |o| o.code());
        self.reply(msg, format!("cpis upload report {outcome}"), body)
    }

    fn refuse(&self, msg: &InboundMessage, reason: String) -> Result<Received, MeshError> {
        tracing::warn!(mesh_message = %msg.message_id, reason = %reason, "MESH message refused");
        let now = self.clock.now();
        self.store.append_audit(
            &AuditEntry::new(
                now,
                AuditActor {
                    id: format!("mesh:{}", msg.sender),
                    name: msg.sender.clone(),
                    organisation: None,
                    role: "MESH mailbox".into(),
                },
                "mesh.refused",
                None,
            )
            .failed()
            .detail(format!("message {}: {reason}", msg.message_id)),
        )?;
        self.reply(
            msg,
            "cpis upload report CPF01".into(),
            payloads::refusal_body(&msg.message_id, &reason),
        )?;
        Ok(Received::Refused { reason })
    }

    /// Queues the answer to `msg` under a local id derived from it: processing the same
    /// message again (after a crash before its acknowledgement) queues nothing new.
    fn reply(&self, msg: &InboundMessage, subject: String, body: Vec<u8>) -> Result<(), MeshError> {
        self.store.mesh_enqueue(
            &[NewMeshMessage {
                local_id: format!("cpis-report-{}", msg.message_id),
                recipient: msg.sender.clone(),
                workflow_id: WORKFLOW_UPLOAD_REPORT.to_owned(),
                subject: Some(subject),
                filename: Some(format!("cpis-report-{}.json", msg.message_id)),
                content_type: "application/json".to_owned(),
                body,
                created_at: self.clock.now(),
            }],
            &[],
        )?;
        Ok(())
    }
}
