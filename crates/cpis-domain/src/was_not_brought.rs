//! "Was not brought": a scheduled care setting reports that a child on a plan was not brought to
//! an appointment (docs/WORKFLOW.md). The report is parsed here once; who may make it is the
//! capability's rule ([`crate::SettingType::reports_was_not_brought`]).

use crate::NhsNumber;
use chrono::{DateTime, Duration, Utc};

/// The longest description accepted (what the appointment was for, in a few words).
pub const MAX_DESCRIPTION: usize = 200;
/// How far back a missed appointment may be reported.
pub const MAX_AGE_DAYS: i64 = 90;

/// A missed appointment, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasNotBrought {
    nhs_number: NhsNumber,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    description: Option<String>,
}

/// Why a report cannot be taken, and which element is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WasNotBroughtError {
    #[error("the appointment ends before it starts")]
    EndsBeforeStart,
    #[error("the appointment has not happened yet: a child can only be reported as not brought once the appointment time has passed")]
    InTheFuture,
    #[error("the appointment is more than {MAX_AGE_DAYS} days ago")]
    TooOld,
    #[error("the description is longer than {MAX_DESCRIPTION} characters")]
    DescriptionTooLong,
    #[error("the description contains control characters")]
    DescriptionControl,
}

impl WasNotBroughtError {
    /// The element the error is about (`start`, `end` or `description`).
    pub fn element(&self) -> &'static str {
        match self {
            WasNotBroughtError::EndsBeforeStart => "end",
            WasNotBroughtError::InTheFuture | WasNotBroughtError::TooOld => "start",
            WasNotBroughtError::DescriptionTooLong | WasNotBroughtError::DescriptionControl => {
                "description"
            }
        }
    }
}

impl WasNotBrought {
    /// A report of an appointment from `start` to `end` that has started by `now` and is at
    /// most [`MAX_AGE_DAYS`] old. A blank description is none.
    pub fn new(
        nhs_number: NhsNumber,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        description: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, WasNotBroughtError> {
        if end < start {
            return Err(WasNotBroughtError::EndsBeforeStart);
        }
        if start > now {
            return Err(WasNotBroughtError::InTheFuture);
        }
        if now - start > Duration::days(MAX_AGE_DAYS) {
            return Err(WasNotBroughtError::TooOld);
        }
        let description = description.map(str::trim).filter(|d| !d.is_empty());
        if let Some(d) = description {
            if d.chars().count() > MAX_DESCRIPTION {
                return Err(WasNotBroughtError::DescriptionTooLong);
            }
            if d.chars().any(char::is_control) {
                return Err(WasNotBroughtError::DescriptionControl);
            }
        }
        Ok(WasNotBrought {
            nhs_number,
            start,
            end,
            description: description.map(str::to_owned),
        })
    }

    pub fn nhs_number(&self) -> NhsNumber {
        self.nhs_number
    }
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn nhs() -> NhsNumber {
        NhsNumber::parse("9990597634").unwrap()
    }
    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, h, 0, 0).unwrap()
    }

    #[test]
    fn takes_a_past_appointment_and_refuses_what_cannot_be_one() {
        let now = at(12);
        let r = WasNotBrought::new(nhs(), at(9), at(10), Some("  Immunisations "), now).unwrap();
        assert_eq!(r.description(), Some("Immunisations"));
        assert_eq!(
            WasNotBrought::new(nhs(), at(9), at(9), Some(" "), now)
                .unwrap()
                .description(),
            None
        );
        let err = |s, e, d: Option<&str>| WasNotBrought::new(nhs(), s, e, d, now).unwrap_err();
        assert_eq!(
            err(at(10), at(9), None),
            WasNotBroughtError::EndsBeforeStart
        );
        assert_eq!(err(at(13), at(14), None), WasNotBroughtError::InTheFuture);
        assert_eq!(err(at(13), at(14), None).element(), "start");
        let old = now - Duration::days(MAX_AGE_DAYS + 1);
        assert_eq!(err(old, old, None), WasNotBroughtError::TooOld);
        let long = "x".repeat(MAX_DESCRIPTION + 1);
        assert_eq!(
            err(at(9), at(10), Some(&long)),
            WasNotBroughtError::DescriptionTooLong
        );
        assert_eq!(
            err(at(9), at(10), Some("a\u{7}b")),
            WasNotBroughtError::DescriptionControl
        );
    }
}
