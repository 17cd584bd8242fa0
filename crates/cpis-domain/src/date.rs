//! Strict ISO calendar dates (`YYYY-MM-DD`) as used in every cpis file format.

use chrono::NaiveDate;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("date must be written YYYY-MM-DD")]
    Format,
    #[error("date does not exist in the calendar")]
    NoSuchDay,
}

/// Parses exactly `YYYY-MM-DD` (four-digit year, two-digit month and day). `2025-02-30` is
/// rejected as a day that does not exist, `2025-2-3` as a bad format.
pub fn parse_iso_date(input: &str) -> Result<NaiveDate, DateError> {
    let b = input.trim().as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return Err(DateError::Format);
    }
    let num = |r: std::ops::Range<usize>| -> u32 {
        b[r].iter()
            .fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0'))
    };
    NaiveDate::from_ymd_opt(num(0..4) as i32, num(5..7), num(8..10)).ok_or(DateError::NoSuchDay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strict_iso_dates() {
        assert_eq!(
            parse_iso_date("2024-02-29"),
            Ok(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        );
        assert_eq!(parse_iso_date("2025-02-29"), Err(DateError::NoSuchDay));
        assert_eq!(parse_iso_date("2025-02-30"), Err(DateError::NoSuchDay));
        assert_eq!(parse_iso_date("2025-13-01"), Err(DateError::NoSuchDay));
        assert_eq!(parse_iso_date("2025-2-3"), Err(DateError::Format));
        assert_eq!(parse_iso_date("03/02/2025"), Err(DateError::Format));
        assert_eq!(parse_iso_date("2025-02-03T00:00"), Err(DateError::Format));
        assert_eq!(parse_iso_date(""), Err(DateError::Format));
    }
}
