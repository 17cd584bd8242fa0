//! The per-record report as CSV: the same columns on every channel.
//!
//! Cells can echo what an LA's file held (an unreadable NHS number is reported as written), and
//! data officers open these reports in spreadsheets: a cell that a spreadsheet would run as a
//! formula is written as text instead ([`spreadsheet_safe`]).
//!
//! Messages are written as sentences ([`sentence`]): the engine's short texts
//! (`date_of_birth is required`) become `The date_of_birth field is required.`; the detail code
//! keeps its own column, never a prefix of the message.

use cpis_domain::report::{RowResult, UploadSummary};
use cpis_domain::upload::HEADER;
use std::borrow::Cow;
use std::io::Write;

pub const REPORT_CSV_HEADER: [&str; 7] = [
    "row",
    "nhs_number",
    "outcome",
    "detail_code",
    "message",
    "new_nhs_number",
    "local_id",
];

/// A cell a spreadsheet would read as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, which spreadsheets read as "this is text" (OWASP, CSV
/// injection); the csv writer quotes it whenever it holds a quote, comma or line break.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// A row message as a sentence: a leading upload column name becomes "The <column> field …",
/// otherwise the first letter is capitalised; it ends with a full stop. Empty stays empty.
pub fn sentence(message: &str) -> String {
    let m = message.trim();
    if m.is_empty() {
        return String::new();
    }
    let first = m.split_whitespace().next().unwrap_or("");
    let mut out = if HEADER.contains(&first) {
        format!("The {first} field{}", &m[first.len()..])
    } else {
        let mut chars = m.chars();
        chars.next().map_or_else(String::new, |c| {
            c.to_uppercase().collect::<String>() + chars.as_str()
        })
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// The name of an upload's CSV report when downloaded: `cpis-report-<file id>.csv` (the file
/// id is 1–64 of `A-Z a-z 0-9 . _ -`; anything else is replaced, so the header stays valid).
pub fn report_file_name(summary: &UploadSummary) -> String {
    let id: String = summary
        .meta
        .file_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let id = id.trim_end_matches(".csv");
    if id.is_empty() {
        format!("cpis-report-{}.csv", summary.id)
    } else {
        format!("cpis-report-{id}.csv")
    }
}

/// Writes the header (when `header` is set) and the given rows.
pub fn write_report_csv<W: Write>(out: W, rows: &[RowResult], header: bool) -> csv::Result<W> {
    let mut w = csv::Writer::from_writer(out);
    if header {
        w.write_record(REPORT_CSV_HEADER)?;
    }
    for r in rows {
        let cells = [
            r.row.to_string(),
            r.nhs_number.clone(),
            r.outcome.code().to_owned(),
            r.detail.map_or("", |d| d.code()).to_owned(),
            sentence(r.message.as_deref().unwrap_or_default()),
            r.new_nhs_number.map(|n| n.digits()).unwrap_or_default(),
            r.local_id.clone().unwrap_or_default(),
        ];
        w.write_record(cells.iter().map(|c| spreadsheet_safe(c).into_owned()))?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpis_domain::outcome::{DetailCode, RecordOutcome};

    #[test]
    fn formula_cells_are_written_as_text() {
        for bad in [
            "=1+2",
            "+1",
            "-1",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "=HYPERLINK(\"x\",\"y\")",
        ] {
            assert_eq!(spreadsheet_safe(bad), format!("'{bad}"));
        }
        for fine in ["9434765919", "", "CPR07", "row has 3 fields", "a=b"] {
            assert_eq!(spreadsheet_safe(fine), fine);
        }
        let row = RowResult {
            row: 1,
            nhs_number: "=HYPERLINK(\"http://x\",\"y\")".into(),
            outcome: RecordOutcome::MalformedNhsNumber,
            detail: Some(DetailCode::NhsNumberNotDigits),
            message: Some("-the message".into()),
            new_nhs_number: None,
            local_id: Some("@LOCAL-1".into()),
        };
        let out = write_report_csv(Vec::new(), &[row], false).unwrap();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&out[..]);
        let cells: Vec<String> = reader
            .records()
            .next()
            .unwrap()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(cells[1], "'=HYPERLINK(\"http://x\",\"y\")");
        assert_eq!(cells[4], "'-the message.");
        assert_eq!(cells[6], "'@LOCAL-1", "the local id is neutralised too");
    }

    #[test]
    fn messages_read_as_sentences_without_code_prefixes() {
        assert_eq!(
            sentence("date_of_birth is required"),
            "The date_of_birth field is required."
        );
        assert_eq!(
            sentence("the same NHS number and plan type appear earlier in this file"),
            "The same NHS number and plan type appear earlier in this file."
        );
        assert_eq!(sentence("Already a sentence."), "Already a sentence.");
        assert_eq!(sentence("  "), "");
        let row = RowResult {
            row: 3,
            nhs_number: "9434765918".into(),
            outcome: RecordOutcome::MalformedNhsNumber,
            detail: Some(DetailCode::NhsNumberCheckDigit),
            message: Some("row has 3 fields, expected 11".into()),
            new_nhs_number: None,
            local_id: Some("COV-17".into()),
        };
        let out = String::from_utf8(write_report_csv(Vec::new(), &[row], true).unwrap()).unwrap();
        let line = out.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "3,9434765918,CPR04,NHS_NUMBER_CHECK_DIGIT,\"Row has 3 fields, expected 11.\",,COV-17"
        );
        assert!(!line.contains("NHS_NUMBER_CHECK_DIGIT:"));
    }
}
