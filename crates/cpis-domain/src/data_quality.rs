//! An LA's data quality: the NHS-number match rule and rate (SPEC 3.5, the 95% target), over the
//! outcome counts each completed upload stores, plus how many of its `CPR07` rows were inactive
//! NHS numbers (the store reads them: `Store::la_upload_stats`; docs/WEB.md, "Data quality").

use crate::report::UploadId;
use crate::{FileOutcome, RecordOutcome};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The national target: 95% of an LA's records matched to the demographics index, in basis
/// points.
pub const MATCH_RATE_TARGET_BASIS_POINTS: u64 = 9_500;

/// One completed upload's record outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOutcomeCounts {
    pub id: UploadId,
    pub file_id: String,
    pub received_at: DateTime<Utc>,
    pub file_outcome: Option<FileOutcome>,
    /// Data rows in the file.
    pub rows: u64,
    /// Rows per record outcome (codes with no rows are absent).
    pub by_outcome: BTreeMap<RecordOutcome, u64>,
    /// `CPR07` rows whose detail is `NHS_NUMBER_INACTIVE` (already counted under `CPR07`).
    pub inactive_nhs_numbers: u64,
}

/// The record outcomes that mean the NHS number (with the date of birth) did not match the
/// demographics index: `CPR01` not in the index, `CPR03` date of birth differs, `CPR04` not a
/// valid NHS number, `CPR05` superseded. (`CPR07` rows count too when their detail is
/// `NHS_NUMBER_INACTIVE`.)
pub const NOT_MATCHED: [RecordOutcome; 4] = [
    RecordOutcome::NotFound,
    RecordOutcome::DobMismatch,
    RecordOutcome::MalformedNhsNumber,
    RecordOutcome::Superseded,
];

impl UploadOutcomeCounts {
    pub fn count(&self, outcome: RecordOutcome) -> u64 {
        self.by_outcome.get(&outcome).copied().unwrap_or(0)
    }

    /// Rows accepted (`CPR06`): their NHS number matched the index.
    pub fn matched(&self) -> u64 {
        self.count(RecordOutcome::Accepted)
    }

    /// Rows rejected because the NHS number did not match: [`NOT_MATCHED`] plus inactive numbers.
    pub fn not_matched(&self) -> u64 {
        NOT_MATCHED.iter().map(|o| self.count(*o)).sum::<u64>() + self.inactive_nhs_numbers
    }

    /// Rows rejected for any reason (everything but `CPR06`).
    pub fn rejected(&self) -> u64 {
        self.by_outcome
            .iter()
            .filter(|(o, _)| **o != RecordOutcome::Accepted)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Matched and not-matched rows summed over uploads; the match rate is
/// `matched / (matched + not_matched)`. Rows rejected for other reasons (`CPR02` sensitive
/// without the mark, `CPR07` other than an inactive number) are in neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchCounts {
    pub matched: u64,
    pub not_matched: u64,
}

impl MatchCounts {
    pub fn of<'a>(uploads: impl IntoIterator<Item = &'a UploadOutcomeCounts>) -> Self {
        uploads
            .into_iter()
            .fold(MatchCounts::default(), |acc, u| MatchCounts {
                matched: acc.matched + u.matched(),
                not_matched: acc.not_matched + u.not_matched(),
            })
    }

    /// The match rate in basis points (9500 = 95.00%), `None` when no row was checked.
    pub fn rate_basis_points(&self) -> Option<u64> {
        let total = self.matched + self.not_matched;
        (total > 0).then(|| (self.matched * 10_000) / total)
    }

    /// Whether the rate meets a target given in basis points (`None`: nothing to judge).
    pub fn meets(&self, target_basis_points: u64) -> Option<bool> {
        let total = self.matched + self.not_matched;
        // Exact: matched / total >= target / 10000, without rounding.
        (total > 0).then(|| self.matched * 10_000 >= target_basis_points * total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(RecordOutcome, u64)], inactive: u64) -> UploadOutcomeCounts {
        UploadOutcomeCounts {
            id: UploadId::parse("00000000-0000-4000-8000-000000000001").unwrap(),
            file_id: "f".into(),
            received_at: DateTime::UNIX_EPOCH,
            file_outcome: None,
            rows: pairs.iter().map(|(_, n)| n).sum(),
            by_outcome: pairs.iter().copied().collect(),
            inactive_nhs_numbers: inactive,
        }
    }

    #[test]
    fn match_rate_counts_only_nhs_number_outcomes() {
        use RecordOutcome::*;
        let u = counts(
            &[
                (Accepted, 90),
                (NotFound, 2),
                (Sensitive, 5),
                (DobMismatch, 1),
                (MalformedNhsNumber, 1),
                (Superseded, 1),
                (Invalid, 7),
            ],
            2,
        );
        assert_eq!(u.matched(), 90);
        assert_eq!(u.not_matched(), 7);
        assert_eq!(u.rejected(), 17);
        let m = MatchCounts::of([&u]);
        assert_eq!(m.rate_basis_points(), Some(9278));
        assert_eq!(m.meets(9500), Some(false));
        let exact = MatchCounts {
            matched: 95,
            not_matched: 5,
        };
        assert_eq!(exact.meets(9500), Some(true));
        assert_eq!(MatchCounts::default().rate_basis_points(), None);
        assert_eq!(MatchCounts::default().meets(9500), None);
    }
}
