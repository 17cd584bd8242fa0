//! ODS organisation codes (local authorities and care settings).

use std::fmt;
use std::str::FromStr;

/// An organisation code: 3–10 uppercase ASCII letters and digits (e.g. `E08000026`, `X26`).
/// Lowercase input is accepted and upper-cased.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct OdsCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OdsCodeError {
    #[error("ODS code must be 3 to 10 characters, found {0}")]
    WrongLength(usize),
    #[error("ODS code must contain only letters and digits")]
    NotAlphanumeric,
}

impl OdsCode {
    pub fn parse(input: &str) -> Result<Self, OdsCodeError> {
        let s = input.trim();
        if !s.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(OdsCodeError::NotAlphanumeric);
        }
        if !(3..=10).contains(&s.len()) {
            return Err(OdsCodeError::WrongLength(s.len()));
        }
        Ok(OdsCode(s.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for OdsCode {
    type Err = OdsCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OdsCode::parse(s)
    }
}

impl serde::Serialize for OdsCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for OdsCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OdsCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_la_and_short_codes_and_uppercases() {
        assert_eq!(OdsCode::parse("E08000026").unwrap().as_str(), "E08000026");
        assert_eq!(OdsCode::parse("x26").unwrap().as_str(), "X26");
    }

    #[test]
    fn rejects_bad_codes() {
        assert_eq!(OdsCode::parse("AB"), Err(OdsCodeError::WrongLength(2)));
        assert_eq!(
            OdsCode::parse("ABCDEFGHIJK"),
            Err(OdsCodeError::WrongLength(11))
        );
        assert_eq!(
            OdsCode::parse("E08-026"),
            Err(OdsCodeError::NotAlphanumeric)
        );
        assert_eq!(OdsCode::parse(""), Err(OdsCodeError::WrongLength(0)));
        assert_eq!(OdsCode::parse("É0800"), Err(OdsCodeError::NotAlphanumeric));
    }
}
