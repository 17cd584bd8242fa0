//! How pages write dates, times, phone numbers and care settings for people.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use cpis_domain::SettingType;

/// `1 March 2026`.
pub fn long_date(d: NaiveDate) -> String {
    d.format("%-d %B %Y").to_string()
}

/// UK local time: `20 July 2026, 11:00 (BST)` or `20 November 2026, 10:00 (GMT)`.
pub fn uk_time(t: DateTime<Utc>) -> String {
    let (local, zone) = if is_bst(t) {
        (t + Duration::hours(1), "BST")
    } else {
        (t, "GMT")
    };
    format!(
        "{}, {} ({zone})",
        long_date(local.date_naive()),
        local.format("%H:%M")
    )
}

/// British Summer Time: from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last
/// Sunday of October.
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "cannot fail: 01:00"
)]
pub fn is_bst(t: DateTime<Utc>) -> bool {
    let at_one = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(1, 0, 0).expect("01:00"));
    match (last_sunday(t.year(), 3), last_sunday(t.year(), 10)) {
        (Some(start), Some(end)) => t >= at_one(start) && t < at_one(end),
        _ => false,
    }
}

fn last_sunday(year: i32, month: u32) -> Option<NaiveDate> {
    let last = NaiveDate::from_ymd_opt(year, month + 1, 1)?.pred_opt()?;
    Some(last - Duration::days(i64::from(last.weekday().num_days_from_sunday())))
}

/// A `tel:` link target: the digits, with a leading `+` kept.
pub fn tel(phone: &str) -> String {
    let plus = phone.trim_start().starts_with('+');
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if plus {
        format!("+{digits}")
    } else {
        digits
    }
}

/// `emergency-department` → `Emergency department`, with NHS abbreviations kept.
pub fn setting(t: SettingType) -> String {
    match t {
        SettingType::OutOfHoursGp => "Out of hours GP".into(),
        SettingType::Nhs111 => "NHS 111".into(),
        SettingType::Gp => "GP".into(),
        SettingType::Camhs => "CAMHS".into(),
        SettingType::Sarc => "Sexual assault referral centre".into(),
        other => {
            let words = other.code().replace('-', " ");
            let mut chars = words.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn times_are_uk_local() {
        assert_eq!(
            uk_time(at("2026-11-20T10:00:00Z")),
            "20 November 2026, 10:00 (GMT)"
        );
        assert_eq!(
            uk_time(at("2026-07-01T23:30:00Z")),
            "2 July 2026, 00:30 (BST)"
        );
        // 2026: BST from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(
            uk_time(at("2026-03-29T00:59:00Z")),
            "29 March 2026, 00:59 (GMT)"
        );
        assert_eq!(
            uk_time(at("2026-03-29T01:00:00Z")),
            "29 March 2026, 02:00 (BST)"
        );
        assert_eq!(
            uk_time(at("2026-10-25T00:59:00Z")),
            "25 October 2026, 01:59 (BST)"
        );
        assert_eq!(
            uk_time(at("2026-10-25T01:00:00Z")),
            "25 October 2026, 01:00 (GMT)"
        );
    }

    #[test]
    fn phone_links_keep_digits_and_plus() {
        assert_eq!(tel("024 7683 3443"), "02476833443");
        assert_eq!(tel("+44 20 7946 0001"), "+442079460001");
    }

    #[test]
    fn settings_read_as_words() {
        assert_eq!(
            setting(SettingType::EmergencyDepartment),
            "Emergency department"
        );
        assert_eq!(setting(SettingType::Nhs111), "NHS 111");
        assert_eq!(
            setting(SettingType::UrgentTreatmentCentre),
            "Urgent treatment centre"
        );
    }
}
