//! Sending: notifications are queued from each LA's cursor into the MESH outbox, and queued
//! messages are sent with their local id. A send whose outcome is unknown (cpis stopped, or
//! MESH failed to answer, after the first request went out) is looked up by local id before it
//! is sent again, so the LA receives each message once.

use super::payloads::{self, notification_workflow};
use super::MeshError;
use crate::delivery::RetryPolicy;
use chrono::Duration;
use cpis_domain::{Clock, OdsCode};
use cpis_mesh::{MeshClient, OutboundMessage};
use cpis_store::{MeshOutgoing, NewMeshMessage, Store, StoreError};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

const QUEUE_BATCH: u32 = 500;
const SEND_BATCH: u32 = 20;

/// Queues what LAs with a MESH mailbox have not yet been sent. Acknowledged notifications (the
/// LA has seen them through the API) and upload-report notifications are skipped. Returns how
/// many messages were queued.
pub(super) fn queue_notifications(
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
) -> Result<usize, StoreError> {
    let mut queued = 0;
    loop {
        let pending = store.mesh_pending_notifications(QUEUE_BATCH)?;
        if pending.is_empty() {
            return Ok(queued);
        }
        let mut cursors: BTreeMap<OdsCode, u64> = BTreeMap::new();
        let mut messages = Vec::new();
        let now = clock.now();
        for (n, mailbox) in &pending {
            let c = cursors.entry(n.la.clone()).or_default();
            *c = (*c).max(n.seq);
            let Some(workflow) = notification_workflow(n.kind) else {
                continue;
            };
            if n.acknowledged_at.is_some() {
                continue;
            }
            messages.push(NewMeshMessage {
                local_id: format!("cpis-notification-{}", n.id),
                recipient: mailbox.clone(),
                workflow_id: workflow.to_owned(),
                subject: Some(format!("cpis {} notification", n.kind.code())),
                filename: Some(format!("cpis-notification-{}.json", n.id)),
                content_type: "application/json".to_owned(),
                body: payloads::notification_body(n),
                created_at: now,
            });
        }
        let cursors: Vec<_> = cursors.into_iter().collect();
        queued += store.mesh_enqueue(&messages, &cursors)?;
        if pending.len() < QUEUE_BATCH as usize {
            return Ok(queued);
        }
    }
}

pub(super) struct Outbound<'a> {
    pub client: &'a MeshClient,
    pub store: &'a Arc<dyn Store>,
    pub clock: &'a Arc<dyn Clock>,
    pub policy: &'a RetryPolicy,
    /// Called with each failed send (metrics).
    pub on_failure: &'a dyn Fn(),
}

/// How a pass over the due messages went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendPass {
    pub sent: usize,
    /// Found already at MESH by local id after an unknown outcome: recorded, not sent again.
    pub found_sent: usize,
    pub failed: usize,
}

impl Outbound<'_> {
    pub fn send_due(&self) -> Result<SendPass, StoreError> {
        let now = self.clock.now();
        let due = self.store.mesh_claim(
            now,
            now + Duration::seconds(self.policy.lease_seconds.max(1)),
            SEND_BATCH,
        )?;
        let mut pass = SendPass::default();
        for m in &due {
            match self.attempt(m) {
                Ok(Attempt::Sent) => pass.sent += 1,
                Ok(Attempt::FoundSent) => pass.found_sent += 1,
                Err(e) => {
                    pass.failed += 1;
                    (self.on_failure)();
                    self.failed(m, &e)?;
                    if e.mesh_down() {
                        // The rest would fail the same way: leave them to their lease.
                        break;
                    }
                }
            }
        }
        Ok(pass)
    }

    fn attempt(&self, m: &MeshOutgoing) -> Result<Attempt, MeshError> {
        if m.send_started {
            if let Some(t) = self.client.track_by_local_id(&m.message.local_id)? {
                tracing::info!(mesh_message = %t.message_id, local_id = %m.message.local_id, "MESH send found already made");
                self.store
                    .mesh_sent(m.id, &t.message_id, self.clock.now())?;
                return Ok(Attempt::FoundSent);
            }
        }
        self.store.mesh_send_started(m.id, self.clock.now())?;
        let msg = &m.message;
        let message_id = self.client.send(&OutboundMessage {
            to: msg.recipient.clone(),
            workflow_id: msg.workflow_id.clone(),
            local_id: msg.local_id.clone(),
            subject: msg.subject.clone(),
            filename: msg.filename.clone(),
            content_type: msg.content_type.clone(),
            body: msg.body.clone(),
        })?;
        tracing::info!(mesh_message = %message_id, workflow = %msg.workflow_id, local_id = %msg.local_id, "MESH message sent");
        self.store.mesh_sent(m.id, &message_id, self.clock.now())?;
        Ok(Attempt::Sent)
    }

    fn failed(&self, m: &MeshOutgoing, e: &MeshError) -> Result<(), StoreError> {
        let now = self.clock.now();
        let attempts = m.attempts + 1;
        let retry_at = now
            + self
                .policy
                .backoff(attempts, rand::thread_rng().gen::<f64>());
        let give_up =
            retry_at - m.message.created_at > Duration::hours(self.policy.give_up_after_hours);
        if give_up {
            tracing::error!(local_id = %m.message.local_id, attempts, error = %e, "MESH message dead-lettered");
        } else {
            tracing::warn!(local_id = %m.message.local_id, attempts, error = %e, "MESH send failed; will retry");
        }
        self.store
            .mesh_send_failed(m.id, &e.to_string(), (!give_up).then_some(retry_at), now)
    }
}

enum Attempt {
    Sent,
    FoundSent,
}
