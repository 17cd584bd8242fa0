//! An LA's own records (the web's records page: listing and searching them). A [`LaRecords`] is
//! made only from the LA's [`LaUpload`] capability (the records are what its uploads hold) and
//! reads only that LA's records.

use cpis_auth::capability::LaUpload;
use cpis_domain::OdsCode;
use cpis_store::{RecordQuery, Store, StoreResult, StoredRecord};

/// The records of the one LA its capability names.
pub struct LaRecords<'a> {
    store: &'a dyn Store,
    la: &'a OdsCode,
}

impl<'a> LaRecords<'a> {
    pub fn new(store: &'a dyn Store, cap: &'a LaUpload) -> Self {
        LaRecords {
            store,
            la: cap.la(),
        }
    }

    /// A page of the LA's records, as the query asks (its search and paging).
    pub fn search(&self, query: &RecordQuery) -> StoreResult<Vec<StoredRecord>> {
        self.store.la_records(self.la, query)
    }

    /// How many records the LA holds.
    pub fn count(&self) -> StoreResult<u64> {
        self.store.la_record_count(self.la)
    }
}
