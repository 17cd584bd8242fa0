//! An LA's notification inbox (SPEC 3.3), as the API (`/api/v1/notifications`, its event
//! stream) and the web inbox (`/la/notifications`) use it: listing and acknowledging. A
//! [`LaInbox`] is made only from a [`LaNotifications`] capability and reads and writes only that
//! LA's notifications: there is no way to ask it for another LA's.

use chrono::{DateTime, Utc};
use cpis_auth::capability::LaNotifications;
use cpis_domain::notification::Ack;
use cpis_domain::{AuditEntry, Notification, OdsCode};
use cpis_store::{Store, StoreResult};

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

    /// Acknowledges one notification (idempotent). The first acknowledgement and its
    /// `notification.ack` audit entry are written in one transaction. An id that is not one of
    /// this LA's notifications (another LA's, none, or not a UUID at all) is `NotFound`, and the
    /// probe is audited as denied; a repeat writes nothing.
    pub fn acknowledge(
        &self,
        id: &str,
        now: DateTime<Utc>,
        trace_id: Option<String>,
    ) -> StoreResult<Ack> {
        let la = self.cap.la();
        let entry = AuditEntry::new(now, self.cap.actor().clone(), "notification.ack", trace_id);
        if uuid::Uuid::parse_str(id).is_err() {
            let shown: String = id.chars().take(64).collect();
            self.store.append_audit(&entry.denied().detail(format!(
                "notification id {shown:?}: not one of {la}'s notifications"
            )))?;
            return Ok(Ack::NotFound);
        }
        let acked = entry.clone().detail(format!("notification {id}"));
        let refused = entry.denied().detail(format!(
            "notification {id}: not one of {la}'s notifications (another LA's, or none)"
        ));
        self.store
            .acknowledge_audited(la, id, &self.cap.actor().id, now, &acked, &refused)
    }
}
