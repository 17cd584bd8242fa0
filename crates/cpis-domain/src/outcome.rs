//! Upload outcome codes (SPEC 2.5): one per file (`CPF..`) and one per record (`CPR..`), with a
//! detail code saying exactly what was wrong with a rejected record.

use std::fmt;

/// What happened to a whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FileOutcome {
    /// File unreadable or malformed; nothing applied.
    #[serde(rename = "CPF01")]
    Malformed,
    /// Every record loaded.
    #[serde(rename = "CPF02")]
    AllLoaded,
    /// Valid records applied, invalid ones rejected.
    #[serde(rename = "CPF03")]
    Partial,
    /// Nothing loaded.
    #[serde(rename = "CPF04")]
    NothingLoaded,
    /// Temporarily unavailable; resubmit the same file.
    #[serde(rename = "CPF05")]
    TemporarilyUnavailable,
    /// Format version not supported.
    #[serde(rename = "CPF06")]
    UnsupportedVersion,
}

impl FileOutcome {
    pub const ALL: [FileOutcome; 6] = [
        FileOutcome::Malformed,
        FileOutcome::AllLoaded,
        FileOutcome::Partial,
        FileOutcome::NothingLoaded,
        FileOutcome::TemporarilyUnavailable,
        FileOutcome::UnsupportedVersion,
    ];

    pub fn code(self) -> &'static str {
        match self {
            FileOutcome::Malformed => "CPF01",
            FileOutcome::AllLoaded => "CPF02",
            FileOutcome::Partial => "CPF03",
            FileOutcome::NothingLoaded => "CPF04",
            FileOutcome::TemporarilyUnavailable => "CPF05",
            FileOutcome::UnsupportedVersion => "CPF06",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            FileOutcome::Malformed => "File unreadable or malformed; nothing was applied",
            FileOutcome::AllLoaded => "All records loaded",
            FileOutcome::Partial => {
                "Partially loaded: valid records applied, invalid records rejected"
            }
            FileOutcome::NothingLoaded => "Nothing loaded",
            FileOutcome::TemporarilyUnavailable => {
                "Service temporarily unavailable; resubmit the file"
            }
            FileOutcome::UnsupportedVersion => "File format version not supported",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.code() == code)
    }

    /// The file outcome that follows from per-record counts, once the file itself was readable.
    pub fn from_counts(accepted: u64, rejected: u64) -> Self {
        match (accepted, rejected) {
            (_, 0) => FileOutcome::AllLoaded,
            (0, _) => FileOutcome::NothingLoaded,
            _ => FileOutcome::Partial,
        }
    }
}

impl fmt::Display for FileOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What happened to one record (row) of a file.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum RecordOutcome {
    /// NHS number not in the demographics index.
    #[serde(rename = "CPR01")]
    NotFound,
    /// Sensitive (S-flagged) person, not marked sensitive by the LA.
    #[serde(rename = "CPR02")]
    Sensitive,
    /// Date of birth does not match the demographics index.
    #[serde(rename = "CPR03")]
    DobMismatch,
    /// NHS number malformed or with a bad check digit.
    #[serde(rename = "CPR04")]
    MalformedNhsNumber,
    /// NHS number superseded; the report carries the new number.
    #[serde(rename = "CPR05")]
    Superseded,
    /// Accepted.
    #[serde(rename = "CPR06")]
    Accepted,
    /// Other validation failure (see the detail code).
    #[serde(rename = "CPR07")]
    Invalid,
}

impl RecordOutcome {
    pub const ALL: [RecordOutcome; 7] = [
        RecordOutcome::NotFound,
        RecordOutcome::Sensitive,
        RecordOutcome::DobMismatch,
        RecordOutcome::MalformedNhsNumber,
        RecordOutcome::Superseded,
        RecordOutcome::Accepted,
        RecordOutcome::Invalid,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RecordOutcome::NotFound => "CPR01",
            RecordOutcome::Sensitive => "CPR02",
            RecordOutcome::DobMismatch => "CPR03",
            RecordOutcome::MalformedNhsNumber => "CPR04",
            RecordOutcome::Superseded => "CPR05",
            RecordOutcome::Accepted => "CPR06",
            RecordOutcome::Invalid => "CPR07",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            RecordOutcome::NotFound => "NHS number not found in the demographics index",
            RecordOutcome::Sensitive => "Sensitive record: mark the row sensitive=true to share it",
            RecordOutcome::DobMismatch => "Date of birth does not match the demographics index",
            RecordOutcome::MalformedNhsNumber => "NHS number malformed or check digit invalid",
            RecordOutcome::Superseded => "NHS number superseded: resubmit with the new number",
            RecordOutcome::Accepted => "Accepted",
            RecordOutcome::Invalid => "Validation failure",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.code() == code)
    }

    pub fn is_accepted(self) -> bool {
        self == RecordOutcome::Accepted
    }
}

impl fmt::Display for RecordOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why a record was rejected, more precisely than its outcome code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DetailCode {
    // CPR04
    NhsNumberMissing,
    NhsNumberNotDigits,
    NhsNumberLength,
    NhsNumberCheckDigit,
    // CPR07
    WrongFieldCount,
    UnknownAction,
    UnknownPlanType,
    PlanTypeMissing,
    BadDate,
    DateMissing,
    EndBeforeStart,
    UcppWithoutEdd,
    EddNotForPlanType,
    BadSensitiveFlag,
    FieldTooLong,
    ControlCharacter,
    DuplicateRow,
    NhsNumberInactive,
    RecordNotFound,
}

impl DetailCode {
    pub const ALL: [DetailCode; 19] = [
        DetailCode::NhsNumberMissing,
        DetailCode::NhsNumberNotDigits,
        DetailCode::NhsNumberLength,
        DetailCode::NhsNumberCheckDigit,
        DetailCode::WrongFieldCount,
        DetailCode::UnknownAction,
        DetailCode::UnknownPlanType,
        DetailCode::PlanTypeMissing,
        DetailCode::BadDate,
        DetailCode::DateMissing,
        DetailCode::EndBeforeStart,
        DetailCode::UcppWithoutEdd,
        DetailCode::EddNotForPlanType,
        DetailCode::BadSensitiveFlag,
        DetailCode::FieldTooLong,
        DetailCode::ControlCharacter,
        DetailCode::DuplicateRow,
        DetailCode::NhsNumberInactive,
        DetailCode::RecordNotFound,
    ];

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.code() == code)
    }

    pub fn code(self) -> &'static str {
        match self {
            DetailCode::NhsNumberMissing => "NHS_NUMBER_MISSING",
            DetailCode::NhsNumberNotDigits => "NHS_NUMBER_NOT_DIGITS",
            DetailCode::NhsNumberLength => "NHS_NUMBER_LENGTH",
            DetailCode::NhsNumberCheckDigit => "NHS_NUMBER_CHECK_DIGIT",
            DetailCode::WrongFieldCount => "WRONG_FIELD_COUNT",
            DetailCode::UnknownAction => "UNKNOWN_ACTION",
            DetailCode::UnknownPlanType => "UNKNOWN_PLAN_TYPE",
            DetailCode::PlanTypeMissing => "PLAN_TYPE_MISSING",
            DetailCode::BadDate => "BAD_DATE",
            DetailCode::DateMissing => "DATE_MISSING",
            DetailCode::EndBeforeStart => "END_BEFORE_START",
            DetailCode::UcppWithoutEdd => "UCPP_WITHOUT_EDD",
            DetailCode::EddNotForPlanType => "EDD_NOT_FOR_PLAN_TYPE",
            DetailCode::BadSensitiveFlag => "BAD_SENSITIVE_FLAG",
            DetailCode::FieldTooLong => "FIELD_TOO_LONG",
            DetailCode::ControlCharacter => "CONTROL_CHARACTER",
            DetailCode::DuplicateRow => "DUPLICATE_ROW",
            DetailCode::NhsNumberInactive => "NHS_NUMBER_INACTIVE",
            DetailCode::RecordNotFound => "RECORD_NOT_FOUND",
        }
    }
}

impl fmt::Display for DetailCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for o in FileOutcome::ALL {
            assert_eq!(FileOutcome::from_code(o.code()), Some(o));
        }
        for o in RecordOutcome::ALL {
            assert_eq!(RecordOutcome::from_code(o.code()), Some(o));
        }
        assert_eq!(FileOutcome::from_code("CPF99"), None);
    }

    #[test]
    fn file_outcome_from_counts() {
        assert_eq!(FileOutcome::from_counts(5, 0), FileOutcome::AllLoaded);
        assert_eq!(FileOutcome::from_counts(0, 0), FileOutcome::AllLoaded);
        assert_eq!(FileOutcome::from_counts(0, 3), FileOutcome::NothingLoaded);
        assert_eq!(FileOutcome::from_counts(2, 3), FileOutcome::Partial);
    }
}
