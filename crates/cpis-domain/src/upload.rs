//! The LA upload format `cpis-upload/1` (SPEC 3.2): file metadata and one typed row per CSV line.
//! Reading bytes and talking to the demographics index happen elsewhere; this module turns the
//! eleven text fields of a row into a typed [`UploadRow`] or a precise [`RowRejection`].

use crate::date::{parse_iso_date, DateError};
use crate::nhs_number::{NhsNumber, NhsNumberError};
use crate::outcome::{DetailCode, RecordOutcome};
use crate::plan::{Plan, PlanError, PlanType};
use chrono::NaiveDate;
use std::fmt;
use std::str::FromStr;

/// The only format version this build reads.
pub const FORMAT_V1: &str = "cpis-upload/1";

/// The header row of `cpis-upload/1`, in order.
pub const HEADER: [&str; 11] = [
    "action",
    "nhs_number",
    "local_id",
    "given_name",
    "family_name",
    "date_of_birth",
    "plan_type",
    "start_date",
    "end_date",
    "expected_delivery_date",
    "sensitive",
];

pub const MAX_LOCAL_ID: usize = 64;
pub const MAX_NAME: usize = 100;

/// `delta`: rows upsert/delete; `full`: the file is the LA's complete current list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadMode {
    Delta,
    Full,
}

impl UploadMode {
    pub fn code(self) -> &'static str {
        match self {
            UploadMode::Delta => "delta",
            UploadMode::Full => "full",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mode must be 'delta' or 'full'")]
pub struct UnknownMode;

impl FromStr for UploadMode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "delta" => Ok(UploadMode::Delta),
            "full" => Ok(UploadMode::Full),
            _ => Err(UnknownMode),
        }
    }
}

impl fmt::Display for UploadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The LA's own identifier for a file: 1–64 of `A-Z a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FileId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file id must be 1 to 64 characters of letters, digits, '.', '_' or '-'")]
pub struct BadFileId;

impl FileId {
    pub fn parse(s: &str) -> Result<Self, BadFileId> {
        let s = s.trim();
        let ok = (1..=64).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(FileId(s.to_owned()))
        } else {
            Err(BadFileId)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A record (one plan of one person) as the LA sent it, fully checked for shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub nhs_number: NhsNumber,
    pub local_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub date_of_birth: NaiveDate,
    pub plan: Plan,
    /// What the row's `sensitive` column says about this plan.
    pub sensitive: SensitiveMark,
}

/// The LA's sensitive mark on one plan row. A record is sensitive while any of its plans is
/// marked (or the demographics index S-flags the person); an empty column changes nothing, so a
/// mark is removed only by an explicit `false` on every plan row of that child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensitiveMark {
    /// `sensitive=true`.
    Marked,
    /// `sensitive=false`: removes this plan's mark.
    Unmarked,
    /// The column is empty: a new plan is unmarked, an existing plan keeps its mark.
    Unstated,
}

impl SensitiveMark {
    pub fn is_marked(self) -> bool {
        self == SensitiveMark::Marked
    }
}

/// One data row of an upload file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadRow {
    Upsert(RecordRow),
    /// Removes the LA's record (or only the named plan of it).
    Delete {
        nhs_number: NhsNumber,
        plan_type: Option<PlanType>,
    },
}

impl UploadRow {
    pub fn nhs_number(&self) -> NhsNumber {
        match self {
            UploadRow::Upsert(r) => r.nhs_number,
            UploadRow::Delete { nhs_number, .. } => *nhs_number,
        }
    }

    /// Two rows with the same key in one file are duplicates.
    pub fn key(&self) -> (NhsNumber, Option<PlanType>) {
        match self {
            UploadRow::Upsert(r) => (r.nhs_number, Some(r.plan.plan_type())),
            UploadRow::Delete {
                nhs_number,
                plan_type,
            } => (*nhs_number, *plan_type),
        }
    }
}

/// Why a row was refused, in the words of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRejection {
    pub outcome: RecordOutcome,
    pub detail: Option<DetailCode>,
    pub message: String,
    /// The NHS number, when it could be read.
    pub nhs_number: Option<NhsNumber>,
}

impl RowRejection {
    pub fn invalid(detail: DetailCode, message: impl Into<String>, nhs: Option<NhsNumber>) -> Self {
        RowRejection {
            outcome: RecordOutcome::Invalid,
            detail: Some(detail),
            message: message.into(),
            nhs_number: nhs,
        }
    }
}

fn optional(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

fn text_field(
    value: &str,
    name: &str,
    max: usize,
    nhs: NhsNumber,
) -> Result<Option<String>, RowRejection> {
    match optional(value) {
        None => Ok(None),
        Some(v) if v.chars().count() > max => Err(RowRejection::invalid(
            DetailCode::FieldTooLong,
            format!("{name} is longer than {max} characters"),
            Some(nhs),
        )),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

fn date_field(value: &str, name: &str, nhs: NhsNumber) -> Result<Option<NaiveDate>, RowRejection> {
    match optional(value) {
        None => Ok(None),
        Some(v) => parse_iso_date(v).map(Some).map_err(|e| {
            let why = match e {
                DateError::Format => "is not a YYYY-MM-DD date",
                DateError::NoSuchDay => "is not a real calendar day",
            };
            RowRejection::invalid(DetailCode::BadDate, format!("{name} {why}"), Some(nhs))
        }),
    }
}

fn required_date(value: &str, name: &str, nhs: NhsNumber) -> Result<NaiveDate, RowRejection> {
    date_field(value, name, nhs)?.ok_or_else(|| {
        RowRejection::invalid(
            DetailCode::DateMissing,
            format!("{name} is required"),
            Some(nhs),
        )
    })
}

/// Parses one data row (the eleven fields of [`HEADER`]). Checks run in a fixed order so a row
/// always gets the same outcome: NHS number (CPR04) first, then every other field (CPR07).
pub fn parse_row(fields: &[&str]) -> Result<UploadRow, RowRejection> {
    let nhs_text = fields.get(1).copied().unwrap_or("");
    let nhs = NhsNumber::parse(nhs_text).map_err(|e| RowRejection {
        outcome: RecordOutcome::MalformedNhsNumber,
        detail: Some(match e {
            NhsNumberError::Empty => DetailCode::NhsNumberMissing,
            NhsNumberError::NotDigits => DetailCode::NhsNumberNotDigits,
            NhsNumberError::WrongLength(_) => DetailCode::NhsNumberLength,
            NhsNumberError::BadCheckDigit => DetailCode::NhsNumberCheckDigit,
        }),
        message: e.to_string(),
        nhs_number: None,
    })?;
    if fields.len() != HEADER.len() {
        return Err(RowRejection::invalid(
            DetailCode::WrongFieldCount,
            format!("row has {} fields, expected {}", fields.len(), HEADER.len()),
            Some(nhs),
        ));
    }
    // NUL, line breaks and other control characters have no place in any field: a name holding
    // them would be stored, shown and exported as something other than what the LA sees.
    if let Some((i, c)) = fields
        .iter()
        .enumerate()
        .find_map(|(i, f)| f.chars().find(|c| c.is_control()).map(|c| (i, c)))
    {
        return Err(RowRejection::invalid(
            DetailCode::ControlCharacter,
            format!(
                "{} contains a control character (U+{:04X}); fields must be plain text",
                HEADER[i],
                u32::from(c)
            ),
            Some(nhs),
        ));
    }
    let plan_type = match optional(fields[6]) {
        None => None,
        Some(t) => Some(t.parse::<PlanType>().map_err(|_| {
            RowRejection::invalid(
                DetailCode::UnknownPlanType,
                "plan_type must be CPP, LAC or UCPP",
                Some(nhs),
            )
        })?),
    };
    match fields[0].trim().to_ascii_lowercase().as_str() {
        "upsert" => {}
        "delete" => {
            return Ok(UploadRow::Delete {
                nhs_number: nhs,
                plan_type,
            })
        }
        _ => {
            return Err(RowRejection::invalid(
                DetailCode::UnknownAction,
                "action must be 'upsert' or 'delete'",
                Some(nhs),
            ))
        }
    }
    let plan_type = plan_type.ok_or_else(|| {
        RowRejection::invalid(
            DetailCode::PlanTypeMissing,
            "plan_type is required",
            Some(nhs),
        )
    })?;
    let local_id = text_field(fields[2], "local_id", MAX_LOCAL_ID, nhs)?;
    let given_name = text_field(fields[3], "given_name", MAX_NAME, nhs)?;
    let family_name = text_field(fields[4], "family_name", MAX_NAME, nhs)?;
    let date_of_birth = required_date(fields[5], "date_of_birth", nhs)?;
    let start = required_date(fields[7], "start_date", nhs)?;
    let end = date_field(fields[8], "end_date", nhs)?;
    let edd = date_field(fields[9], "expected_delivery_date", nhs)?;
    let sensitive = match fields[10].trim().to_ascii_lowercase().as_str() {
        "" => SensitiveMark::Unstated,
        "false" => SensitiveMark::Unmarked,
        "true" => SensitiveMark::Marked,
        _ => {
            return Err(RowRejection::invalid(
                DetailCode::BadSensitiveFlag,
                "sensitive must be 'true', 'false' or empty",
                Some(nhs),
            ))
        }
    };
    let plan = Plan::new(plan_type, start, end, edd).map_err(|e| {
        let detail = match e {
            PlanError::EndBeforeStart => DetailCode::EndBeforeStart,
            PlanError::UcppWithoutEdd => DetailCode::UcppWithoutEdd,
            PlanError::EddNotForPlanType => DetailCode::EddNotForPlanType,
        };
        RowRejection::invalid(detail, e.to_string(), Some(nhs))
    })?;
    Ok(UploadRow::Upsert(RecordRow {
        nhs_number: nhs,
        local_id,
        given_name,
        family_name,
        date_of_birth,
        plan,
        sensitive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(s: &str) -> Result<UploadRow, RowRejection> {
        let fields: Vec<&str> = s.split(',').collect();
        parse_row(&fields)
    }

    fn detail(s: &str) -> (RecordOutcome, Option<DetailCode>) {
        let r = row(s).unwrap_err();
        (r.outcome, r.detail)
    }

    #[test]
    fn control_characters_in_any_field_are_cpr07() {
        for bad in ["A\0my", "A\u{7}my", "Amy\u{1b}[31m", "A\tmy", "A\u{85}my"] {
            let line = format!("upsert,9434765919,L1,{bad},Smith,2015-04-01,CPP,2025-01-01,,,");
            assert_eq!(
                detail(&line),
                (RecordOutcome::Invalid, Some(DetailCode::ControlCharacter)),
                "{bad:?}"
            );
        }
        let r = row("upsert,9434765919,L1\0,Amy,Smith,2015-04-01,CPP,2025-01-01,,,").unwrap_err();
        assert!(r.message.contains("local_id"), "{}", r.message);
        assert!(row("upsert,9434765919,L1,Zoë,O'Brien-Ṡmith,2015-04-01,CPP,2025-01-01,,,").is_ok());
    }

    #[test]
    fn good_rows_parse() {
        let r = row("upsert,943 476 5919,L1,Amy,Smith,2015-04-01,CPP,2025-01-01,,,").unwrap();
        let UploadRow::Upsert(rec) = r else {
            panic!("upsert")
        };
        assert_eq!(rec.nhs_number.digits(), "9434765919");
        assert_eq!(rec.plan.plan_type(), PlanType::Cpp);
        assert_eq!(rec.sensitive, SensitiveMark::Unstated);
        let r = row("upsert,9434765919,,,,1990-04-01,UCPP,2025-01-01,,2026-02-01,true").unwrap();
        assert!(matches!(
            r,
            UploadRow::Upsert(RecordRow {
                sensitive: SensitiveMark::Marked,
                ..
            })
        ));
        let r = row("delete,9434765919,,,,,,,,,").unwrap();
        assert_eq!(r.key().1, None);
        let r = row("DELETE,9434765919,,,,,LAC,,,,").unwrap();
        assert_eq!(r.key().1, Some(PlanType::Lac));
    }

    #[test]
    fn every_bad_field_has_its_own_detail_code() {
        use DetailCode::*;
        use RecordOutcome::*;
        let cases = [
            (
                "upsert,,L,A,B,2015-04-01,CPP,2025-01-01,,,",
                (MalformedNhsNumber, Some(NhsNumberMissing)),
            ),
            (
                "upsert,943476591,L,A,B,2015-04-01,CPP,2025-01-01,,,",
                (MalformedNhsNumber, Some(NhsNumberLength)),
            ),
            (
                "upsert,9434765918,L,A,B,2015-04-01,CPP,2025-01-01,,,",
                (MalformedNhsNumber, Some(NhsNumberCheckDigit)),
            ),
            (
                "upsert,94347x5919,L,A,B,2015-04-01,CPP,2025-01-01,,,",
                (MalformedNhsNumber, Some(NhsNumberNotDigits)),
            ),
            (
                "upsert,9434765919,L,A,B,2015-04-01,CPP,2025-01-01,,",
                (Invalid, Some(WrongFieldCount)),
            ),
            (
                "insert,9434765919,L,A,B,2015-04-01,CPP,2025-01-01,,,",
                (Invalid, Some(UnknownAction)),
            ),
            (
                "upsert,9434765919,L,A,B,2015-04-01,XYZ,2025-01-01,,,",
                (Invalid, Some(UnknownPlanType)),
            ),
            (
                "upsert,9434765919,L,A,B,2015-04-01,,2025-01-01,,,",
                (Invalid, Some(PlanTypeMissing)),
            ),
            (
                "upsert,9434765919,L,A,B,2015-04-01,CPP,2025-02-30,,,",
                (Invalid, Some(BadDate)),
            ),
            (
                "upsert,9434765919,L,A,B,01/04/2015,CPP,2025-02-01,,,",
                (Invalid, Some(BadDate)),
            ),
            (
                "upsert,9434765919,L,A,B,,CPP,2025-02-01,,,",
                (Invalid, Some(DateMissing)),
            ),
            (
                "upsert,9434765919,L,A,B,2015-04-01,CPP,,,,",
                (Invalid, Some(DateMissing)),
            ),
            (
                "upsert,9434765919,L,A,B,2015-04-01,CPP,2025-02-01,2025-01-01,,",
                (Invalid, Some(EndBeforeStart)),
            ),
            (
                "upsert,9434765919,L,A,B,1990-04-01,UCPP,2025-02-01,,,",
                (Invalid, Some(UcppWithoutEdd)),
            ),
            (
                "upsert,9434765919,L,A,B,2015-04-01,LAC,2025-02-01,,2025-09-01,",
                (Invalid, Some(EddNotForPlanType)),
            ),
            (
                "upsert,9434765919,L,A,B,2015-04-01,LAC,2025-02-01,,,yes",
                (Invalid, Some(BadSensitiveFlag)),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(detail(line), want, "{line}");
        }
        let long = format!(
            "upsert,9434765919,L,{},B,2015-04-01,CPP,2025-01-01,,,",
            "x".repeat(101)
        );
        assert_eq!(detail(&long), (Invalid, Some(FieldTooLong)));
    }

    #[test]
    fn file_ids_and_modes() {
        assert!(FileId::parse("COV-2026-11-25.csv").is_ok());
        assert_eq!(FileId::parse(""), Err(BadFileId));
        assert_eq!(FileId::parse("a/b"), Err(BadFileId));
        assert_eq!(FileId::parse(&"x".repeat(65)), Err(BadFileId));
        assert_eq!("FULL".parse::<UploadMode>(), Ok(UploadMode::Full));
        assert_eq!("replace".parse::<UploadMode>(), Err(UnknownMode));
    }
}
