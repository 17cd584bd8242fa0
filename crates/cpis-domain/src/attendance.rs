//! Attendance across settings: what only the national access log can see. A child with a visible
//! plan who keeps turning up at unscheduled care (an emergency department one week, an urgent
//! treatment centre the next) is a pattern no single hospital sees.
//!
//! An attendance is an unscheduled access (a lookup that notified the LA), this one included.
//! Silent lookups (GP, sexual health…) and misses are not attendances.

use crate::{Access, AccessKind};
use chrono::{DateTime, Duration, Months, Utc};
use std::collections::BTreeMap;

/// Both windows end now: six calendar months, and 30 days.
pub const SHORT_WINDOW_DAYS: i64 = 30;
pub const LONG_WINDOW_MONTHS: u32 = 6;

/// How often a child was seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AttendanceCounts {
    pub seen_6_months: u32,
    pub seen_30_days: u32,
    pub organisations_30_days: u32,
}

/// An organisation's attendances, as the access log gives them (one per organisation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationAttendance {
    pub organisation_name: String,
    pub seen_6_months: u32,
    pub seen_30_days: u32,
}

/// A child's attendance: the counts and the organisations seen at in the last 30 days (whose
/// names are shown only when the child is not sensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attendance {
    pub counts: AttendanceCounts,
    /// Names of the organisations seen at in the last 30 days, most attendances first.
    pub organisations_30_days: Vec<String>,
}

impl Attendance {
    pub fn from_organisations(mut orgs: Vec<OrganisationAttendance>) -> Self {
        orgs.sort_by(|a, b| {
            b.seen_30_days
                .cmp(&a.seen_30_days)
                .then_with(|| a.organisation_name.cmp(&b.organisation_name))
        });
        let recent: Vec<&OrganisationAttendance> =
            orgs.iter().filter(|o| o.seen_30_days > 0).collect();
        Attendance {
            counts: AttendanceCounts {
                seen_6_months: orgs.iter().map(|o| o.seen_6_months).sum(),
                seen_30_days: recent.iter().map(|o| o.seen_30_days).sum(),
                organisations_30_days: u32::try_from(recent.len()).unwrap_or(u32::MAX),
            },
            organisations_30_days: recent.iter().map(|o| o.organisation_name.clone()).collect(),
        }
    }
}

/// Attendances counted per organisation (by ODS code): what the access log gives, to which a
/// lookup adds the accesses it read later (its own included) before it turns them into an
/// [`Attendance`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally(BTreeMap<String, OrganisationAttendance>);

impl Tally {
    pub fn from_organisations(
        orgs: impl IntoIterator<Item = (String, OrganisationAttendance)>,
    ) -> Self {
        Tally(orgs.into_iter().collect())
    }

    /// Counts an access in the windows ending `now`; anything but an unscheduled access, or one
    /// outside the six months, is not an attendance.
    pub fn add(&mut self, access: &Access, now: DateTime<Utc>) {
        let (long, short) = windows(now);
        if access.kind != AccessKind::Unscheduled || access.time < long || access.time > now {
            return;
        }
        let org = self
            .0
            .entry(access.accessor.organisation.as_str().to_owned())
            .or_insert_with(|| OrganisationAttendance {
                organisation_name: access.accessor.organisation_name.clone(),
                seen_6_months: 0,
                seen_30_days: 0,
            });
        org.seen_6_months += 1;
        if access.time >= short {
            org.seen_30_days += 1;
        }
    }

    pub fn attendance(self) -> Attendance {
        Attendance::from_organisations(self.0.into_values().collect())
    }
}

/// The starts of the two windows ending at `now`: (six months ago, 30 days ago).
pub fn windows(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let long = now
        .checked_sub_months(Months::new(LONG_WINDOW_MONTHS))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    (long, now - Duration::days(SHORT_WINDOW_DAYS))
}

/// When attendance becomes a pattern worth telling the LA about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttendanceThresholds {
    /// Attendances in six months at which a child is frequently attending [default: 3].
    #[serde(default = "default_seen_6_months")]
    pub seen_6_months: u32,
    /// Different organisations in 30 days at which a child is frequently attending [default: 2].
    #[serde(default = "default_organisations_30_days")]
    pub organisations_30_days: u32,
}

fn default_seen_6_months() -> u32 {
    3
}
fn default_organisations_30_days() -> u32 {
    2
}

impl Default for AttendanceThresholds {
    fn default() -> Self {
        AttendanceThresholds {
            seen_6_months: default_seen_6_months(),
            organisations_30_days: default_organisations_30_days(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("attendance.seen_6_months must be at least 2 (one attendance is not a pattern)")]
    SeenTooLow,
    #[error("attendance.organisations_30_days must be at least 2 (one organisation is not a pattern across settings)")]
    OrganisationsTooLow,
}

impl AttendanceThresholds {
    /// Checks a configured pair: a threshold of 0 or 1 would flag every attendance.
    pub fn validated(self) -> Result<Self, ThresholdError> {
        if self.seen_6_months < 2 {
            return Err(ThresholdError::SeenTooLow);
        }
        if self.organisations_30_days < 2 {
            return Err(ThresholdError::OrganisationsTooLow);
        }
        Ok(self)
    }
}

/// A pattern the access log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttendancePattern {
    FrequentAttendance,
}

impl AttendancePattern {
    pub fn code(self) -> &'static str {
        match self {
            AttendancePattern::FrequentAttendance => "frequent-attendance",
        }
    }
}

/// The rule: seen at least `seen_6_months` times in six months, or at at least
/// `organisations_30_days` different organisations in 30 days.
pub fn pattern(
    counts: &AttendanceCounts,
    thresholds: &AttendanceThresholds,
) -> Option<AttendancePattern> {
    (counts.seen_6_months >= thresholds.seen_6_months
        || counts.organisations_30_days >= thresholds.organisations_30_days)
        .then_some(AttendancePattern::FrequentAttendance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn counts(seen_6_months: u32, seen_30_days: u32, orgs: u32) -> AttendanceCounts {
        AttendanceCounts {
            seen_6_months,
            seen_30_days,
            organisations_30_days: orgs,
        }
    }

    #[test]
    fn three_in_six_months_or_two_settings_in_thirty_days_is_frequent() {
        let t = AttendanceThresholds::default();
        assert_eq!(pattern(&counts(1, 1, 1), &t), None);
        assert_eq!(pattern(&counts(2, 2, 1), &t), None);
        assert_eq!(
            pattern(&counts(3, 0, 0), &t),
            Some(AttendancePattern::FrequentAttendance)
        );
        assert_eq!(
            pattern(&counts(2, 2, 2), &t),
            Some(AttendancePattern::FrequentAttendance)
        );
        let strict = AttendanceThresholds {
            seen_6_months: 5,
            organisations_30_days: 3,
        };
        assert_eq!(pattern(&counts(4, 2, 2), &strict), None);
        assert!(pattern(&counts(5, 0, 0), &strict).is_some());
        assert!(pattern(&counts(3, 3, 3), &strict).is_some());
        assert_eq!(
            AttendancePattern::FrequentAttendance.code(),
            "frequent-attendance"
        );
    }

    #[test]
    fn thresholds_below_two_are_refused() {
        assert!(AttendanceThresholds::default().validated().is_ok());
        let t = AttendanceThresholds {
            seen_6_months: 1,
            organisations_30_days: 2,
        };
        assert_eq!(t.validated(), Err(ThresholdError::SeenTooLow));
        let t = AttendanceThresholds {
            seen_6_months: 3,
            organisations_30_days: 0,
        };
        assert_eq!(t.validated(), Err(ThresholdError::OrganisationsTooLow));
    }

    fn seen(ods: &str, kind: AccessKind, time: DateTime<Utc>) -> Access {
        Access {
            id: format!("{ods}-{time}"),
            time,
            nhs_number: crate::NhsNumber::parse("9434765919").unwrap(),
            accessor: crate::Accessor {
                user_id: "u".into(),
                user_name: "U".into(),
                role: "clinician".into(),
                organisation: crate::OdsCode::parse(ods).unwrap(),
                organisation_name: format!("{ods} hospital"),
                setting_type: None,
                nhs: Default::default(),
                organisation_phone: None,
                contact: Default::default(),
            },
            kind,
            trace_id: None,
        }
    }

    #[test]
    fn a_tally_adds_unscheduled_accesses_in_the_windows_to_what_the_log_counted() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        let mut tally = Tally::from_organisations([(
            "RXA01".to_owned(),
            OrganisationAttendance {
                organisation_name: "RXA01 hospital".into(),
                seen_6_months: 2,
                seen_30_days: 1,
            },
        )]);
        tally.add(&seen("RXA01", AccessKind::Unscheduled, now), now);
        tally.add(
            &seen("RXB01", AccessKind::Unscheduled, now - Duration::days(40)),
            now,
        );
        // Not attendances: silent lookups, misses, older than six months, later than now.
        tally.add(&seen("RXC01", AccessKind::Silent, now), now);
        tally.add(&seen("RXC01", AccessKind::Miss, now), now);
        tally.add(
            &seen("RXC01", AccessKind::Unscheduled, now - Duration::days(200)),
            now,
        );
        tally.add(
            &seen("RXC01", AccessKind::Unscheduled, now + Duration::seconds(1)),
            now,
        );
        let a = tally.attendance();
        assert_eq!(a.counts, counts(4, 2, 1));
        assert_eq!(a.organisations_30_days, vec!["RXA01 hospital".to_owned()]);
    }

    #[test]
    fn counts_add_up_per_organisation_and_list_recent_ones() {
        let a = Attendance::from_organisations(vec![
            OrganisationAttendance {
                organisation_name: "Old ED".into(),
                seen_6_months: 2,
                seen_30_days: 0,
            },
            OrganisationAttendance {
                organisation_name: "City UTC".into(),
                seen_6_months: 1,
                seen_30_days: 1,
            },
            OrganisationAttendance {
                organisation_name: "Town ED".into(),
                seen_6_months: 3,
                seen_30_days: 2,
            },
        ]);
        assert_eq!(a.counts, counts(6, 3, 2));
        assert_eq!(a.organisations_30_days, ["Town ED", "City UTC"]);
        assert_eq!(
            Attendance::from_organisations(vec![]).counts,
            counts(0, 0, 0)
        );
    }

    #[test]
    fn windows_are_six_calendar_months_and_thirty_days() {
        let now = Utc.with_ymd_and_hms(2026, 8, 31, 12, 0, 0).unwrap();
        let (long, short) = windows(now);
        assert_eq!(long, Utc.with_ymd_and_hms(2026, 2, 28, 12, 0, 0).unwrap());
        assert_eq!(short, Utc.with_ymd_and_hms(2026, 8, 1, 12, 0, 0).unwrap());
    }
}
