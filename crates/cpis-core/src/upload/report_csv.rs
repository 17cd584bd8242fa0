//! The per-record report as CSV: the same columns on every channel.

use cpis_domain::report::RowResult;
use std::io::Write;

pub const REPORT_CSV_HEADER: [&str; 6] = [
    "row",
    "nhs_number",
    "outcome",
    "detail_code",
    "message",
    "new_nhs_number",
];

/// Writes the header (when `header` is set) and the given rows.
pub fn write_report_csv<W: Write>(out: W, rows: &[RowResult], header: bool) -> csv::Result<W> {
    let mut w = csv::Writer::from_writer(out);
    if header {
        w.write_record(REPORT_CSV_HEADER)?;
    }
    for r in rows {
        w.write_record([
            r.row.to_string().as_str(),
            &r.nhs_number,
            r.outcome.code(),
            r.detail.map_or("", |d| d.code()),
            r.message.as_deref().unwrap_or(""),
            &r.new_nhs_number.map(|n| n.digits()).unwrap_or_default(),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}
