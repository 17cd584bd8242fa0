//! A local authority's office hours, and which of its two numbers a clinician should ring now.
//!
//! The directory holds the hours as text such as `Mon-Fri 09:00-17:00` or
//! `Mon-Thu 09:00-17:00; Fri 09:00-16:30` (see docs/WORKFLOW.md, "The clinician's flag"). Times
//! are UK local time (Europe/London: GMT in winter, BST in summer); an office is open from the
//! opening minute up to, not including, the closing minute. On an England and Wales bank holiday
//! (worked out from the standing rules) every office counts as closed.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc, Weekday};
use std::fmt;
use std::str::FromStr;

/// One run of days with the same opening and closing times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    first: Weekday,
    last: Weekday,
    open: NaiveTime,
    close: NaiveTime,
}

/// When a local authority's office-hours number is answered. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficeHours {
    spans: Vec<Span>,
}

/// What a clinician should ring now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallNow {
    OfficeHours,
    EmergencyDutyTeam,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfficeHoursError {
    #[error("office hours are empty")]
    Empty,
    #[error("'{0}' is not days and times such as 'Mon-Fri 09:00-17:00'")]
    Shape(String),
    #[error("'{0}' is not a day (use Mon, Tue, Wed, Thu, Fri, Sat or Sun)")]
    Day(String),
    #[error("'{0}' runs backwards: name the days from Monday to Sunday")]
    DaysBackwards(String),
    #[error("'{0}' is not a time of day as HH:MM")]
    Time(String),
    #[error("'{0}' closes before it opens")]
    TimesBackwards(String),
}

/// The hours a local authority has when the directory gives none.
pub const DEFAULT_OFFICE_HOURS: &str = "Mon-Fri 09:00-17:00";

const DAYS: [(&str, Weekday); 7] = [
    ("Mon", Weekday::Mon),
    ("Tue", Weekday::Tue),
    ("Wed", Weekday::Wed),
    ("Thu", Weekday::Thu),
    ("Fri", Weekday::Fri),
    ("Sat", Weekday::Sat),
    ("Sun", Weekday::Sun),
];

fn day(s: &str) -> Result<Weekday, OfficeHoursError> {
    let s = s.trim();
    DAYS.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, d)| *d)
        .ok_or_else(|| OfficeHoursError::Day(s.to_owned()))
}

fn day_name(d: Weekday) -> &'static str {
    DAYS.iter()
        .find(|(_, w)| *w == d)
        .map_or("Mon", |(name, _)| name)
}

fn time(s: &str) -> Result<NaiveTime, OfficeHoursError> {
    let s = s.trim();
    let bad = || OfficeHoursError::Time(s.to_owned());
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    NaiveTime::from_hms_opt(h, m, 0).ok_or_else(bad)
}

fn span(s: &str) -> Result<Span, OfficeHoursError> {
    let s = s.trim();
    let (days, times) = s
        .split_once(char::is_whitespace)
        .ok_or_else(|| OfficeHoursError::Shape(s.to_owned()))?;
    let (first, last) = match days.split_once('-') {
        Some((a, b)) => (day(a)?, day(b)?),
        None => (day(days)?, day(days)?),
    };
    if first.num_days_from_monday() > last.num_days_from_monday() {
        return Err(OfficeHoursError::DaysBackwards(days.to_owned()));
    }
    let (open, close) = times
        .trim()
        .split_once('-')
        .ok_or_else(|| OfficeHoursError::Shape(s.to_owned()))?;
    let (open, close) = (time(open)?, time(close)?);
    if close <= open {
        return Err(OfficeHoursError::TimesBackwards(times.trim().to_owned()));
    }
    Ok(Span {
        first,
        last,
        open,
        close,
    })
}

impl OfficeHours {
    /// `Mon-Fri 09:00-17:00`: the hours of a local authority that gives none.
    pub fn standard() -> Self {
        OfficeHours {
            spans: vec![Span {
                first: Weekday::Mon,
                last: Weekday::Fri,
                open: NaiveTime::MIN + Duration::hours(9),
                close: NaiveTime::MIN + Duration::hours(17),
            }],
        }
    }

    /// Spans separated by `;`, each days (`Mon`, `Mon-Fri`) then times (`09:00-17:00`).
    pub fn parse(s: &str) -> Result<Self, OfficeHoursError> {
        let spans = s
            .split(';')
            .filter(|p| !p.trim().is_empty())
            .map(span)
            .collect::<Result<Vec<_>, _>>()?;
        if spans.is_empty() {
            return Err(OfficeHoursError::Empty);
        }
        Ok(OfficeHours { spans })
    }

    /// Whether the office is open at this UK local time.
    pub fn is_open(&self, local: NaiveDateTime) -> bool {
        if is_bank_holiday(local.date()) {
            return false;
        }
        let d = local.weekday().num_days_from_monday();
        let t = local.time();
        self.spans.iter().any(|s| {
            (s.first.num_days_from_monday()..=s.last.num_days_from_monday()).contains(&d)
                && s.open <= t
                && t < s.close
        })
    }
}

impl Default for OfficeHours {
    fn default() -> Self {
        OfficeHours::standard()
    }
}

impl FromStr for OfficeHours {
    type Err = OfficeHoursError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OfficeHours::parse(s)
    }
}

/// The canonical text, which parses back to the same hours.
impl fmt::Display for OfficeHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.spans.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if s.first == s.last {
                f.write_str(day_name(s.first))?;
            } else {
                write!(f, "{}-{}", day_name(s.first), day_name(s.last))?;
            }
            write!(f, " {}-{}", s.open.format("%H:%M"), s.close.format("%H:%M"))?;
        }
        Ok(())
    }
}

impl serde::Serialize for OfficeHours {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// UK local time (Europe/London) of an instant.
pub fn uk_local(t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&chrono_tz::Europe::London).naive_local()
}

/// Which number to ring at this UK local time: the office while it is open, otherwise the
/// emergency duty team.
pub fn number_now(hours: &OfficeHours, local: NaiveDateTime) -> CallNow {
    if hours.is_open(local) {
        CallNow::OfficeHours
    } else {
        CallNow::EmergencyDutyTeam
    }
}

/// Easter Sunday (Gregorian; the anonymous algorithm of Meeus, Jones and Butcher).
fn easter(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

fn nth_monday(year: i32, month: u32, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Mon, n)
}

fn last_monday(year: i32, month: u32) -> Option<NaiveDate> {
    nth_monday(year, month, 5).or_else(|| nth_monday(year, month, 4))
}

/// The next weekday on or after `d`.
fn weekday_on_or_after(d: NaiveDate) -> NaiveDate {
    match d.weekday() {
        Weekday::Sat => d + Duration::days(2),
        Weekday::Sun => d + Duration::days(1),
        _ => d,
    }
}

/// England and Wales bank holidays by the standing rules: New Year's Day, Good Friday, Easter
/// Monday, the first and last Mondays of May, the last Monday of August, Christmas Day and Boxing
/// Day, with the substitute weekdays when they fall at a weekend. One-off holidays proclaimed for
/// a single year are not known.
pub fn is_bank_holiday(d: NaiveDate) -> bool {
    let y = d.year();
    let mut days: Vec<Option<NaiveDate>> = Vec::with_capacity(8);
    days.push(NaiveDate::from_ymd_opt(y, 1, 1).map(weekday_on_or_after));
    if let Some(e) = easter(y) {
        days.push(Some(e - Duration::days(2)));
        days.push(Some(e + Duration::days(1)));
    }
    days.push(nth_monday(y, 5, 1));
    days.push(last_monday(y, 5));
    days.push(last_monday(y, 8));
    if let Some(christmas) = NaiveDate::from_ymd_opt(y, 12, 25) {
        let (c, b) = match christmas.weekday() {
            // Christmas on Saturday: Monday and Tuesday; on Sunday: Boxing Day Monday, Tuesday.
            Weekday::Sat => (christmas + Duration::days(2), christmas + Duration::days(3)),
            Weekday::Sun => (christmas + Duration::days(2), christmas + Duration::days(1)),
            // Christmas on Friday: Boxing Day moves from Saturday to Monday.
            Weekday::Fri => (christmas, christmas + Duration::days(3)),
            _ => (christmas, christmas + Duration::days(1)),
        };
        days.push(Some(c));
        days.push(Some(b));
    }
    days.into_iter().flatten().any(|h| h == d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        Utc.from_utc_datetime(&at(s))
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn standard_hours_open_at_nine_and_close_at_five() {
        let h = OfficeHours::standard();
        // Wednesday 14 January 2026.
        assert_eq!(
            number_now(&h, at("2026-01-14 08:59")),
            CallNow::EmergencyDutyTeam
        );
        assert_eq!(number_now(&h, at("2026-01-14 09:00")), CallNow::OfficeHours);
        assert_eq!(number_now(&h, at("2026-01-14 16:59")), CallNow::OfficeHours);
        assert_eq!(
            number_now(&h, at("2026-01-14 17:00")),
            CallNow::EmergencyDutyTeam
        );
        assert_eq!(
            number_now(&h, at("2026-01-14 22:00")),
            CallNow::EmergencyDutyTeam
        );
        assert_eq!(
            number_now(&h, at("2026-01-14 00:00")),
            CallNow::EmergencyDutyTeam
        );
        // Friday open, Saturday and Sunday closed all day, Monday open again.
        assert_eq!(number_now(&h, at("2026-01-16 10:00")), CallNow::OfficeHours);
        assert_eq!(
            number_now(&h, at("2026-01-17 10:00")),
            CallNow::EmergencyDutyTeam
        );
        assert_eq!(
            number_now(&h, at("2026-01-18 12:00")),
            CallNow::EmergencyDutyTeam
        );
        assert_eq!(number_now(&h, at("2026-01-19 09:00")), CallNow::OfficeHours);
    }

    #[test]
    fn the_default_text_is_the_standard_hours() {
        assert_eq!(
            OfficeHours::parse(DEFAULT_OFFICE_HOURS),
            Ok(OfficeHours::standard())
        );
        assert_eq!(OfficeHours::standard().to_string(), DEFAULT_OFFICE_HOURS);
        assert_eq!(OfficeHours::default(), OfficeHours::standard());
    }

    #[test]
    fn several_spans_parse_and_print_back() {
        let h =
            OfficeHours::parse(" mon-thu 08:30-17:00 ;Fri 08:30-16:30; Sat 10:00-12:00 ").unwrap();
        assert_eq!(
            h.to_string(),
            "Mon-Thu 08:30-17:00; Fri 08:30-16:30; Sat 10:00-12:00"
        );
        assert_eq!(OfficeHours::parse(&h.to_string()), Ok(h.clone()));
        // Friday 16 January 2026: closes at 16:30, not 17:00.
        assert!(h.is_open(at("2026-01-16 16:29")));
        assert!(!h.is_open(at("2026-01-16 16:30")));
        assert!(h.is_open(at("2026-01-15 16:59")));
        assert!(h.is_open(at("2026-01-17 11:00")));
        assert!(!h.is_open(at("2026-01-18 11:00")));
    }

    #[test]
    fn bad_hours_are_refused_with_a_reason() {
        assert_eq!(OfficeHours::parse(""), Err(OfficeHoursError::Empty));
        assert_eq!(OfficeHours::parse(" ; "), Err(OfficeHoursError::Empty));
        assert_eq!(
            OfficeHours::parse("9 to 5"),
            Err(OfficeHoursError::Day("9".into()))
        );
        assert_eq!(
            OfficeHours::parse("Weekdays"),
            Err(OfficeHoursError::Shape("Weekdays".into()))
        );
        assert_eq!(
            OfficeHours::parse("Monday-Fri 09:00-17:00"),
            Err(OfficeHoursError::Day("Monday".into()))
        );
        assert_eq!(
            OfficeHours::parse("Fri-Mon 09:00-17:00"),
            Err(OfficeHoursError::DaysBackwards("Fri-Mon".into()))
        );
        assert_eq!(
            OfficeHours::parse("Mon-Fri 9:00-17:00"),
            Err(OfficeHoursError::Time("9:00".into()))
        );
        assert_eq!(
            OfficeHours::parse("Mon-Fri 09:00-24:00"),
            Err(OfficeHoursError::Time("24:00".into()))
        );
        assert_eq!(
            OfficeHours::parse("Mon-Fri 17:00-09:00"),
            Err(OfficeHoursError::TimesBackwards("17:00-09:00".into()))
        );
        assert_eq!(
            OfficeHours::parse("Mon-Fri 09:00"),
            Err(OfficeHoursError::Shape("Mon-Fri 09:00".into()))
        );
    }

    #[test]
    fn uk_local_time_follows_bst_and_gmt() {
        // Winter: GMT, local = UTC.
        assert_eq!(uk_local(utc("2026-01-14 09:00")), at("2026-01-14 09:00"));
        // Summer: BST, local = UTC + 1.
        assert_eq!(uk_local(utc("2026-07-01 08:00")), at("2026-07-01 09:00"));
        // 29 March 2026: clocks go forward at 01:00 UTC (01:00 GMT becomes 02:00 BST).
        assert_eq!(uk_local(utc("2026-03-29 00:59")), at("2026-03-29 00:59"));
        assert_eq!(uk_local(utc("2026-03-29 01:00")), at("2026-03-29 02:00"));
        // 25 October 2026: clocks go back at 01:00 UTC (02:00 BST becomes 01:00 GMT).
        assert_eq!(uk_local(utc("2026-10-25 00:59")), at("2026-10-25 01:59"));
        assert_eq!(uk_local(utc("2026-10-25 01:00")), at("2026-10-25 01:00"));
    }

    #[test]
    fn the_office_opens_by_uk_local_time_on_the_days_the_clocks_change() {
        // Open every day so the clock change days (Sundays) can be tested.
        let h = OfficeHours::parse("Mon-Sun 09:00-17:00").unwrap();
        let now = |t: &str| number_now(&h, uk_local(utc(t)));
        // 29 March 2026 is BST from 01:00 UTC: 08:00 UTC is 09:00 local, open.
        assert_eq!(now("2026-03-29 07:59"), CallNow::EmergencyDutyTeam);
        assert_eq!(now("2026-03-29 08:00"), CallNow::OfficeHours);
        assert_eq!(now("2026-03-29 15:59"), CallNow::OfficeHours);
        assert_eq!(now("2026-03-29 16:00"), CallNow::EmergencyDutyTeam);
        // The Saturday before is still GMT: 08:00 UTC is 08:00 local, closed.
        assert_eq!(now("2026-03-28 08:00"), CallNow::EmergencyDutyTeam);
        assert_eq!(now("2026-03-28 09:00"), CallNow::OfficeHours);
        // 25 October 2026 is GMT from 01:00 UTC: 09:00 UTC is 09:00 local.
        assert_eq!(now("2026-10-25 08:59"), CallNow::EmergencyDutyTeam);
        assert_eq!(now("2026-10-25 09:00"), CallNow::OfficeHours);
        assert_eq!(now("2026-10-25 17:00"), CallNow::EmergencyDutyTeam);
        // The Saturday before is BST: 16:00 UTC is 17:00 local, closed.
        assert_eq!(now("2026-10-24 15:59"), CallNow::OfficeHours);
        assert_eq!(now("2026-10-24 16:00"), CallNow::EmergencyDutyTeam);
    }

    #[test]
    fn bank_holidays_follow_the_standing_rules() {
        for d in [
            "2026-01-01", // Thursday
            "2026-04-03", // Good Friday
            "2026-04-06", // Easter Monday
            "2026-05-04", // early May
            "2026-05-25", // spring
            "2026-08-31", // summer
            "2026-12-25", // Friday
            "2026-12-28", // Boxing Day on Saturday: Monday instead
            "2027-03-26", // Good Friday
            "2027-12-27", // Christmas on Saturday: Monday
            "2027-12-28", // Boxing Day on Sunday: Tuesday
            "2022-01-03", // New Year's Day on Saturday: Monday
            "2022-12-26", // Christmas on Sunday: Boxing Day Monday
            "2022-12-27", // and Christmas Tuesday
            "2024-03-29", // Good Friday
        ] {
            assert!(is_bank_holiday(date(d)), "{d}");
        }
        for d in [
            "2026-12-26",
            "2026-04-05",
            "2026-05-11",
            "2026-08-24",
            "2027-12-29",
        ] {
            assert!(!is_bank_holiday(date(d)), "{d}");
        }
    }

    #[test]
    fn the_office_is_closed_on_a_bank_holiday_weekday() {
        let h = OfficeHours::standard();
        assert_eq!(
            number_now(&h, at("2026-04-03 10:00")),
            CallNow::EmergencyDutyTeam
        );
        assert_eq!(
            number_now(&h, at("2026-04-06 10:00")),
            CallNow::EmergencyDutyTeam
        );
        assert_eq!(number_now(&h, at("2026-04-07 10:00")), CallNow::OfficeHours);
    }
}
