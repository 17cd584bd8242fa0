//! How pages write dates, times, phone numbers and care settings for people.

use chrono::{DateTime, NaiveDate, Utc};
use cpis_domain::office_hours::uk_local;
use cpis_domain::SettingType;

/// `1 March 2026`.
pub fn long_date(d: NaiveDate) -> String {
    d.format("%-d %B %Y").to_string()
}

/// UK local time: `20 July 2026, 11:00 (BST)` or `20 November 2026, 10:00 (GMT)`.
pub fn uk_time(t: DateTime<Utc>) -> String {
    let local = uk_local(t);
    let zone = if is_bst(t) { "BST" } else { "GMT" };
    format!(
        "{}, {} ({zone})",
        long_date(local.date()),
        local.format("%H:%M")
    )
}

/// British Summer Time: UK local time is ahead of UTC (the Europe/London zone of `chrono-tz`,
/// through `cpis_domain::office_hours::uk_local`).
pub fn is_bst(t: DateTime<Utc>) -> bool {
    uk_local(t) != t.naive_utc()
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
