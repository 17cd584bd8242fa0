//! Reads a `cpis-upload/1` file row by row: header check, UTF-8, field splitting. Row meaning is
//! the domain's `parse_row`.

use cpis_domain::upload::{parse_row, RowRejection, UploadRow, HEADER};
use std::io::Read;

/// Why a whole file was refused (CPF01).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("file is empty: expected a header row")]
    Empty,
    #[error("header row does not match cpis-upload/1: expected '{expected}'")]
    BadHeader { expected: String },
    #[error("line {line} is not valid UTF-8")]
    NotUtf8 { line: u64 },
    #[error("line {line}: a field runs over a line break (is a quote left open?); fields may not contain line breaks, nothing was applied")]
    LineBreakInField { line: u64 },
    #[error("line {line} could not be read as CSV: {message}")]
    Csv { line: u64, message: String },
}

/// One data row: its number (1 = first row after the header), its fields' plan-type text for
/// the full-mode keep set, and what the domain made of it.
pub struct ReadRow {
    pub row: u64,
    pub raw_nhs: String,
    pub raw_plan_type: String,
    /// The row's local id as written (trimmed, at most 64 characters; none when empty).
    pub raw_local_id: Option<String>,
    pub parsed: Result<UploadRow, RowRejection>,
}

pub struct UploadReader<R: Read> {
    inner: csv::Reader<R>,
    record: csv::ByteRecord,
    row: u64,
}

impl<R: Read> UploadReader<R> {
    /// Wraps a reader and checks the header row.
    pub fn new(reader: R) -> Result<Self, FileError> {
        let mut inner = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::None)
            .from_reader(reader);
        let mut header = csv::ByteRecord::new();
        match inner.read_byte_record(&mut header) {
            Ok(true) => {}
            Ok(false) => return Err(FileError::Empty),
            Err(e) => return Err(csv_error(e, 1)),
        }
        let fields: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let f = if i == 0 {
                    f.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(f)
                } else {
                    f
                };
                String::from_utf8_lossy(f).trim().to_ascii_lowercase()
            })
            .collect();
        if fields != HEADER {
            return Err(FileError::BadHeader {
                expected: HEADER.join(","),
            });
        }
        Ok(UploadReader {
            inner,
            record: csv::ByteRecord::new(),
            row: 0,
        })
    }

    /// Bytes consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.inner.position().byte()
    }

    /// The next data row, `Ok(None)` at the end. Blank lines are skipped.
    pub fn next_row(&mut self) -> Result<Option<ReadRow>, FileError> {
        loop {
            let line = self.inner.position().line() + 1;
            match self.inner.read_byte_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(e) => return Err(csv_error(e, line)),
            }
            if self.record.len() == 1 && self.record[0].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = self.record.position().map_or(line, |p| p.line());
            // A quoted field holding a line break is nearly always an unclosed quote that swallowed
            // the rows after it: refuse the file rather than lose those rows silently.
            if self
                .record
                .iter()
                .any(|f| f.contains(&b'\n') || f.contains(&b'\r'))
            {
                return Err(FileError::LineBreakInField { line });
            }
            let mut fields: Vec<&str> = Vec::with_capacity(self.record.len());
            for f in self.record.iter() {
                fields.push(std::str::from_utf8(f).map_err(|_| FileError::NotUtf8 { line })?);
            }
            self.row += 1;
            let raw_nhs: String = fields
                .get(1)
                .map_or("", |s| s.trim())
                .chars()
                .take(32)
                .collect();
            let raw_plan_type = fields.get(6).map_or("", |s| s.trim()).to_owned();
            let raw_local_id = fields
                .get(2)
                .map(|s| s.trim().chars().take(64).collect::<String>())
                .filter(|s| !s.is_empty());
            let parsed = parse_row(&fields);
            return Ok(Some(ReadRow {
                row: self.row,
                raw_nhs,
                raw_plan_type,
                raw_local_id,
                parsed,
            }));
        }
    }
}

fn csv_error(e: csv::Error, line: u64) -> FileError {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => FileError::NotUtf8 { line },
        _ => FileError::Csv {
            line: e.position().map_or(line, |p| p.line()),
            message: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "action,nhs_number,local_id,given_name,family_name,date_of_birth,plan_type,start_date,end_date,expected_delivery_date,sensitive";

    #[test]
    fn header_must_match_and_bom_is_allowed() {
        assert!(UploadReader::new(format!("\u{feff}{H}\n").as_bytes()).is_ok());
        assert!(UploadReader::new(H.to_uppercase().as_bytes()).is_ok());
        assert_eq!(UploadReader::new(&b""[..]).err(), Some(FileError::Empty));
        assert!(matches!(
            UploadReader::new(&b"nhs_number,action\n"[..]).err(),
            Some(FileError::BadHeader { .. })
        ));
    }

    #[test]
    fn rows_are_numbered_and_blank_lines_skipped() {
        let body = format!("{H}\nupsert,9434765919,,,,2015-01-01,CPP,2025-01-01,,,\n\n\ndelete,9434765919,,,,,,,,,\n");
        let mut r = UploadReader::new(body.as_bytes()).unwrap();
        assert_eq!(r.next_row().unwrap().unwrap().row, 1);
        let second = r.next_row().unwrap().unwrap();
        assert_eq!(second.row, 2);
        assert!(matches!(second.parsed, Ok(UploadRow::Delete { .. })));
        assert!(r.next_row().unwrap().is_none());
    }

    #[test]
    fn an_unclosed_quote_is_a_file_error_with_its_line_not_lost_rows() {
        let body = format!("{H}\nupsert,9434765919,,,,2015-01-01,CPP,2025-01-01,,,\nupsert,9434765919,\"L2,,,2015-01-01,CPP,2025-01-01,,,\nupsert,9434765919,,,,2015-01-01,CPP,2025-01-01,,,\n");
        let mut r = UploadReader::new(body.as_bytes()).unwrap();
        assert!(r.next_row().unwrap().is_some());
        assert_eq!(
            r.next_row().err(),
            Some(FileError::LineBreakInField { line: 3 })
        );
        let quoted = format!("{H}\nupsert,9434765919,\"a\r\nb\",,,2015-01-01,CPP,2025-01-01,,,\n");
        let mut r = UploadReader::new(quoted.as_bytes()).unwrap();
        assert_eq!(
            r.next_row().err(),
            Some(FileError::LineBreakInField { line: 2 })
        );
    }

    #[test]
    fn invalid_utf8_is_a_file_error_with_its_line() {
        let mut body = format!("{H}\nupsert,9434765919,,").into_bytes();
        body.extend_from_slice(b"\xff\xfe,,2015-01-01,CPP,2025-01-01,,,\n");
        let mut r = UploadReader::new(&body[..]).unwrap();
        assert_eq!(r.next_row().err(), Some(FileError::NotUtf8 { line: 2 }));
    }
}
