//! The per-record report as CSV: the same columns on every channel.
//!
//! Cells can echo what an LA's file held (an unreadable NHS number is reported as written), and
//! data officers open these reports in spreadsheets: a cell that a spreadsheet would run as a
//! formula is written as text instead ([`spreadsheet_safe`]).

use cpis_domain::report::RowResult;
use std::borrow::Cow;
use std::io::Write;

pub const REPORT_CSV_HEADER: [&str; 6] = [
    "row",
    "nhs_number",
    "outcome",
    "detail_code",
    "message",
    "new_nhs_number",
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
            r.message.clone().unwrap_or_default(),
            r.new_nhs_number.map(|n| n.digits()).unwrap_or_default(),
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
        assert_eq!(cells[4], "'-the message");
    }
}
