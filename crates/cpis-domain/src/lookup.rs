//! What a lookup shows (SPEC rules 1–4, 8): the visible plans of each LA's record.

use crate::record::Record;
use crate::{Plan, PlanVisibility, VisibilityPolicy};
use chrono::NaiveDate;

/// A record with the plans a clinician may see today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibleRecord {
    pub record: Record,
    pub plans: Vec<(Plan, PlanVisibility)>,
}

/// Keeps, for each record, the plans inside their visibility window; drops records with none.
pub fn visible_records(
    records: Vec<Record>,
    policy: &VisibilityPolicy,
    today: NaiveDate,
) -> Vec<VisibleRecord> {
    records
        .into_iter()
        .filter_map(|record| {
            let plans: Vec<(Plan, PlanVisibility)> = record
                .plans
                .iter()
                .map(|p| (p.clone(), policy.visibility(p, today)))
                .filter(|(_, v)| v.is_visible())
                .collect();
            (!plans.is_empty()).then_some(VisibleRecord { record, plans })
        })
        .collect()
}

/// The number of accesses in the history shown to health users.
pub const HISTORY_LEN: usize = 25;
