//! Contact details health and social care staff give each other: a care setting's phone number
//! (from the directory) and a clinician's work contact (from their identity provider).

use std::fmt;
use std::str::FromStr;

/// A telephone number someone can ring: a UK number (`0` and 10 or 11 digits, e.g.
/// `01632 960000`, `0800 123 4567`) or an international one (`+`, then 8 to 15 digits, E.164;
/// `+44` is followed by the 10 digits of a UK number without its `0`). Digits may be grouped by
/// spaces, hyphens and brackets, kept as written for display (runs of spaces collapsed).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PhoneNumber {
    display: String,
    /// `+` and the digits, for a `tel:` link.
    e164: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number may contain only digits, spaces, hyphens, brackets and a leading +")]
    BadCharacter,
    #[error("a UK phone number starts with 0 and has 10 or 11 digits, found {0} digits")]
    WrongLengthUk(usize),
    #[error("an international phone number starts with + and has 8 to 15 digits, found {0}")]
    WrongLengthInternational(usize),
    #[error("a +44 number has 10 digits after +44 (without the leading 0)")]
    BadUkInternational,
    #[error("a phone number starts with 0 (UK) or + (international)")]
    NoPrefix,
}

impl PhoneNumber {
    pub fn parse(input: &str) -> Result<Self, PhoneNumberError> {
        let display = input.split_whitespace().collect::<Vec<_>>().join(" ");
        if display.is_empty() {
            return Err(PhoneNumberError::Empty);
        }
        let international = display.starts_with('+');
        let rest = if international {
            &display[1..]
        } else {
            &display
        };
        if !rest
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')'))
        {
            return Err(PhoneNumberError::BadCharacter);
        }
        let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
        let e164 = if international {
            if !(8..=15).contains(&digits.len()) {
                return Err(PhoneNumberError::WrongLengthInternational(digits.len()));
            }
            if let Some(national) = digits.strip_prefix("44") {
                if national.len() != 10 || national.starts_with('0') {
                    return Err(PhoneNumberError::BadUkInternational);
                }
            }
            format!("+{digits}")
        } else {
            let Some(national) = digits.strip_prefix('0') else {
                return Err(PhoneNumberError::NoPrefix);
            };
            if !(10..=11).contains(&digits.len()) {
                return Err(PhoneNumberError::WrongLengthUk(digits.len()));
            }
            format!("+44{national}")
        };
        Ok(PhoneNumber { display, e164 })
    }

    /// As written (for display).
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The `tel:` URI (RFC 3966, global form), e.g. `tel:+441632960000`.
    pub fn tel_uri(&self) -> String {
        format!("tel:{}", self.e164)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl FromStr for PhoneNumber {
    type Err = PhoneNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PhoneNumber::parse(s)
    }
}

impl serde::Serialize for PhoneNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display)
    }
}

/// Read back as written: the number is parsed again, so a stored one is as valid as a new one.
impl<'de> serde::Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PhoneNumber::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A work email address as an identity provider asserts it: one `@` with text either side, no
/// spaces or control characters, at most 254 characters.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an email address")]
pub struct EmailAddressError;

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, EmailAddressError> {
        let s = input.trim();
        let ok = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(s.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if ok {
            Ok(EmailAddress(s.to_owned()))
        } else {
            Err(EmailAddressError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EmailAddress::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to reach a person at work, where their identity provider says (the OpenID Connect
/// `phone_number` and `email` claims). Both `None` for local accounts, API tokens and systems.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct WorkContact {
    pub phone: Option<PhoneNumber>,
    pub email: Option<EmailAddress>,
}

impl WorkContact {
    /// From identity claims: a value that does not parse is left out (a sign-in is not refused
    /// for an unusable contact claim; the contact is a courtesy, not an identity).
    pub fn from_claims(phone: Option<&str>, email: Option<&str>) -> Self {
        WorkContact {
            phone: phone.and_then(|p| PhoneNumber::parse(p).ok()),
            email: email.and_then(|e| EmailAddress::parse(e).ok()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.phone.is_none() && self.email.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uk_and_international_numbers_parse_with_a_tel_uri() {
        let p = PhoneNumber::parse("  01632   960000 ").unwrap();
        assert_eq!(p.as_str(), "01632 960000");
        assert_eq!(p.tel_uri(), "tel:+441632960000");
        assert_eq!(
            PhoneNumber::parse("0800 123 4567").unwrap().tel_uri(),
            "tel:+448001234567"
        );
        assert_eq!(
            PhoneNumber::parse("(0121) 496-0000").unwrap().tel_uri(),
            "tel:+441214960000"
        );
        assert_eq!(
            PhoneNumber::parse("+44 1632 960000").unwrap().tel_uri(),
            "tel:+441632960000"
        );
        assert_eq!(
            PhoneNumber::parse("+353 1 234 5678").unwrap().tel_uri(),
            "tel:+35312345678"
        );
    }

    #[test]
    fn bad_numbers_say_why() {
        use PhoneNumberError::*;
        assert_eq!(PhoneNumber::parse("  "), Err(Empty));
        assert_eq!(PhoneNumber::parse("01632 96000x"), Err(BadCharacter));
        assert_eq!(PhoneNumber::parse("ext. 4000"), Err(BadCharacter));
        assert_eq!(PhoneNumber::parse("0163 2960"), Err(WrongLengthUk(8)));
        assert_eq!(PhoneNumber::parse("016329600000"), Err(WrongLengthUk(12)));
        assert_eq!(PhoneNumber::parse("1632 960000"), Err(NoPrefix));
        assert_eq!(
            PhoneNumber::parse("+1234"),
            Err(WrongLengthInternational(4))
        );
        assert_eq!(
            PhoneNumber::parse("+44 01632 960000"),
            Err(BadUkInternational)
        );
        assert_eq!(PhoneNumber::parse("0+1632960000"), Err(BadCharacter));
    }

    #[test]
    fn contact_claims_keep_only_what_parses() {
        let c = WorkContact::from_claims(Some("07700 900123"), Some("a.clinician@nhs.net"));
        assert_eq!(c.phone.unwrap().as_str(), "07700 900123");
        assert_eq!(c.email.unwrap().as_str(), "a.clinician@nhs.net");
        let c = WorkContact::from_claims(Some("call reception"), Some("not an address"));
        assert!(c.is_empty());
        assert!(EmailAddress::parse("a@b@c").is_err());
        assert!(EmailAddress::parse("@nhs.net").is_err());
    }
}
