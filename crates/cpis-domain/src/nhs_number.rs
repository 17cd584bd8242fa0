//! NHS number: ten digits, the tenth a modulus-11 check digit over the first nine.

use std::fmt;
use std::str::FromStr;

/// A syntactically valid NHS number (ten digits with a correct modulus-11 check digit).
///
/// Input may contain spaces (`943 476 5919`); the value always displays as ten digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    #[error("NHS number is empty")]
    Empty,
    #[error("NHS number must contain only digits and spaces")]
    NotDigits,
    #[error("NHS number must have 10 digits, found {0}")]
    WrongLength(usize),
    #[error("NHS number has an invalid check digit")]
    BadCheckDigit,
}

impl NhsNumber {
    /// Parses user or file input: ASCII spaces are ignored, exactly ten digits must remain and the
    /// check digit must be right.
    #[allow(
        clippy::expect_used,
        clippy::unwrap_used,
        reason = "cannot fail: nine digits"
    )]
    pub fn parse(input: &str) -> Result<Self, NhsNumberError> {
        let mut digits = [0u8; 10];
        let mut count = 0usize;
        for c in input.trim().chars() {
            match c {
                ' ' => continue,
                '0'..='9' => {
                    if count < 10 {
                        digits[count] = c as u8 - b'0';
                    }
                    count += 1;
                }
                _ => return Err(NhsNumberError::NotDigits),
            }
        }
        if count == 0 {
            return Err(NhsNumberError::Empty);
        }
        if count != 10 {
            return Err(NhsNumberError::WrongLength(count));
        }
        let first_nine: [u8; 9] = digits[..9].try_into().expect("nine digits");
        match check_digit(&first_nine) {
            Some(check) if check == digits[9] => {}
            _ => return Err(NhsNumberError::BadCheckDigit),
        }
        Ok(NhsNumber(
            digits.iter().fold(0u64, |acc, d| acc * 10 + u64::from(*d)),
        ))
    }

    /// Builds a valid NHS number from its first nine digits, if they admit a check digit
    /// (one in eleven nine-digit prefixes does not).
    pub fn from_prefix(prefix: u32) -> Option<Self> {
        if prefix >= 1_000_000_000 {
            return None;
        }
        let mut first_nine = [0u8; 9];
        let mut rest = prefix;
        for slot in first_nine.iter_mut().rev() {
            *slot = (rest % 10) as u8;
            rest /= 10;
        }
        let check = check_digit(&first_nine)?;
        Some(NhsNumber(u64::from(prefix) * 10 + u64::from(check)))
    }

    /// The ten digits as a number (for compact storage and ordering).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The ten digits as text, e.g. `9434765919`.
    pub fn digits(self) -> String {
        format!("{:010}", self.0)
    }

    /// Human grouping `943 476 5919`, as NHS screens show it.
    pub fn grouped(self) -> String {
        let d = self.digits();
        format!("{} {} {}", &d[..3], &d[3..6], &d[6..])
    }
}

/// The modulus-11 check digit of nine digits, or `None` when the remainder rule gives 10
/// (such a prefix is never issued).
pub fn check_digit(first_nine: &[u8; 9]) -> Option<u8> {
    let sum: u32 = first_nine
        .iter()
        .zip((2..=10u32).rev())
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

impl fmt::Display for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010}", self.0)
    }
}

/// Debug output never shows the number itself: NHS numbers are personal data and must not reach
/// ordinary logs by accident.
impl fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NhsNumber(<redacted>)")
    }
}

impl FromStr for NhsNumber {
    type Err = NhsNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NhsNumber::parse(s)
    }
}

impl serde::Serialize for NhsNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.digits())
    }
}

impl<'de> serde::Deserialize<'de> for NhsNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NhsNumber::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Numbers published as valid examples in NHS documentation and test data packs.
    const KNOWN_VALID: &[&str] = &[
        "9434765919",
        "943 476 5919",
        "4010232137",
        "9000000009",
        "9449306060",
        "9449310378",
        "9999999999",
        "0000000000",
    ];
    const KNOWN_INVALID: &[&str] = &[
        "9434765918",  // wrong check digit
        "1234567890",  // remainder 10: never issued
        "943476591",   // nine digits
        "94347659190", // eleven digits
        "94347659A9",  // not digits
        "943-476-5919",
        "",
        "   ",
    ];

    #[test]
    fn known_valid_numbers_parse_and_normalise() {
        for s in KNOWN_VALID {
            let n = NhsNumber::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(n.digits(), s.replace(' ', ""));
        }
    }

    #[test]
    fn known_invalid_numbers_are_rejected_with_the_right_reason() {
        assert_eq!(
            NhsNumber::parse("9434765918"),
            Err(NhsNumberError::BadCheckDigit)
        );
        assert_eq!(
            NhsNumber::parse("1234567890"),
            Err(NhsNumberError::BadCheckDigit)
        );
        assert_eq!(
            NhsNumber::parse("943476591"),
            Err(NhsNumberError::WrongLength(9))
        );
        assert_eq!(
            NhsNumber::parse("94347659190"),
            Err(NhsNumberError::WrongLength(11))
        );
        assert_eq!(
            NhsNumber::parse("94347659A9"),
            Err(NhsNumberError::NotDigits)
        );
        assert_eq!(
            NhsNumber::parse("943-476-5919"),
            Err(NhsNumberError::NotDigits)
        );
        assert_eq!(NhsNumber::parse(""), Err(NhsNumberError::Empty));
        for s in KNOWN_INVALID {
            assert!(NhsNumber::parse(s).is_err(), "{s} must be rejected");
        }
    }

    #[test]
    fn debug_output_hides_the_number() {
        let n = NhsNumber::parse("9434765919").unwrap();
        assert!(!format!("{n:?}").contains("9434765919"));
    }

    #[test]
    fn grouped_form_is_three_three_four() {
        assert_eq!(
            NhsNumber::parse("9434765919").unwrap().grouped(),
            "943 476 5919"
        );
    }

    /// An independent statement of the rule, written the way the NHS Data Dictionary words it.
    fn reference_is_valid(digits: &[u8]) -> bool {
        if digits.len() != 10 {
            return false;
        }
        let mut total = 0u32;
        for (i, d) in digits.iter().take(9).enumerate() {
            total += u32::from(*d) * (10 - i as u32);
        }
        let remainder = total % 11;
        let check = 11 - remainder;
        let check = if check == 11 { 0 } else { check };
        check != 10 && check == u32::from(digits[9])
    }

    proptest! {
        #[test]
        fn agrees_with_reference_rule(digits in proptest::collection::vec(0u8..10, 10)) {
            let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            prop_assert_eq!(NhsNumber::parse(&s).is_ok(), reference_is_valid(&digits));
        }

        #[test]
        fn from_prefix_always_yields_a_parseable_number(prefix in 0u32..1_000_000_000) {
            if let Some(n) = NhsNumber::from_prefix(prefix) {
                prop_assert_eq!(NhsNumber::parse(&n.digits()), Ok(n));
                prop_assert_eq!(n.as_u64() / 10, u64::from(prefix));
            }
        }

        #[test]
        fn changing_one_digit_is_always_detected(prefix in 0u32..1_000_000_000, pos in 0usize..10, delta in 1u8..10) {
            if let Some(n) = NhsNumber::from_prefix(prefix) {
                let mut d: Vec<u8> = n.digits().bytes().map(|b| b - b'0').collect();
                d[pos] = (d[pos] + delta) % 10;
                let s: String = d.iter().map(|x| char::from(b'0' + x)).collect();
                prop_assert!(NhsNumber::parse(&s).is_err());
            }
        }

        #[test]
        fn spaces_anywhere_are_ignored(prefix in 0u32..1_000_000_000, at in 0usize..10) {
            if let Some(n) = NhsNumber::from_prefix(prefix) {
                let mut s = n.digits();
                s.insert(at, ' ');
                prop_assert_eq!(NhsNumber::parse(&s), Ok(n));
            }
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,20}") {
            let _ = NhsNumber::parse(&s);
        }
    }
}
