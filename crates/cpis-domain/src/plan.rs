//! Plans held on a CP-IS record.

use chrono::NaiveDate;
use std::fmt;
use std::str::FromStr;

/// The three kinds of plan a local authority shares.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize,
)]
pub enum PlanType {
    /// Child Protection Plan.
    #[serde(rename = "CPP")]
    Cpp,
    /// Looked After Child.
    #[serde(rename = "LAC")]
    Lac,
    /// Unborn Child Protection Plan, held against the mother's NHS number.
    #[serde(rename = "UCPP")]
    Ucpp,
}

impl PlanType {
    pub const ALL: [PlanType; 3] = [PlanType::Cpp, PlanType::Lac, PlanType::Ucpp];

    pub fn code(self) -> &'static str {
        match self {
            PlanType::Cpp => "CPP",
            PlanType::Lac => "LAC",
            PlanType::Ucpp => "UCPP",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            PlanType::Cpp => "Child Protection Plan",
            PlanType::Lac => "Looked After Child",
            PlanType::Ucpp => "Unborn Child Protection Plan",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown plan type (expected CPP, LAC or UCPP)")]
pub struct UnknownPlanType;

impl FromStr for PlanType {
    type Err = UnknownPlanType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "CPP" => Ok(PlanType::Cpp),
            "LAC" => Ok(PlanType::Lac),
            "UCPP" => Ok(PlanType::Ucpp),
            _ => Err(UnknownPlanType),
        }
    }
}

impl fmt::Display for PlanType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One plan on a record. Built only through [`Plan::new`], so the invariants hold: the end is not
/// before the start, and a UCPP always has an expected date of delivery (other plans never do).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    plan_type: PlanType,
    start: NaiveDate,
    end: Option<NaiveDate>,
    expected_delivery: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("end date is before start date")]
    EndBeforeStart,
    #[error("UCPP needs an expected date of delivery")]
    UcppWithoutEdd,
    #[error("expected date of delivery is only for UCPP plans")]
    EddNotForPlanType,
}

impl Plan {
    pub fn new(
        plan_type: PlanType,
        start: NaiveDate,
        end: Option<NaiveDate>,
        expected_delivery: Option<NaiveDate>,
    ) -> Result<Self, PlanError> {
        if matches!(end, Some(e) if e < start) {
            return Err(PlanError::EndBeforeStart);
        }
        match (plan_type, expected_delivery) {
            (PlanType::Ucpp, None) => return Err(PlanError::UcppWithoutEdd),
            (PlanType::Cpp | PlanType::Lac, Some(_)) => return Err(PlanError::EddNotForPlanType),
            _ => {}
        }
        Ok(Plan {
            plan_type,
            start,
            end,
            expected_delivery,
        })
    }

    pub fn plan_type(&self) -> PlanType {
        self.plan_type
    }
    pub fn start(&self) -> NaiveDate {
        self.start
    }
    pub fn end(&self) -> Option<NaiveDate> {
        self.end
    }
    pub fn expected_delivery(&self) -> Option<NaiveDate> {
        self.expected_delivery
    }
}

/// Whom a record's plans are about. An unborn child protection plan is held against the
/// mother's NHS number, so a record whose plans are all unborn child protection plans is the
/// mother's, and nothing about it may call her "the child". A record with any other plan is a
/// child's (a mother who is herself a child on a plan is both).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Subject {
    Child,
    Mother,
}

impl Subject {
    /// The subject of a record with these plan types (no plans: a child).
    pub fn of(types: impl IntoIterator<Item = PlanType>) -> Subject {
        let mut any = false;
        for t in types {
            if t != PlanType::Ucpp {
                return Subject::Child;
            }
            any = true;
        }
        if any {
            Subject::Mother
        } else {
            Subject::Child
        }
    }

    /// `child` or `mother`, as notifications carry it.
    pub fn code(self) -> &'static str {
        match self {
            Subject::Child => "child",
            Subject::Mother => "mother",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unborn_child_plans_make_it_the_mothers_record() {
        use PlanType::*;
        assert_eq!(Subject::of([Ucpp]), Subject::Mother);
        assert_eq!(Subject::of([Ucpp, Ucpp]), Subject::Mother);
        assert_eq!(Subject::of([Ucpp, Cpp]), Subject::Child);
        assert_eq!(Subject::of([Lac]), Subject::Child);
        assert_eq!(Subject::of([]), Subject::Child);
        assert_eq!(Subject::Mother.code(), "mother");
    }

    fn d(s: &str) -> NaiveDate {
        crate::parse_iso_date(s).unwrap()
    }

    #[test]
    fn plan_invariants() {
        assert!(Plan::new(PlanType::Cpp, d("2025-01-01"), Some(d("2025-01-01")), None).is_ok());
        assert_eq!(
            Plan::new(PlanType::Cpp, d("2025-01-02"), Some(d("2025-01-01")), None),
            Err(PlanError::EndBeforeStart)
        );
        assert_eq!(
            Plan::new(PlanType::Ucpp, d("2025-01-01"), None, None),
            Err(PlanError::UcppWithoutEdd)
        );
        assert_eq!(
            Plan::new(PlanType::Lac, d("2025-01-01"), None, Some(d("2025-06-01"))),
            Err(PlanError::EddNotForPlanType)
        );
    }

    #[test]
    fn plan_type_codes_round_trip() {
        for t in PlanType::ALL {
            assert_eq!(t.code().parse::<PlanType>(), Ok(t));
        }
        assert_eq!("cpp".parse::<PlanType>(), Ok(PlanType::Cpp));
        assert_eq!("XYZ".parse::<PlanType>(), Err(UnknownPlanType));
    }
}
