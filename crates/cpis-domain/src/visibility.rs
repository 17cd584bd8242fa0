//! SPEC rule 1 and 2: how long a plan stays visible to health users.

use crate::{Plan, PlanType};
use chrono::{Days, NaiveDate};

/// The two visibility windows, in days. Configuration, with the national defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VisibilityPolicy {
    /// A CPP or LAC plan shows for this many days after its end date (default 365).
    pub ended_plan_days: u32,
    /// A UCPP shows until this many days after the EDD or end date, whichever is earlier (default 28).
    pub ucpp_days: u32,
}

impl Default for VisibilityPolicy {
    fn default() -> Self {
        VisibilityPolicy {
            ended_plan_days: 365,
            ucpp_days: 28,
        }
    }
}

/// How a plan appears to a clinician on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "ended")]
pub enum PlanVisibility {
    Active,
    /// Ended on this date but still inside the window: shown as "ended <date>".
    Ended(NaiveDate),
    /// Past the window: not shown, and due for purging.
    Hidden,
}

impl PlanVisibility {
    pub fn is_visible(self) -> bool {
        self != PlanVisibility::Hidden
    }
}

impl VisibilityPolicy {
    /// The last day on which the plan is shown, or `None` while it has no end in sight.
    pub fn last_visible_day(&self, plan: &Plan) -> Option<NaiveDate> {
        let (anchor, window) = match plan.plan_type() {
            PlanType::Cpp | PlanType::Lac => (plan.end()?, self.ended_plan_days),
            PlanType::Ucpp => {
                let edd = plan.expected_delivery()?;
                let anchor = plan.end().map_or(edd, |end| end.min(edd));
                (anchor, self.ucpp_days)
            }
        };
        Some(
            anchor
                .checked_add_days(Days::new(u64::from(window)))
                .unwrap_or(NaiveDate::MAX),
        )
    }

    pub fn visibility(&self, plan: &Plan, today: NaiveDate) -> PlanVisibility {
        if matches!(self.last_visible_day(plan), Some(last) if today > last) {
            return PlanVisibility::Hidden;
        }
        match plan.end() {
            Some(end) if end <= today => PlanVisibility::Ended(end),
            _ => PlanVisibility::Active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_iso_date;

    fn d(s: &str) -> NaiveDate {
        parse_iso_date(s).unwrap()
    }
    fn plan(t: PlanType, start: &str, end: Option<&str>, edd: Option<&str>) -> Plan {
        Plan::new(t, d(start), end.map(d), edd.map(d)).unwrap()
    }

    #[test]
    fn open_cpp_is_active_forever() {
        let p = plan(PlanType::Cpp, "2020-01-01", None, None);
        let policy = VisibilityPolicy::default();
        assert_eq!(
            policy.visibility(&p, d("2040-01-01")),
            PlanVisibility::Active
        );
        assert_eq!(policy.last_visible_day(&p), None);
    }

    #[test]
    fn ended_cpp_and_lac_show_365_days_then_hide() {
        let policy = VisibilityPolicy::default();
        for t in [PlanType::Cpp, PlanType::Lac] {
            let p = plan(t, "2024-01-01", Some("2025-03-01"), None);
            assert_eq!(
                policy.visibility(&p, d("2025-02-28")),
                PlanVisibility::Active
            );
            assert_eq!(
                policy.visibility(&p, d("2025-03-01")),
                PlanVisibility::Ended(d("2025-03-01"))
            );
            // day 365 after the end: still shown; day 366: gone.
            assert_eq!(
                policy.visibility(&p, d("2026-03-01")),
                PlanVisibility::Ended(d("2025-03-01"))
            );
            assert_eq!(
                policy.visibility(&p, d("2026-03-02")),
                PlanVisibility::Hidden
            );
        }
    }

    #[test]
    fn ucpp_shows_until_28_days_after_the_earlier_of_edd_and_end() {
        let policy = VisibilityPolicy::default();
        let open = plan(PlanType::Ucpp, "2026-01-01", None, Some("2026-06-01"));
        assert_eq!(
            policy.visibility(&open, d("2026-06-29")),
            PlanVisibility::Active
        );
        assert_eq!(
            policy.visibility(&open, d("2026-06-30")),
            PlanVisibility::Hidden
        );

        let ended_early = plan(
            PlanType::Ucpp,
            "2026-01-01",
            Some("2026-03-01"),
            Some("2026-06-01"),
        );
        assert_eq!(
            policy.visibility(&ended_early, d("2026-03-29")),
            PlanVisibility::Ended(d("2026-03-01"))
        );
        assert_eq!(
            policy.visibility(&ended_early, d("2026-03-30")),
            PlanVisibility::Hidden
        );

        let ended_late = plan(
            PlanType::Ucpp,
            "2026-01-01",
            Some("2026-09-01"),
            Some("2026-06-01"),
        );
        assert_eq!(
            policy.visibility(&ended_late, d("2026-06-29")),
            PlanVisibility::Active
        );
        assert_eq!(
            policy.visibility(&ended_late, d("2026-06-30")),
            PlanVisibility::Hidden
        );
    }

    #[test]
    fn windows_are_configurable() {
        let policy = VisibilityPolicy {
            ended_plan_days: 10,
            ucpp_days: 1,
        };
        let p = plan(PlanType::Cpp, "2024-01-01", Some("2025-01-01"), None);
        assert!(policy.visibility(&p, d("2025-01-11")).is_visible());
        assert!(!policy.visibility(&p, d("2025-01-12")).is_visible());
        let u = plan(PlanType::Ucpp, "2024-01-01", None, Some("2025-01-01"));
        assert!(policy.visibility(&u, d("2025-01-02")).is_visible());
        assert!(!policy.visibility(&u, d("2025-01-03")).is_visible());
    }
}
