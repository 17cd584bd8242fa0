//! An LA's notification inbox (SPEC 3.3), as the API (`/api/v1/notifications`, its event
//! stream) and the web inbox (`/la/notifications`) use it: listing and acknowledging. A
//! [`LaInbox`] is made only from a [`LaNotifications`] capability and reads and writes only that
//! LA's notifications: there is no way to ask it for another LA's.

use chrono::{DateTime, Utc};
use cpis_auth::capability::LaNotifications;
use cpis_domain::notification::{Ack, Acknowledgement, Assignment};
use cpis_domain::work_queue::{AckDetails, AckOutcome, Assignee};
use cpis_domain::{AuditEntry, Notification, OdsCode};
use cpis_store::{NotificationQuery, Store, StoreResult};

/// The notifications of the one LA its capability names.
pub struct LaInbox<'a> {
    store: &'a dyn Store,
    cap: &'a LaNotifications,
}

impl<'a> LaInbox<'a> {
    pub fn new(store: &'a dyn Store, cap: &'a LaNotifications) -> Self {
        LaInbox { store, cap }
    }

    pub fn la(&self) -> &OdsCode {
        self.cap.la()
    }

    /// Notifications after the cursor (a `seq`), oldest first.
    pub fn after(&self, after: u64, limit: u32) -> StoreResult<Vec<Notification>> {
        self.store.notifications(self.cap.la(), after, limit)
    }

    /// Notifications with a cursor below `before` (all when `None`), newest first, read from the
    /// primary so an acknowledgement just made shows.
    pub fn newest(&self, before: Option<u64>, limit: u32) -> StoreResult<Vec<Notification>> {
        self.store
            .notifications_newest(self.cap.la(), before, limit)
    }

    /// A filtered page, after a cursor or in work-queue order.
    pub fn query(&self, query: &NotificationQuery) -> StoreResult<Vec<Notification>> {
        self.store.notification_query(self.cap.la(), query)
    }

    /// Acknowledges one notification (idempotent) with an outcome and note, recording who (the
    /// capability's actor: id and display name) and when. The first acknowledgement and its
    /// `notification.ack` audit entry are written in one transaction; a repeat writes nothing
    /// and keeps the first's who, outcome and note. An id that is not one of this LA's
    /// notifications (another LA's, none, or not a UUID at all) is `NotFound`, and the probe is
    /// audited as denied.
    pub fn acknowledge(
        &self,
        id: &str,
        details: &AckDetails,
        now: DateTime<Utc>,
        trace_id: Option<String>,
    ) -> StoreResult<Ack> {
        let la = self.cap.la();
        let actor = self.cap.actor();
        let entry = AuditEntry::new(now, actor.clone(), "notification.ack", trace_id);
        if let Some(refused) = self.not_an_id(id, &entry) {
            self.store.append_audit(&refused)?;
            return Ok(Ack::NotFound);
        }
        let outcome = details.outcome.map_or("none", AckOutcome::code);
        let acked = entry
            .clone()
            .detail(format!("notification {id}, outcome {outcome}"));
        let refused = self.refusal(id, &entry);
        let ack = Acknowledgement {
            by: actor.id.clone(),
            by_name: actor.name.clone(),
            at: now,
            details: details.clone(),
        };
        self.store
            .acknowledge_audited(la, id, &ack, &acked, &refused)
    }

    /// Assigns one notification to a team or worker (`to_me`: to the signed-in user, by id and
    /// display name), audited as `notification.assign` in the same transaction. The name
    /// assigned to, or `None` when the id is not one of this LA's notifications (the probe is
    /// audited as denied).
    pub fn assign(
        &self,
        id: &str,
        to: Option<Assignee>,
        now: DateTime<Utc>,
        trace_id: Option<String>,
    ) -> StoreResult<Option<String>> {
        let actor = self.cap.actor();
        let entry = AuditEntry::new(now, actor.clone(), "notification.assign", trace_id);
        if let Some(refused) = self.not_an_id(id, &entry) {
            self.store.append_audit(&refused)?;
            return Ok(None);
        }
        let assignment = match to {
            Some(to) => Assignment {
                to,
                user: None,
                at: now,
            },
            None => Assignment {
                to: Assignee::parse(&actor.name)
                    .or_else(|_| Assignee::parse(&actor.id))
                    .map_err(|e| cpis_store::StoreError::Backend(e.to_string()))?,
                user: Some(actor.id.clone()),
                at: now,
            },
        };
        let done = entry.clone().detail(format!(
            "notification {id} assigned to {}",
            assignment.to.as_str()
        ));
        let refused = self.refusal(id, &entry);
        let assigned =
            self.store
                .assign_audited(self.cap.la(), id, &assignment, &done, &refused)?;
        Ok(assigned.then(|| assignment.to.as_str().to_owned()))
    }

    /// The denied entry for an id that is not even a UUID (written by the caller), or `None`.
    fn not_an_id(&self, id: &str, entry: &AuditEntry) -> Option<AuditEntry> {
        if uuid::Uuid::parse_str(id).is_ok() {
            return None;
        }
        let shown: String = id.chars().take(64).collect();
        Some(entry.clone().denied().detail(format!(
            "notification id {shown:?}: not one of {}'s notifications",
            self.cap.la()
        )))
    }

    fn refusal(&self, id: &str, entry: &AuditEntry) -> AuditEntry {
        entry.clone().denied().detail(format!(
            "notification {id}: not one of {}'s notifications (another LA's, or none)",
            self.cap.la()
        ))
    }
}
