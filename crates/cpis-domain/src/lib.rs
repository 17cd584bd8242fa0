//! The cpis domain: the words of the Child Protection – Information Sharing service and the rules
//! between them. Nothing here knows about HTTP, SQL or files; every other crate speaks these types.
//!
//! Values are parsed once at the edge ("parse, don't validate"): an [`NhsNumber`] always has a good
//! check digit, an [`OdsCode`] is always 3–10 uppercase alphanumerics, and so on.

// Outside tests a failure is an error the caller handles, never a panic: `unwrap` and `expect`
// are refused, except where an `allow` names the invariant that makes them unreachable.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)
)]

pub mod access;
pub mod attendance;
pub mod audit;
pub mod clock;
pub mod contact;
pub mod data_quality;
pub mod date;
pub mod demographics;
pub mod directory;
pub mod lookup;
pub mod nhs_number;
pub mod notification;
pub mod ods_code;
pub mod office_hours;
pub mod outcome;
pub mod permission;
pub mod plan;
pub mod record;
pub mod report;
pub mod upload;
pub mod visibility;
pub mod was_not_brought;
pub mod work_queue;

pub use access::{Access, AccessKind, Accessor, NhsIdentity};
pub use audit::{AuditActor, AuditEntry, AuditOutcome, AuditRecord};
pub use clock::{Clock, FixedClock, SystemClock};
pub use contact::{EmailAddress, PhoneNumber, PhoneNumberError, WorkContact};
pub use date::{parse_iso_date, DateError};
pub use demographics::{DemographicStatus, Demographics};
pub use directory::{CareSetting, LocalAuthority, SettingType};
pub use nhs_number::{NhsNumber, NhsNumberError};
pub use notification::{NewNotification, Notification, NotificationKind};
pub use ods_code::{OdsCode, OdsCodeError};
pub use office_hours::{CallNow, OfficeHours, OfficeHoursError, DEFAULT_OFFICE_HOURS};
pub use outcome::{DetailCode, FileOutcome, RecordOutcome};
pub use permission::{Permission, Permissions};
pub use plan::{Plan, PlanType, Subject};
pub use record::Record;
pub use visibility::{PlanVisibility, VisibilityPolicy};
pub use was_not_brought::{WasNotBrought, WasNotBroughtError};
